"""Prediction on a user's own videos (vim_jax/predict.py and --mode=predict).

The videos are procedural ones (test-split classes) written as real mp4
files with PyAV, and one as a folder of PNG frames. The model is configs/
test.py with every VIM module on, trained for 2 steps by main.py once per
module. The reference answers are built without predict's helpers: PyAV
decoding, the builder's JPEG round trip, the segment centres and the centre
crop written out here, and the model's own apply with train=False.
"""
import io
import json
import logging
import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest
import tensorflow as tf

from configs import test as test_config
from input_pipeline import render
from tests import helpers
from vim_jax import predict
from vim_jax.models import build

av = pytest.importorskip('av')

VIM = {'model.sampler.enabled': True, 'model.alignment.transform': True,
       'model.alignment.rearrange': True, 'model.alignment.spatial': True}
# Support shots per class (uneven) and 4 classes; configs/test.py trains 3-way.
SHOTS = (1, 2, 3, 1)
# Query frame counts: 4 is fewer than M = 6 dense frames (frames repeat).
QUERY_FRAMES = (8, 4, 12, 8, 8)


def _config(**overrides):
  config = test_config.get_config()
  for key, value in overrides.items():
    section, *path, leaf = key.split('.')
    node = config[section]
    for name in path:
      node = node[name]
    node[leaf] = value
  return config


def _render(c, v, num_frames):
  """[F, 16, 16, 3] uint8: video v of test class c of the procedural data."""
  return render.render_video(
      render.class_params(0, 'test', c), render.video_rng(0, 'test', c, v),
      num_frames=num_frames, frame_size=16)['frames']


def _widen(frames, axis):
  """Pads 4 pixels of grey on both sides along `axis` (1: taller, 2: wider)."""
  pad = [(0, 0)] * 4
  pad[axis] = (4, 4)
  return np.pad(frames, pad, constant_values=128)


def _write_mp4(path, frames):
  with av.open(str(path), 'w') as container:
    stream = container.add_stream('libx264', rate=10)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = 'yuv420p'
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, 'rgb24')):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return str(path)


def _write_frame_folder(path, frames):
  os.makedirs(path)
  for i, frame in enumerate(frames):  # img_10 after img_9: natural order
    Image.fromarray(frame).save(os.path.join(path, f'img_{i + 1}.png'))
  return str(path)


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
  """{'support': {class: [paths]}, 'queries': [paths]} on disk.

  Class c's examples are videos 0.. of test class c; query i is video 5 of
  class i % 4. One support example is taller than wide and one query wider
  than tall (both centre-cropped to 16 x 16), one support example is a
  frame folder.
  """
  root = tmp_path_factory.mktemp('videos')
  support = {}
  for c, shots in enumerate(SHOTS):
    folder = root / 'support' / f'class_{c}'
    os.makedirs(folder)
    support[f'class_{c}'] = []
    for v in range(shots):
      frames = _render(c, v, 8 + v)
      if (c, v) == (1, 1):
        path = _write_frame_folder(folder / f'v{v}', frames)
      else:
        if (c, v) == (2, 2):
          frames = _widen(frames, 1)
        path = _write_mp4(folder / f'v{v}.mp4', frames)
      support[f'class_{c}'].append(path)
  os.makedirs(root / 'query')
  queries = []
  for i, num_frames in enumerate(QUERY_FRAMES):
    frames = _render(i % 4, 5, num_frames)
    if i == 2:
      frames = _widen(frames, 2)
    queries.append(_write_mp4(root / 'query' / f'q{i}.mp4', frames))
  return dict(root=root, support=support, queries=queries)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A 2-step VIM run of configs/test.py (no MI losses: a smaller graph)."""
  workdir = tmp_path_factory.mktemp('run') / 'vim'
  helpers.run_main(
      workdir, tmp_path_factory.mktemp('tfds'), '--config.train.num_steps=2',
      '--config.train.mu1=0', '--config.train.mu2=0',
      '--config.eval.test_episodes=4', *[f'--config.{k}={v}'
                                         for k, v in VIM.items()])
  return workdir


# --- The reference: independent of predict's helpers.


def _decode(path):
  """The clip's frames as the builder stores them, decoded as the test split
  does: PyAV (or PIL for frame files) -> JPEG at data.jpeg_quality (the
  builder's encoding) -> TensorFlow's JPEG decoder (the episodes')."""
  if os.path.isdir(path):
    names = sorted(os.listdir(path), key=lambda n: int(n[4:-4]))
    images = [Image.open(os.path.join(path, n)).convert('RGB') for n in names]
  else:
    with av.open(path) as container:
      images = [f.to_image() for f in container.decode(video=0)]
  quality = test_config.get_config().data.jpeg_quality
  frames = []
  for image in images:
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=quality)
    frames.append(tf.io.decode_jpeg(buffer.getvalue(), channels=3).numpy())
  return np.stack(frames)


def _test_frames(path, count):
  """(frames [count, 16, 16, 3], clip frame numbers [count]): segment centres
  floor((i + 0.5) n / count), and the centre 16 x 16 square (the short side
  is 16 in these videos, so no resampling)."""
  clip = _decode(path)
  n = len(clip)
  index = np.minimum(np.floor((np.arange(count) + 0.5) * n / count), n - 1)
  index = index.astype(int)
  h, w = clip.shape[1:3]
  top, left = (h - 16) // 2, (w - 16) // 2
  return clip[index, top:top + 16, left:left + 16], index


def _reference(config, variables, support, queries):
  """Per query: (probabilities [N], clip frames the backbone saw [T])."""
  count = (config.data.dense_frames if config.model.sampler.enabled
           else config.model.frames)
  paths = [p for c in support for p in support[c]]
  labels = [i for i, c in enumerate(support) for _ in support[c]]
  read = lambda ps: [_test_frames(p, count) for p in ps]
  support_read, query_read = read(paths), read(queries)
  episode = dict(support=np.stack([f for f, _ in support_read]),
                 support_labels=np.asarray(labels, np.int32),
                 query=np.stack([f for f, _ in query_read]))
  model = build.model(config.model, way=len(support))
  outputs = jax.jit(lambda v, e: model.apply(v, e, train=False))(
      variables, episode)
  logits = np.asarray(outputs['logits'], np.float64)
  probabilities = np.exp(logits - logits.max(1, keepdims=True))
  probabilities /= probabilities.sum(1, keepdims=True)
  frames = []
  for q, (_, index) in enumerate(query_read):
    if 'sampler' in outputs:
      chosen = np.asarray(outputs['sampler']['indices'])[len(paths) + q]
      frames.append(index[chosen])
    else:
      frames.append(index)
  return probabilities, frames


def _check_against_reference(results, reference, support, queries):
  probabilities, frames = reference
  classes = list(support)
  assert [r['query'] for r in results] == queries
  for result, p, f in zip(results, probabilities, frames):
    assert result['prediction'] == classes[int(np.argmax(p))]
    np.testing.assert_allclose(
        [result['probabilities'][c] for c in classes], p, rtol=1e-5,
        atol=1e-7)
    assert result['frames'] == f.tolist()


def _best_variables(workdir):
  (step,) = os.listdir(workdir / 'best')
  return ocp.StandardCheckpointer().restore(
      (workdir / 'best' / step / 'variables').resolve())


# --- Tests.


def test_parameters_do_not_depend_on_way():
  config = _config(**VIM)
  episode = lambda way: dict(
      support=np.zeros((way, 6, 16, 16, 3), np.uint8),
      support_labels=np.arange(way, dtype=np.int32),
      query=np.zeros((1, 6, 16, 16, 3), np.uint8))
  shapes = [jax.eval_shape(
      lambda e, m=build.model(config.model, way=way): m.init(
          {'params': jax.random.PRNGKey(0),
           'sampler': jax.random.PRNGKey(1)}, e, train=False), episode(way))
            for way in (2, 3, 7)]
  assert shapes[0] == shapes[1] == shapes[2]


def test_trained_vim_matches_the_model_on_the_same_frames(workdir, videos,
                                                          caplog):
  """4 classes (trained 3-way), shots 1/2/3/1, queries in chunks of 2."""
  config = _config(**VIM)
  predictor = predict.Predictor.from_workdir(config, workdir, query_batch=2)
  assert predictor.checkpoint == 'best/2'
  with caplog.at_level(logging.WARNING):
    results = predictor.predict(videos['support'], videos['queries'])
  reference = _reference(config, _best_variables(workdir), videos['support'],
                         videos['queries'])
  _check_against_reference(results, reference, videos['support'],
                           videos['queries'])
  assert all(len(r['frames']) == config.model.frames for r in results)
  short = [r for r in caplog.records if 'fewer than the 6 frames' in
           r.getMessage()]
  assert len(short) == 1 and videos['queries'][1] in short[0].getMessage()


def test_protonet_reads_t_frames_and_matches_the_model(videos):
  """Without a sampler the model reads T = 4 frames (random weights)."""
  config = _config()
  model = build.model(config.model, way=4)
  variables = model.init(
      {'params': jax.random.PRNGKey(3), 'sampler': jax.random.PRNGKey(4)},
      dict(support=np.zeros((4, 4, 16, 16, 3), np.uint8),
           support_labels=np.arange(4, dtype=np.int32),
           query=np.zeros((1, 4, 16, 16, 3), np.uint8)), train=False)
  predictor = predict.Predictor(config, variables, query_batch=3)
  results = predictor.predict(videos['support'], videos['queries'],
                              figures=True)
  reference = _reference(config, variables, videos['support'],
                         videos['queries'])
  _check_against_reference(results, reference, videos['support'],
                           videos['queries'])
  assert all(r['figure'] is None for r in results)


def _garbage(folder):
  path = folder / 'broken.mp4'
  path.write_bytes(bytes(range(256)) * 4)
  return str(path)


def _no_frames(folder):
  return helpers.write_frameless_video(folder / 'empty.avi')


def _empty_frame_folder(folder):
  os.makedirs(folder / 'frames')
  return str(folder / 'frames')


@pytest.mark.parametrize('make, message', [
    (_garbage, 'cannot decode'),
    (_no_frames, 'zero frames'),
    (_empty_frame_folder, 'zero frames'),
])
@pytest.mark.parametrize('role', ['support', 'query'])
def test_bad_video_names_its_path(make, message, role, videos, tmp_path):
  config = _config()
  predictor = predict.Predictor(config, variables=None)
  bad = make(tmp_path)
  support = dict(videos['support'])
  queries = videos['queries'][:1]
  if role == 'support':
    support['class_1'] = support['class_1'] + [bad]
  else:
    queries = [bad]
  with pytest.raises(predict.PredictError, match=message) as error:
    predictor.predict(support, queries)
  assert bad in str(error.value)
  if role == 'support':
    assert "class 'class_1'" in str(error.value)


def test_bad_folders_name_their_path(videos, tmp_path):
  support_dir = videos['root'] / 'support'
  assert predict.support_from_dir(support_dir) == videos['support']
  empty = tmp_path / 'support' / 'empty_class'
  os.makedirs(empty)
  os.makedirs(tmp_path / 'support' / 'other')
  with pytest.raises(predict.PredictError, match=re.escape(str(empty))):
    predict.support_from_dir(tmp_path / 'support')
  missing = str(tmp_path / 'nothing.mp4')
  with pytest.raises(FileNotFoundError, match=re.escape(missing)):
    predict.expand_queries([videos['queries'][0], missing])
  with pytest.raises(FileNotFoundError, match=re.escape(missing)):
    predict.Predictor(_config(), None).predict(videos['support'], [missing])
  with pytest.raises(predict.PredictError, match=re.escape(str(empty))):
    predict.expand_queries([str(empty)])
  with pytest.raises(FileNotFoundError, match='no such folder'):
    predict.support_from_dir(tmp_path / 'absent')
  assert predict.expand_queries([str(videos['root'] / 'query')]) == (
      videos['queries'])
  frame_folder = videos['support']['class_1'][1]
  assert predict.expand_queries([frame_folder]) == [frame_folder]


def test_mismatched_config_names_the_fields(workdir):
  config = _config(**VIM, **{'model.frames': 3,
                             'model.sampler.hidden': 8})
  with pytest.raises(predict.ConfigMismatchError) as error:
    predict.Predictor.from_workdir(config, workdir)
  message = str(error.value)
  assert str(workdir / 'config.json') in message
  assert 'model.frames: 3 here, 4 in the workdir' in message
  assert 'model.sampler.hidden: 8 here, 16 in the workdir' in message
  with pytest.raises(FileNotFoundError, match="checkpoint='7'"):
    predict.Predictor.from_workdir(_config(**VIM, **{'eval.checkpoint': '7'}),
                                   workdir)


def test_command_line(workdir, videos, tmp_path):
  output, figures = tmp_path / 'out' / 'predictions.json', tmp_path / 'fig'
  proc = helpers.run_main(
      workdir, tmp_path / 'unused_tfds', '--mode=predict',
      f'--support={videos["root"] / "support"}',
      f'--query={videos["root"] / "query"}', f'--output={output}',
      f'--figures={figures}', *[f'--config.{k}={v}' for k, v in VIM.items()])
  report = json.loads(output.read_text())
  classes = [f'class_{c}' for c in range(4)]
  assert report['classes'] == classes and report['checkpoint'] == 'best/2'
  assert report['support'] == videos['support']
  lines = proc.stdout.strip().splitlines()
  assert lines[0].split() == ['query', 'prediction', *classes, 'frames']
  assert len(lines) == 1 + len(videos['queries'])
  for line, result in zip(lines[1:], report['predictions']):
    cells = line.split()
    assert cells[:2] == [result['query'], result['prediction']]
    assert [float(x) for x in cells[2:6]] == pytest.approx(
        [result['probabilities'][c] for c in classes], abs=5e-4)
    assert cells[6] == ','.join(map(str, result['frames']))
    image = np.asarray(Image.open(result['figure']))
    assert image.ndim == 3 and image.shape[1] > 16 * 6
  assert proc.stderr.count('fewer than the 6 frames') == 1
