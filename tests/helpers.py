"""Shared test fixtures: tiny datasets made in memory, runs of main.py."""
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
