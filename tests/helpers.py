"""Shared test fixtures: tiny datasets made in memory, runs of main.py."""
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

ROOT = pathlib.Path(__file__).resolve().parents[1]
NO_DECODE = tfds.decode.DeserializeMethod.DESERIALIZE_NO_DECODE
SPLIT_FILE_NAMES = {'train': 'trainlist03.txt', 'validation': 'vallist03.txt',
                    'test': 'testlist03.txt'}


def jpeg(value, size=8):
  """A solid grey JPEG whose pixel value encodes `value`."""
  buf = io.BytesIO()
  Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(
      buf, format='JPEG', quality=95)
  return buf.getvalue()


def example(frames, label, video_id):
  feature = {
      'frames': tf.train.Feature(bytes_list=tf.train.BytesList(value=frames)),
      'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
      'video_id': tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[video_id.encode()])),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature))


def fake_records(videos_per_class, num_frames=10, size=8, first_label=0):
  """Records like a TFDS data source's; frame f of video v has value 20f + v%20."""
  records = []
  for c, count in enumerate(videos_per_class):
    for _ in range(count):
      v = len(records)
      frames = [jpeg(min(20 * f + v % 20, 255), size) for f in range(num_frames)]
      records.append(example(frames, first_label + c, f'class{c}/video{v}'))
  return records


def write_split_dir(path, lines):
  """Writes split files from {split: [(class name, video id)]}, one a line.

  Names go back to the bytes they stand for ('surrogateescape'), so a line
  can name a file whose name is not UTF-8: pass `os.fsdecode(b'...')`.

  Returns:
    `path`, the new split folder.
  """
  os.makedirs(path)
  for split, entries in lines.items():
    text = ''.join(f'{c}/{v}\n' for c, v in entries)
    pathlib.Path(path, SPLIT_FILE_NAMES[split]).write_bytes(
        text.encode('utf-8', 'surrogateescape'))
  return path


def write_video(path, colours, codec='libx264', options=None):
  """A 32 x 32 video at 10 frames/s, one flat RGB colour a frame (PyAV).

  Args:
    path: the file; its extension chooses the container.
    colours: [(r, g, b)] of each frame.
    codec: PyAV's encoder name.
    options: container options, e.g. {'movflags': 'faststart'} for an mp4
      whose index comes before the frames.
  """
  av = pytest.importorskip('av')
  with av.open(str(path), 'w', options=options or {}) as container:
    stream = container.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = 32, 32, 'yuv420p'
    for colour in colours:
      frame = av.VideoFrame.from_ndarray(
          np.full((32, 32, 3), colour, np.uint8), format='rgb24')
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def write_frameless_video(path):
  """A valid AVI whose video stream holds no frame (PyAV); returns `path`."""
  av = pytest.importorskip('av')
  with av.open(str(path), 'w') as container:
    stream = container.add_stream('mpeg4', rate=10)
    stream.height = stream.width = 16
    container.start_encoding()
    for packet in stream.encode():
      container.mux(packet)
  return str(path)


def prepared_records(builder, split):
  """(class name, video id, [JPEG bytes]) of each record of a prepared
  real-dataset split, in record order."""
  source = builder.as_data_source(split, deserialize_method=NO_DECODE)
  names = builder.info.features['label'].names
  out = []
  for i in range(len(source)):
    feature = source[i].features.feature
    (label,) = feature['label'].int64_list.value
    (video_id,) = feature['video_id'].bytes_list.value
    out.append((names[label], video_id.decode(),
                list(feature['frames'].bytes_list.value)))
  return out


def run_main(workdir, data_dir, *args, devices=1, check=True, timeout=600):
  """Runs main.py with configs/test.py on CPU in a subprocess.

  Args:
    workdir: --workdir.
    data_dir: the TFDS data_dir (a test's tmp folder: the procedural data is
      generated there once).
    *args: more flags.
    devices: fake CPU devices.
    check: raise when it fails.
    timeout: seconds.

  Returns:
    The `subprocess.CompletedProcess` (text stdout and stderr).
  """
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  cmd = [sys.executable, str(ROOT / 'main.py'),
         f'--config={ROOT}/configs/test.py', f'--workdir={workdir}',
         f'--config.data.tfds_data_dir={data_dir}', *map(str, args)]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                        timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f'{cmd} failed:\n{proc.stderr[-4000:]}')
  return proc
