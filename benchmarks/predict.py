"""Seconds per query video of `--mode=predict`, decoding included.

Prints a Markdown table; each row is a config. The videos are procedural
clips written as mp4 files (N classes x K support videos and Q queries, of
`--video_frames` frames at `--video_size` pixels) unless `--support` and
`--query` name the user's own. The model has random weights unless
`--workdir` holds a checkpoint of the row's config (time does not depend on
the weights). Columns:
  decode: reading one video as predict does (PyAV, the builder's JPEG
    frames, the test crop and resize of the M or T frames it uses);
  model: the model's share of a query (one jitted call on `--query_batch`
    queries with the whole support, divided by `--query_batch`);
  predict: `Predictor.predict` on all queries divided by their number
    (support decoding amortised over them; compilation excluded).

  python benchmarks/predict.py                          # test + synthetic
  python benchmarks/predict.py --rows=synthetic_vim --queries=32
  python benchmarks/predict.py --rows=synthetic --support=my/support \\
      --query=my/queries --workdir=/tmp/vim_synthetic
"""
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VIM = {'model.sampler.enabled': True, 'model.alignment.transform': True,
       'model.alignment.rearrange': True, 'model.alignment.spatial': True}
# name -> (config module, overrides)
ROWS = {
    'test': ('test', {}),
    'test_vim': ('test', VIM),
    'synthetic': ('synthetic', {}),
    'synthetic_vim': ('synthetic', VIM),
}

flags.DEFINE_list('rows', ['test', 'synthetic'], f'Rows, from {sorted(ROWS)}.')
flags.DEFINE_integer('way', 5, 'N: support classes of the generated videos.')
flags.DEFINE_integer('shot', 1, 'K: support videos per generated class.')
flags.DEFINE_integer('queries', 16, 'Q: generated query videos.')
flags.DEFINE_integer('video_frames', 64, 'Frames of each generated video.')
flags.DEFINE_integer('video_size', 128, 'Side of the generated videos.')
flags.DEFINE_integer('query_batch', 8, 'Queries per model call.')
flags.DEFINE_string('support', None, 'A support folder (one per class).')
flags.DEFINE_multi_string('query', None, 'Query videos or folders.')
flags.DEFINE_string('workdir', None, 'Restore this checkpoint (all rows).')
FLAGS = flags.FLAGS


def _config(name):
  import importlib  # pylint: disable=g-import-not-at-top
  module, overrides = ROWS[name]
  config = importlib.import_module(f'configs.{module}').get_config()
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def _write_mp4(path, frames):
  import av  # pylint: disable=g-import-not-at-top
  with av.open(path, 'w') as container:
    stream = container.add_stream('libx264', rate=25)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = 'yuv420p'
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, 'rgb24')):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


def generated_videos(folder):
  """({class: [mp4 paths]}, [query mp4 paths]) of procedural test clips."""
  from input_pipeline import render  # pylint: disable=g-import-not-at-top

  def clip(c, v):
    return render.render_video(
        render.class_params(0, 'test', c), render.video_rng(0, 'test', c, v),
        num_frames=FLAGS.video_frames, frame_size=FLAGS.video_size)['frames']

  support = {}
  for c in range(FLAGS.way):
    os.makedirs(os.path.join(folder, f'class_{c}'))
    support[f'class_{c}'] = [
        _write_mp4(os.path.join(folder, f'class_{c}', f'{v}.mp4'), clip(c, v))
        for v in range(FLAGS.shot)]
  queries = [_write_mp4(os.path.join(folder, f'query_{q}.mp4'),
                        clip(q % FLAGS.way, FLAGS.shot + q))
             for q in range(FLAGS.queries)]
  return support, queries


def _predictor(config):
  import jax  # pylint: disable=g-import-not-at-top
  from vim_jax import predict  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  from vim_jax.models import build  # pylint: disable=g-import-not-at-top
  if FLAGS.workdir:
    return predict.Predictor.from_workdir(config, FLAGS.workdir,
                                          query_batch=FLAGS.query_batch)
  spec = train.episode_spec(config, 'test')
  model = build.model(config.model, way=spec.way)
  variables = jax.jit(lambda e: model.init(
      {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)}, e,
      train=False))(train.example_episode(spec))
  return predict.Predictor(config, variables, query_batch=FLAGS.query_batch)


def measure(name, support, queries):
  """Seconds per query video for one row."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vim_jax import predict  # pylint: disable=g-import-not-at-top
  config = _config(name)
  predictor = _predictor(config)
  predictor.predict(support, queries[:1])  # compiles (one padded chunk)

  start = time.perf_counter()
  read = [predictor.frames(predict.read_video(p, config.data))
          for p in queries]
  decode = (time.perf_counter() - start) / len(queries)

  support_paths = [p for c in support for p in support[c]]
  labels = [i for i, c in enumerate(support) for _ in support[c]]
  support_frames = np.stack([predictor.frames(predict.read_video(
      p, config.data))[0] for p in support_paths])
  episode = predictor.episode(
      support_frames, labels, np.stack([f for f, _ in read])[
          :FLAGS.query_batch])
  predictor.run_model(episode, len(support))
  start = time.perf_counter()
  for _ in range(3):
    predictor.run_model(episode, len(support))
  model = (time.perf_counter() - start) / 3 / FLAGS.query_batch

  start = time.perf_counter()
  predictor.predict(support, queries)
  total = (time.perf_counter() - start) / len(queries)
  frames = (config.data.dense_frames if predictor.uses_sampler
            else config.model.frames)
  return dict(decode=decode, model=model, predict=total,
              shape=f'{len(support)}-way {len(support_paths)} support, '
                    f'{frames} frames at {config.data.frame_size}px '
                    f'{config.model.backbone}/{config.model.backbone_width}')


def main(argv):
  del argv
  if bool(FLAGS.support) != bool(FLAGS.query):
    raise app.UsageError('--support and --query go together.')
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  logging.set_verbosity(logging.WARNING)
  from vim_jax import predict  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as folder:
    if FLAGS.support:
      support = predict.support_from_dir(FLAGS.support)
      queries = predict.expand_queries(FLAGS.query or [])
      source = f'{FLAGS.support}, {len(queries)} queries'
    else:
      support, queries = generated_videos(folder)
      source = (f'{len(queries)} generated mp4 queries of '
                f'{FLAGS.video_frames} frames at {FLAGS.video_size}px')
    results = {name: measure(name, support, queries) for name in FLAGS.rows}
  print(f'\ndevice: {jax.devices()[0].device_kind}; {source}; query batch '
        f'{FLAGS.query_batch}; seconds per query video\n')
  print('| row | model input | decode s/video | model s/query | '
        'predict s/query | queries/s |')
  print('|---|---|---|---|---|---|')
  for name, r in results.items():
    print(f"| {name} | {r['shape']} | {r['decode']:.4f} | {r['model']:.4f} | "
          f"{r['predict']:.4f} | {1 / r['predict']:.1f} |")


if __name__ == '__main__':
  app.run(main)
