"""Real-dataset input pipeline: build time, episode throughput, host memory.

Makes a small UCF101-like dataset in a temporary folder (textured 320x240
frames with a moving object: `--classes` training classes of
`--videos_per_class` videos of `--frames` frames, plus one validation and one
test video), once as extracted JPEG frames and once as H.264 .mp4 files
(PyAV), and prepares the `few_shot_videos` builder from each with the stored
frames at the builder's default short side (128 px) and at 256 px (what the
real-dataset configs use for 224 px crops; 320x240 frames are then kept as
they are, never enlarged). Then it measures the training episode pipeline
(5-way 1-shot, Q=5 queries per class, random 224x224 crops) with M=20 dense
frames per video (VIM's sampler input) and with T=8 (ProtoNet).

Reported:

* build: seconds per video of `real_datasets.load` (`--build_workers`
  reading threads, 1 by default, so it is CPU time per video on one core) and
  the stored JPEG size per frame (for disk estimates: videos x stored frames
  x this);
* frames/s on one thread: tf.data pinned to one thread
  (`options.threading.private_threadpool_size = 1`,
  `max_intra_op_parallelism = 1`): output frames (decoded, cropped, resized)
  per second, i.e. per CPU core;
* frames/s per core, all threads: default tf.data threading, divided by the
  number of cores this process may use (`os.sched_getaffinity`); wall-clock
  based, so it drops when other processes share the cores;
* frames per CPU second, all threads: the same run's frames over the CPU time
  (user + system, all threads) the process spent: a per-core number that
  other processes' load does not lower. Higher than the pinned number when
  the pinned run leaves its core idle part of the time (the Python episode
  planning and the decoding no longer overlap);
* RSS: the host memory the pipeline holds (resident set size after the
  timed episodes, minus before the pipeline was made; prefetched and
  in-flight episodes) and its peak over the same interval. Each row runs in
  a fresh process so that rows do not share allocator caches.

  python benchmarks/input_pipeline.py
  python benchmarks/input_pipeline.py --episodes=10 --workdir=/tmp/bench
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_integer('classes', 5, 'Training classes.')
flags.DEFINE_integer('videos_per_class', 6, 'Training videos per class '
                     '(5-way 1-shot with Q=5 needs 6).')
flags.DEFINE_integer('frames', 40, 'Frames per video.')
flags.DEFINE_integer('width', 320, 'Frame width.')
flags.DEFINE_integer('height', 240, 'Frame height.')
flags.DEFINE_integer('episodes', 5, 'Timed episodes per row (after one '
                     'warm-up episode).')
flags.DEFINE_integer('build_workers', 1, 'Threads reading videos in builds.')
flags.DEFINE_string('workdir', None, 'Keep the data here (default: a '
                    'temporary folder, removed at the end).')
flags.DEFINE_string('row', None, 'Internal: measure one row (JSON) and print '
                    'its result.')
FLAGS = flags.FLAGS

DATASET = 'ucf_ARN'
SHORT_SIDES = (128, 256)
SOURCES = ('frames', 'videos')
EPISODE = dict(way=5, shot=1, query=5, frame_size=224)


def _frame(rng, texture, v, i, width, height):
  """A textured frame with an object moving across it: uint8 [H, W, 3]."""
  image = texture.copy()
  size = height // 4
  x = int((width - size) * i / max(FLAGS.frames - 1, 1))
  y = (height - size) // 2 + int(20 * np.sin(i / 3 + v))
  image[y:y + size, x:x + size] = (40 * v) % 256, 200, 90
  noise = rng.normal(0, 6, image.shape)
  return np.clip(image + noise, 0, 255).astype(np.uint8)


def _texture(rng, width, height):
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  fx, fy = rng.uniform(0.02, 0.12, 2)
  base = 127 + 60 * np.sin(fx * xx) * np.cos(fy * yy)
  colour = rng.uniform(0.5, 1.0, 3)
  return base[..., None] * colour + rng.normal(0, 12, (height, width, 3))


def make_tree(root: str) -> tuple[str, str, str, int]:
  """Writes the frame tree, the video tree and the split folder.

  Returns:
    (frames root, videos root, split folder, number of videos).
  """
  import av  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  frames_root = os.path.join(root, 'frames')
  videos_root = os.path.join(root, 'videos')
  split_dir = os.path.join(root, 'splits', DATASET)
  os.makedirs(split_dir)
  lines = {
      'train': [(f'Class{c}', f'v_Class{c}_g01_c{j:02d}')
                for c in range(FLAGS.classes)
                for j in range(FLAGS.videos_per_class)],
      'val': [('ValClass', 'v_ValClass_g01_c01')],
      'test': [('TestClass', 'v_TestClass_g01_c01')],
  }
  rng = np.random.default_rng(0)
  count = 0
  for split, entries in lines.items():
    with open(os.path.join(split_dir, f'{split}list01.txt'), 'w') as f:
      f.write(''.join(f'{c}/{v}\n' for c, v in entries))
    for class_name, video_id in entries:
      texture = _texture(rng, FLAGS.width, FLAGS.height)
      folder = os.path.join(frames_root, class_name, video_id)
      os.makedirs(folder)
      os.makedirs(os.path.join(videos_root, class_name), exist_ok=True)
      path = os.path.join(videos_root, class_name, f'{video_id}.mp4')
      with av.open(path, 'w') as container:
        stream = container.add_stream('libx264', rate=25)
        stream.width, stream.height = FLAGS.width, FLAGS.height
        stream.pix_fmt = 'yuv420p'
        for i in range(FLAGS.frames):
          image = _frame(rng, texture, count, i, FLAGS.width, FLAGS.height)
          Image.fromarray(image).save(
              os.path.join(folder, f'img_{i + 1:05d}.jpg'), quality=90)
          for packet in stream.encode(
              av.VideoFrame.from_ndarray(image, format='rgb24')):
            container.mux(packet)
        for packet in stream.encode():
          container.mux(packet)
      count += 1
  return frames_root, videos_root, split_dir, count


def _config(row):
  from configs import real  # pylint: disable=g-import-not-at-top
  method = 'vim' if row['frames'] > 8 else 'protonet'
  config = real.make_config(
      DATASET, f'way={EPISODE["way"]},shot={EPISODE["shot"]},'
      f'query={EPISODE["query"]},method={method}')
  data = config.data
  data.tfds_data_dir = row['data_dir']
  data.manual_dir = row['manual_dir']
  data.split_dir = row['split_dir']
  data.source = row['source']
  data.resize_short_side = row['short_side']
  data.build_workers = FLAGS.build_workers
  return config


def _rss_mib() -> float:
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  return float('nan')


def _num_cores() -> int:
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count()


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_row(row: dict) -> dict:
  """Throughput and memory of one pipeline configuration (this process)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
  from input_pipeline import episodes  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  config = _config(row)
  data = config.data
  source = datasets.load_source(data, 'train')
  spec = episodes.EpisodeSpec(
      way=data.way, shot=data.shot, query=data.query, frames=row['frames'],
      frame_size=data.frame_size, train=True,
      crop_scale=tuple(data.train_crop_scale), hflip=data.hflip)
  count = FLAGS.episodes + 1
  before, peak_before = _rss_mib(), _peak_rss_mib()
  ds = episodes.episode_dataset(
      source, spec, seed=0, split='train',
      indices=tf.data.Dataset.range(count), batch=1, prefetch=data.prefetch)
  if row['threads'] == 'one':
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
  it = ds.as_numpy_iterator()
  first = next(it)  # warm-up: tracing, opening the data source
  cpu_start, start = _cpu_seconds(), time.perf_counter()
  for _ in range(FLAGS.episodes):
    batch = next(it)
  seconds = time.perf_counter() - start
  cpu = _cpu_seconds() - cpu_start
  frames_per_episode = (first['support'].shape[1] + first['query'].shape[1]
                        ) * spec.frames
  assert batch['query'].shape[-3:] == (224, 224, 3)
  frames = FLAGS.episodes * frames_per_episode
  fps = frames / seconds
  if row['threads'] != 'one':
    fps /= _num_cores()
  held = _rss_mib() - before
  if peak_before > before + 1:
    logging.warning('The process peaked before the pipeline was made; the '
                    'peak column overstates.')
  return dict(fps=fps, fps_cpu=frames / cpu,
              seconds_per_episode=seconds / FLAGS.episodes,
              rss_mib=held, peak_mib=max(_peak_rss_mib() - before, held),
              frames_per_episode=frames_per_episode)


def _run_child(row: dict) -> dict:
  out = subprocess.run(
      [sys.executable, os.path.abspath(__file__), f'--row={json.dumps(row)}',
       f'--episodes={FLAGS.episodes}',
       f'--build_workers={FLAGS.build_workers}'],
      capture_output=True, text=True, check=False)
  for line in out.stdout.splitlines():
    if line.startswith('RESULT '):
      return json.loads(line[len('RESULT '):])
  raise RuntimeError(f'row {row} failed:\n{out.stderr[-3000:]}')


def _stored_kib_per_frame(builder) -> float:
  from input_pipeline import real_datasets  # pylint: disable=g-import-not-at-top
  total = sum(os.path.getsize(os.path.join(builder.data_dir, n))
              for n in os.listdir(builder.data_dir) if '.array_record' in n)
  frames = sum(int(real_datasets.record_num_frames(builder, s).sum())
               for s in ('train', 'validation', 'test'))
  return total / frames / 1024


def main(argv):
  del argv
  if FLAGS.row:
    print('RESULT ' + json.dumps(measure_row(json.loads(FLAGS.row))))
    return
  logging.set_verbosity(logging.WARNING)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()
  root = FLAGS.workdir or tempfile.mkdtemp(prefix='vim_pipeline_bench_')
  try:
    start = time.perf_counter()
    frames_root, videos_root, split_dir, num_videos = make_tree(root)
    logging.warning('Wrote %d videos (frames and mp4) in %.1f s', num_videos,
                    time.perf_counter() - start)
    from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
    builds, rows = {}, []
    for source in SOURCES:
      for short_side in SHORT_SIDES:
        row = dict(source=source, short_side=short_side,
                   data_dir=os.path.join(root, 'tfds'), split_dir=split_dir,
                   manual_dir=frames_root if source == 'frames' else
                   videos_root)
        config = _config(dict(row, frames=20))
        start = time.perf_counter()
        builder = datasets.builder_for(config.data, 'train')
        builds[source, short_side] = (
            (time.perf_counter() - start) / num_videos,
            _stored_kib_per_frame(builder))
        for frames in (20, 8):
          for threads in ('one', 'all'):
            rows.append(dict(row, frames=frames, threads=threads))
    results = [(row, _run_child(row)) for row in rows]
  finally:
    if not FLAGS.workdir:
      shutil.rmtree(root, ignore_errors=True)

  print(f'\n{num_videos} videos of {FLAGS.frames} frames at '
        f'{FLAGS.width}x{FLAGS.height}; {_num_cores()} CPU cores; '
        f'build with {FLAGS.build_workers} reading thread(s)\n')
  print('| source | stored short side | build s/video | stored KiB/frame |')
  print('|---|---|---|---|')
  for (source, short_side), (seconds, kib) in builds.items():
    print(f'| {source} | {short_side} | {seconds:.3f} | {kib:.1f} |')
  print(f'\nEpisodes: {EPISODE["way"]}-way {EPISODE["shot"]}-shot, '
        f'Q={EPISODE["query"]}, training augmentation, 224x224 output, '
        f'{FLAGS.episodes} timed episodes per row\n')
  print('| source | stored short side | frames/video | frames/s, 1 thread | '
        f'frames/s/core, all threads / {_num_cores()} | frames per CPU s, all '
        'threads | s/episode, 1 thread | RSS held MiB, 1 thread / all | '
        'peak RSS MiB, 1 thread / all |')
  print('|---|---|---|---|---|---|---|---|---|')
  by_key = {}
  for row, result in results:
    by_key.setdefault(
        (row['source'], row['short_side'], row['frames']), {})[
            row['threads']] = result
  for (source, short_side, frames), r in by_key.items():
    one, every = r['one'], r['all']
    print(f'| {source} | {short_side} | {frames} | {one["fps"]:.0f} | '
          f'{every["fps"]:.0f} | {every["fps_cpu"]:.0f} | '
          f'{one["seconds_per_episode"]:.2f} | '
          f'{one["rss_mib"]:.0f} / {every["rss_mib"]:.0f} | '
          f'{one["peak_mib"]:.0f} / {every["peak_mib"]:.0f} |')


if __name__ == '__main__':
  app.run(main)
