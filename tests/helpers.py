"""Shared test fixtures: tiny datasets made in memory."""
import io

import numpy as np
import tensorflow as tf
from PIL import Image


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
