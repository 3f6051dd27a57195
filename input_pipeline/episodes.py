"""Few-shot episodes: which videos and frames (pure numpy), and the tf.data pipeline.

Episode `i` of a split is a pure function of `(seed, split, i)`: the classes,
the videos, the dense frame indices and the augmentation all come from
`np.random.default_rng([seed, split_code, i])`. A resumed run therefore
continues the same stream from its step alone, and every method is evaluated on
the same test episodes.

The pipeline reads TFDS data sources that return `tf.train.Example` protos
without decoding (`DESERIALIZE_NO_DECODE`): only the M frames an episode uses
are JPEG-decoded, inside tf.data.
"""
import dataclasses
import logging
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from vim_jax.ops import frames as frames_ops

SPLIT_CODES = {'train': 0, 'validation': 1, 'test': 2}


class EpisodeError(ValueError):
  """An episode that this split cannot provide (too few classes or videos)."""


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
  """The shape and the augmentation of the episodes of one split.

  Attributes:
    way: N, classes per episode.
    shot: K, support videos per class.
    query: Q, query videos per class.
    frames: frames read per video (M with a sampler, T without).
    frame_size: output side of every frame, in pixels.
    train: random segment jitter, random crop and flip when True; segment
      centres and a centre crop when False.
    crop_scale: (low, high) side of the random crop as a fraction of the short
      side (training).
    test_crop_fraction: side of the centre crop (evaluation).
    hflip: random horizontal flip in training (never for SSv2).
  """
  way: int
  shot: int
  query: int
  frames: int
  frame_size: int
  train: bool
  crop_scale: tuple = (0.8, 1.0)
  test_crop_fraction: float = 0.875
  hflip: bool = True

  @classmethod
  def of(cls, data, *, frames: int, train: bool) -> 'EpisodeSpec':
    """The spec a `config.data` block describes, with `frames` per video."""
    return cls(way=data.way, shot=data.shot, query=data.query, frames=frames,
               frame_size=data.frame_size, train=train,
               crop_scale=tuple(data.train_crop_scale),
               test_crop_fraction=data.test_crop_fraction, hflip=data.hflip)

  @property
  def num_support(self):
    return self.way * self.shot

  @property
  def num_query(self):
    return self.way * self.query


class VideoSource:
  """Random access to the videos of one split of a TFDS dataset.

  Args:
    records: a sequence of serialised-but-undecoded `tf.train.Example`s, as
      returned by `builder.as_data_source(split, deserialize_method=
      DESERIALIZE_NO_DECODE)`.
    class_names: names of the dataset's global labels.
    name: '<dataset>/<split>', used in error messages.
  """

  def __init__(self, records, class_names: Sequence[str], name: str):
    self.records = records
    self.class_names = list(class_names)
    self.name = name
    labels, lengths = [], []
    for i in range(len(records)):
      feature = records[i].features.feature
      labels.append(feature['label'].int64_list.value[0])
      lengths.append(len(feature['frames'].bytes_list.value))
    self.labels = np.asarray(labels, np.int64)  # [num_videos]
    self.num_frames = np.asarray(lengths, np.int64)  # [num_videos]
    # The procedural dataset knows when the action happens; real ones don't.
    self.has_spans = len(records) > 0 and (
        'action_span' in records[0].features.feature)
    self.classes = np.unique(self.labels)  # global label ids in this split
    self.videos_of_class = [
        np.flatnonzero(self.labels == c) for c in self.classes]
    empty = np.flatnonzero(self.num_frames == 0)
    if empty.size:
      raise EpisodeError(
          f'{name}: videos with no frames: '
          f'{[self.video_id(i) for i in empty[:10]]}')

  def __len__(self):
    return len(self.labels)

  def video_id(self, i) -> str:
    value = self.records[i].features.feature['video_id'].bytes_list.value
    return value[0].decode() if value else str(i)

  def jpegs(self, i) -> Sequence[bytes]:
    return self.records[i].features.feature['frames'].bytes_list.value

  def float_feature(self, i, key) -> np.ndarray:
    return np.asarray(
        self.records[i].features.feature[key].float_list.value, np.float32)

  def check(self, spec: EpisodeSpec, field_prefix: str = 'config.data'):
    """Raises EpisodeError, naming the config field or class, if impossible."""
    if spec.way > len(self.classes):
      raise EpisodeError(
          f'{field_prefix}.way={spec.way} but {self.name} has only '
          f'{len(self.classes)} classes.')
    need = spec.shot + spec.query
    for c, videos in zip(self.classes, self.videos_of_class):
      if len(videos) < need:
        raise EpisodeError(
            f'{self.name}: class {self.class_names[c]!r} has {len(videos)} '
            f'videos, fewer than {field_prefix}.shot + {field_prefix}.query '
            f'= {spec.shot} + {spec.query} = {need}.')


def test_view(num_frames: int, spec: EpisodeSpec):
  """The frames and the crop evaluation reads from a video (no randomness).

  Used by the test split's episodes and by `vim_jax.predict`, so that a
  user's video is seen exactly as it would be in a test episode.

  Args:
    num_frames: frames stored for the video.
    spec: an evaluation spec (its `frames` and `test_crop_fraction`).

  Returns:
    (frame_index [spec.frames] int, the segment centres; crop [3] float, the
    centre square of side `test_crop_fraction` of the short side, in
    `crop_resize`'s (side fraction, y, x) form).
  """
  return (frames_ops.dense_frame_indices(num_frames, spec.frames),
          np.asarray([spec.test_crop_fraction, 0.5, 0.5]))


def plan_episode(source: VideoSource, spec: EpisodeSpec, seed: int,
                 split: str, index: int) -> dict:
  """Which videos, frames and crops make episode `index`; pure numpy.

  Support and query videos are each in a random order: nothing downstream may
  assume the support is sorted by class.

  Returns:
    A dict of numpy arrays: 'classes' [N] global labels; 'video' [V] source
    indices, support first (V = N*K + N*Q); 'labels' [V] in 0..N-1;
    'frame_index' [V, frames]; 'crop' [V, 3] (side fraction, y position,
    x position, positions in [0, 1]); 'flip' [V] bool; 'index' scalar.
  """
  rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
  picked = rng.choice(len(source.classes), spec.way, replace=False)
  need = spec.shot + spec.query
  support, query = [], []
  for label, c in enumerate(picked):
    videos = rng.choice(source.videos_of_class[c], need, replace=False)
    support += [(v, label) for v in videos[:spec.shot]]
    query += [(v, label) for v in videos[spec.shot:]]
  support = [support[i] for i in rng.permutation(len(support))]
  query = [query[i] for i in rng.permutation(len(query))]
  video, labels = map(np.asarray, zip(*(support + query)))
  num_videos = len(video)
  if spec.train:
    jitter = rng.random((num_videos, spec.frames))
    frame_index = np.stack([
        frames_ops.dense_frame_indices(source.num_frames[v], spec.frames, j)
        for v, j in zip(video, jitter)])
    crop = np.stack([
        rng.uniform(*spec.crop_scale, num_videos),
        rng.random(num_videos), rng.random(num_videos)], axis=1)
    flip = (rng.random(num_videos) < 0.5) & spec.hflip
  else:
    frame_index, crop = map(np.stack, zip(*(
        test_view(source.num_frames[v], spec) for v in video)))
    flip = np.zeros(num_videos, bool)
  return dict(
      classes=source.classes[picked].astype(np.int32),
      video=video.astype(np.int32),
      labels=labels.astype(np.int32),
      frame_index=frame_index.astype(np.int32),
      crop=crop.astype(np.float32),
      flip=flip,
      index=np.int64(index))


def crop_resize(jpeg, crop, size):
  """Decodes one JPEG, crops a square (side fraction, y, x) and resizes.

  TensorFlow's JPEG decoder (its default DCT method) and bilinear
  `crop_and_resize`: every consumer of frames (the episodes and
  `vim_jax.predict`) goes through here, so they see the same pixels; PIL's
  decoder differs by a few levels.

  Args:
    jpeg: scalar string tensor, one encoded frame [h, w, 3].
    crop: [3] float (side as a fraction of the short side, y, x positions in
      [0, 1] of the square inside the frame).
    size: output side in pixels.

  Returns:
    uint8 [size, size, 3].
  """
  image = tf.io.decode_jpeg(jpeg, channels=3)
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  side = crop[0] * tf.reduce_min(shape)
  start = crop[1:] * (shape - side)  # [2] (y, x) in pixels
  last = tf.maximum(shape - 1.0, 1.0)
  box = tf.concat([start / last, (start + side - 1.0) / last], axis=0)
  out = tf.image.crop_and_resize(
      tf.cast(image, tf.float32)[None], box[None], [0], [size, size])
  return tf.cast(tf.clip_by_value(tf.round(out[0]), 0, 255), tf.uint8)


def make_episode_fn(source: VideoSource, spec: EpisodeSpec, seed: int,
                    split: str) -> Callable[[tf.Tensor], dict]:
  """A tf function mapping an episode index to a decoded episode."""
  num_videos = spec.num_support + spec.num_query

  def fetch(index):
    plan = plan_episode(source, spec, seed, split, int(index))
    jpegs = [source.jpegs(v)[f] for v, frames in
             zip(plan['video'], plan['frame_index']) for f in frames]
    # Frame centres as fractions of the clip, comparable with action spans.
    frame_pos = ((plan['frame_index'] + 0.5) /
                 source.num_frames[plan['video']][:, None]).astype(np.float32)
    spans = (np.stack([source.float_feature(v, 'action_span')
                       for v in plan['video']]) if source.has_spans
             else np.zeros((num_videos, 2), np.float32))
    return (np.asarray(jpegs, object), plan['classes'], plan['video'],
            plan['labels'], plan['crop'], plan['flip'], frame_pos, spans)

  def episode(index):
    jpegs, classes, video, labels, crop, flip, frame_pos, spans = (
        tf.numpy_function(
            fetch, [index],
            [tf.string, tf.int32, tf.int32, tf.int32, tf.float32, tf.bool,
             tf.float32, tf.float32], stateful=False))
    jpegs.set_shape([num_videos * spec.frames])
    crop = tf.repeat(tf.ensure_shape(crop, [num_videos, 3]), spec.frames, 0)
    frames = tf.map_fn(
        lambda args: crop_resize(args[0], args[1], spec.frame_size),
        (jpegs, crop),
        fn_output_signature=tf.TensorSpec(
            [spec.frame_size, spec.frame_size, 3], tf.uint8))
    frames = tf.reshape(
        frames, [num_videos, spec.frames, spec.frame_size, spec.frame_size, 3])
    flip = tf.ensure_shape(flip, [num_videos])
    frames = tf.where(flip[:, None, None, None, None],
                      tf.reverse(frames, axis=[3]), frames)
    labels = tf.ensure_shape(labels, [num_videos])
    n = spec.num_support
    out = dict(
        support=frames[:n], query=frames[n:],
        support_labels=labels[:n], query_labels=labels[n:],
        classes=tf.ensure_shape(classes, [spec.way]),
        video=tf.ensure_shape(video, [num_videos]),
        frame_pos=tf.ensure_shape(frame_pos, [num_videos, spec.frames]),
        index=tf.cast(index, tf.int32))
    if source.has_spans:
      out['span'] = tf.ensure_shape(spans, [num_videos, 2])
    return out

  return episode


def episode_dataset(source: VideoSource, spec: EpisodeSpec, *, seed: int,
                    split: str, indices: tf.data.Dataset, batch: int,
                    prefetch: int = 2) -> tf.data.Dataset:
  """Batches of decoded episodes for the given stream of episode indices.

  Args:
    source: the split's videos.
    spec: episode shape and augmentation.
    seed: the stream's seed.
    split: 'train', 'validation' or 'test'.
    indices: a dataset of int64 episode indices, in consumption order.
    batch: episodes per batch (this process's share of a step).
    prefetch: batches prepared ahead.
  """
  source.check(spec)
  ds = indices.map(make_episode_fn(source, spec, seed, split),
                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch, drop_remainder=True)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).prefetch(prefetch)


def train_indices(start_step: int, num_steps: int, global_batch: int,
                  process_index: int = 0, process_count: int = 1):
  """Episode indices of steps [start_step, num_steps) for one process.

  Step s uses episodes [s * global_batch, (s + 1) * global_batch); process p
  takes the p-th contiguous share of them, so the stream is the same for any
  number of processes and devices.
  """
  if global_batch % process_count:
    raise ValueError(
        f'config.train.episodes_per_step={global_batch} is not divisible by '
        f'the number of processes {process_count}.')
  local = global_batch // process_count
  k = tf.data.Dataset.range(start_step * local, num_steps * local)
  return k.map(lambda k: (k // local) * global_batch + process_index * local
               + k % local)


def eval_indices(num_episodes: int, global_batch: int, process_index: int = 0,
                 process_count: int = 1):
  """Indices 0..num_episodes-1 laid out like `train_indices`, padded.

  The stream is padded with repeats of the last episode up to a multiple of
  `global_batch`; callers drop padded results by their index (>= num_episodes
  never occurs, so they keep the first occurrence of each index).
  """
  steps = -(-num_episodes // global_batch)
  return train_indices(0, steps, global_batch, process_index,
                       process_count).map(
                           lambda i: tf.minimum(i, num_episodes - 1))


def log_spec(name: str, spec: EpisodeSpec, source: VideoSource):
  logging.info('%s: %d videos, %d classes; %d-way %d-shot %d-query, %d frames '
               'at %d px, train=%s', name, len(source), len(source.classes),
               spec.way, spec.shot, spec.query, spec.frames, spec.frame_size,
               spec.train)

