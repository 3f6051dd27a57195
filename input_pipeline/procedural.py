"""The built-in procedural action dataset as a TFDS builder (no download).

Videos come from `render.render_video` (see `render.py` for what they show and
which misalignments they contain). Each video is a pure function of
`(seed, split, class index, video index)`, so the same config gives identical
examples whatever the generation order.

Labels are global: the train classes come first, then validation, then test;
the class sets are disjoint (each class's parameters are drawn from its own
random stream, which includes the split).

Usage:
  builder = procedural.load(procedural.make_config(), data_dir)
  source = builder.as_data_source(
      'train',
      deserialize_method=decode.DeserializeMethod.DESERIALIZE_NO_DECODE)
"""
import dataclasses
import functools
import io
import logging

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from input_pipeline import render
from input_pipeline.render import class_params  # pylint: disable=unused-import
from input_pipeline.render import ClassParams  # pylint: disable=unused-import
from input_pipeline.render import render_video  # pylint: disable=unused-import
from input_pipeline.render import video_rng

SPLITS = ('train', 'validation', 'test')
JPEG_QUALITY = 85


@dataclasses.dataclass(eq=False)
class ProceduralConfig(tfds.core.BuilderConfig):
  """The size of a procedural dataset; `name` encodes every field.

  Attributes:
    num_classes: classes of (train, validation, test).
    videos_per_class: videos of each class.
    num_frames: F, frames of each video.
    frame_size: S, side of the square frames in pixels.
    seed: the seed of all class and video parameters.
  """
  num_classes: tuple[int, int, int] = (64, 12, 24)
  videos_per_class: int = 30
  num_frames: int = 32
  frame_size: int = 64
  seed: int = 0


def config_name(num_classes, videos_per_class, num_frames, frame_size,
                seed) -> str:
  """E.g. 'c64-12-24_v30_f32_s64_seed0'."""
  classes = '-'.join(str(n) for n in num_classes)
  return (f'c{classes}_v{videos_per_class}_f{num_frames}_s{frame_size}'
          f'_seed{seed}')


@functools.lru_cache(maxsize=None)
def _make_config(num_classes, videos_per_class, num_frames, frame_size, seed):
  # Cached: TFDS rejects a config object that is not the registered one but
  # bears its name, so equal arguments must give the same object.
  return ProceduralConfig(
      name=config_name(num_classes, videos_per_class, num_frames, frame_size,
                       seed),
      description=(
          f'{num_classes[0]}/{num_classes[1]}/{num_classes[2]} classes '
          f'(train/validation/test) x {videos_per_class} videos of '
          f'{num_frames} frames at {frame_size}x{frame_size}, seed {seed}.'),
      num_classes=num_classes,
      videos_per_class=videos_per_class,
      num_frames=num_frames,
      frame_size=frame_size,
      seed=seed)


def make_config(num_classes=(64, 12, 24), videos_per_class=30, num_frames=32,
                frame_size=64, seed=0) -> ProceduralConfig:
  """The config of the given size (the same object for the same arguments)."""
  num_classes = tuple(int(n) for n in num_classes)
  if len(num_classes) != 3 or min(num_classes) < 1:
    raise ValueError(
        f'num_classes={num_classes} must be 3 positive counts (train, '
        'validation, test).')
  if videos_per_class < 1:
    raise ValueError(f'videos_per_class={videos_per_class} must be >= 1.')
  if num_frames < 3:
    raise ValueError(f'num_frames={num_frames} must be >= 3.')
  if frame_size < 8:
    raise ValueError(f'frame_size={frame_size} must be >= 8.')
  return _make_config(num_classes, int(videos_per_class), int(num_frames),
                      int(frame_size), int(seed))


def label_offsets(config: ProceduralConfig) -> dict[str, int]:
  """Global label of the first class of each split."""
  starts = np.cumsum([0] + list(config.num_classes[:-1]))
  return {split: int(start) for split, start in zip(SPLITS, starts)}


def class_names(config: ProceduralConfig) -> list[str]:
  """All class names in global label order: '<split>_<index>_<pattern>'."""
  return [f'{split}_{c:03d}_{class_params(config.seed, split, c).name}'
          for split, n in zip(SPLITS, config.num_classes) for c in range(n)]


def encode_jpeg(frame: np.ndarray) -> bytes:
  """[S, S, 3] uint8 -> JPEG bytes (PIL, fixed settings: deterministic)."""
  buffer = io.BytesIO()
  # 4:4:4 chroma: the actor is a few pixels wide and its colour matters.
  # Optimised Huffman tables: 15% smaller files, same pixels.
  Image.fromarray(frame).save(buffer, format='JPEG', quality=JPEG_QUALITY,
                              subsampling=0, optimize=True)
  return buffer.getvalue()


def video_id(split: str, class_index: int, video_index: int) -> str:
  return f'{split}_{class_index:03d}/vid_{video_index:04d}'


def make_example(config: ProceduralConfig, split: str, class_index: int,
                 video_index: int) -> dict:
  """One video as a TFDS example dict (frames already JPEG-encoded)."""
  video = render_video(
      class_params(config.seed, split, class_index),
      video_rng(config.seed, split, class_index, video_index),
      num_frames=config.num_frames, frame_size=config.frame_size)
  return {
      'frames': [encode_jpeg(frame) for frame in video['frames']],
      'label': label_offsets(config)[split] + class_index,
      'video_id': video_id(split, class_index, video_index),
      'action_span': video['action_span'],
      'actor_boxes': video['actor_boxes'],
  }


class ProceduralActions(tfds.core.GeneratorBasedBuilder):
  """Procedural few-shot action videos (DESIGN.md section 3)."""

  # Bump whenever render.py changes what a config renders: the cache is keyed
  # by config name and version.
  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release.',
      '1.1.0': ('Dark outline on the actor; less clutter (2-4 shapes) and '
                '1-2 distractors; hue jitter 0.05.'),
  }
  BUILDER_CONFIGS = [make_config()]

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    size, frames = config.frame_size, config.num_frames
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'A small actor performs one of many motion patterns during a '
            'random part of the clip, at a random position and speed, over '
            'clutter and moving distractors. ' + (config.description or '')),
        features=tfds.features.FeaturesDict({
            # [F, S, S, 3] uint8
            'frames': tfds.features.Sequence(tfds.features.Image(
                shape=(size, size, 3), encoding_format='jpeg')),
            'label': tfds.features.ClassLabel(names=class_names(config)),
            'video_id': tfds.features.Text(),
            # [t0, t1) as fractions of the clip.
            'action_span': tfds.features.Tensor(shape=(2,), dtype=np.float32),
            # Per frame (y0, x0, y1, x1) in [0, 1]; zeros without the actor.
            'actor_boxes': tfds.features.Tensor(shape=(frames, 4),
                                                dtype=np.float32),
        }),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):
    config = self.builder_config
    num_classes = dict(zip(SPLITS, config.num_classes))[split]
    logging.info('Rendering %s: %d classes x %d videos.', split, num_classes,
                 config.videos_per_class)
    for c in range(num_classes):
      for v in range(config.videos_per_class):
        yield video_id(split, c, v), make_example(config, split, c, v)


def load(config: ProceduralConfig, data_dir: str, *,
         file_format: str = 'array_record') -> ProceduralActions:
  """The prepared builder of `config`, generated under `data_dir` if needed.

  Args:
    config: from `make_config` (its name must encode its fields, so that
      different sizes never share a cache directory).
    data_dir: TFDS data directory (the files land in
      `data_dir/procedural_actions/<config.name>/<VERSION>`); None for TFDS's
      default.
    file_format: 'array_record' allows random access (`as_data_source`).

  Returns:
    The builder, prepared.
  """
  fields = (tuple(config.num_classes), config.videos_per_class,
            config.num_frames, config.frame_size, config.seed)
  if config.name != config_name(*fields):
    raise ValueError(
        f'Config name {config.name!r} does not encode its fields (expected '
        f'{config_name(*fields)!r}); use make_config().')
  # TFDS refuses a config object that bears a registered config's name.
  config = ProceduralActions.builder_configs.get(config.name, config)
  builder = ProceduralActions(config=config, data_dir=data_dir,
                              file_format=file_format)
  if not builder.is_prepared():
    logging.info('Generating %s under %s.', config.name, builder.data_dir)
    builder.download_and_prepare(file_format=file_format)
  return builder
