"""TFDS builder for the real few-shot action recognition benchmarks.

One builder, `FewShotVideos` (TFDS name 'few_shot_videos'), with one
BuilderConfig per benchmark: 'ucf_ARN', 'hmdb_ARN', 'kinetics_CMN',
'ssv2_CMN', 'ssv2_OTAM', 'activitynet_VIM' (`DATASETS`). The examples are the
videos listed by a split folder (see `splits.py`), read from the user's manual
download folder (`manual_dir`), which holds either

* extracted frames, `root/class/video_id/*.jpg` (`source='frames'`), or
* video files, `root/class/video_id.<ext>` with ext in mp4/avi/webm/mkv
  (`source='videos'`, decoded with PyAV).

SSv2 is flat: `root/video_id/*.jpg` or `root/video_id.webm`; an OTAM line
`trainN/id` is read from `root/id`. A class folder named with underscores for
spaces (`air_drumming` for 'air drumming') is accepted too.

Options (`FewShotVideosConfig` fields, passed to `load` as keywords):

* `max_frames` (default 64): longer videos are subsampled uniformly to this
  many frames when building (segment centres, `video_decode.subsample_indices`);
  0 keeps every frame.
* `resize_short_side` (default 128): frames whose short side is longer are
  shrunk to it, aspect kept; smaller frames are not enlarged; 0 keeps the size.
  JPEG frames that need no change are stored with their original bytes.
* `jpeg_quality` (default 90): for frames that are (re-)encoded.
* `num_workers` (default 4): threads reading videos (does not change the data).

Features (shared with the procedural dataset; the episode pipeline reads them
with `as_data_source(split, deserialize_method=DESERIALIZE_NO_DECODE)`):
'frames' (a sequence of JPEG images), 'label' (ClassLabel over the classes of
train, validation and test, in split-file order; see `splits.class_names`),
'video_id' (the id after the slash of the split line). Splits 'train',
'validation', 'test'; records keep the order of the split file (shuffling is
disabled), so `record_labels` gives the label of every record index.

Next to the prepared data (`builder.data_dir`, i.e.
`<data_dir>/few_shot_videos/<config>/<version>/`):

* `missing_videos.txt`: one line per split-file line whose video was not
  written, `split<TAB>class/video_id<TAB>reason`: no folder or file (also for
  a class that is not there), zero frames, undecodable (zero bytes, truncated,
  not a video, no video stream, an unreadable frame), a video id that is not
  valid UTF-8 (the record stores it as text; shown with \\xNN escapes, see
  `splits.printable`), or a repeat of an earlier line of the split (the video
  is written once, for its first line). They are also counted in a logged
  warning. Nothing is dropped silently: the records of a split are its lines
  less these.
* `metadata.json` (TFDS metadata): 'video_counts' {split: {class: videos
  written}} for every listed class (zeros included), 'num_listed' and
  'num_missing' per split, 'record_labels' {split: [label of record i]},
  'record_num_frames' {split: [frames of record i]}, 'options'. Read them with
  `video_counts`, `record_labels`, `record_num_frames`, `missing_videos`
  (no need to scan the records).

Generation streams: videos are read by a few threads, one at a time per
thread, and TFDS's writer spills to disk beyond 1 GB. The config name of a
`load`ed builder encodes the options and a hash of the split files, so a
different choice is prepared into a different folder.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Iterable, Iterator

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from input_pipeline import splits as splits_lib
from input_pipeline import video_decode

MISSING_VIDEOS_FILE = 'missing_videos.txt'
METADATA_FILE = 'metadata.json'
SOURCES = ('frames', 'videos')


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What differs between the benchmarks.

  Attributes:
    name: config name, also the name of the split folder under `splits/`.
    description: the dataset and split protocol.
    flat_layout: videos sit directly under the root (`root/video_id`), with no
      class folder (Something-Something v2).
    line_format: of the split files (`splits.LINE_FORMATS`).
    horizontal_flip_ok: whether a mirrored video keeps its label (not for
      SSv2, where left and right are part of the class).
  """
  name: str
  description: str
  flat_layout: bool = False
  line_format: str = splits_lib.CLASS_VIDEO
  horizontal_flip_ok: bool = True


DATASETS = {
    s.name: s for s in (
        DatasetSpec('ucf_ARN', 'UCF101, ARN few-shot split (70/10/21).'),
        DatasetSpec('hmdb_ARN', 'HMDB51, ARN few-shot split (31/10/10).'),
        DatasetSpec('kinetics_CMN',
                    'Kinetics-100, CMN few-shot split (64/12/24).'),
        DatasetSpec('ssv2_CMN',
                    'Something-Something v2 small, CMN split (64/12/24).',
                    flat_layout=True, horizontal_flip_ok=False),
        DatasetSpec('ssv2_OTAM',
                    'Something-Something v2 full, OTAM split (64/12/24).',
                    flat_layout=True,
                    line_format=splits_lib.SPLIT_INDEX_VIDEO,
                    horizontal_flip_ok=False),
        DatasetSpec('activitynet_VIM',
                    'ActivityNet, 100 classes of 70 videos (VIM, 4.3.2).'),
    )
}

HORIZONTAL_FLIP_OK = {
    name: spec.horizontal_flip_ok for name, spec in DATASETS.items()}


@dataclasses.dataclass(eq=False)
class FewShotVideosConfig(tfds.core.BuilderConfig):
  """BuilderConfig of one benchmark plus the build options.

  Attributes:
    dataset: key of `DATASETS`.
    split_dir: folder with the train/val/test split files (required to build).
    source: 'frames' (extracted frame folders) or 'videos' (video files).
    max_frames: keep at most this many frames per video; 0 keeps all.
    resize_short_side: shrink frames to this short side; 0 keeps the size.
    jpeg_quality: quality of re-encoded frames.
    num_workers: threads reading videos.
  """
  dataset: str = ''
  split_dir: str | None = None
  source: str = 'frames'
  max_frames: int = 64
  resize_short_side: int = 128
  jpeg_quality: int = 90
  num_workers: int = 4


_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Point `manual_dir` at the folder holding the videos of the split files, either
as extracted frames, root/<class>/<video_id>/*.jpg (source='frames'), or as
video files, root/<class>/<video_id>.<mp4|avi|webm|mkv> (source='videos').
Something-Something v2 is flat: root/<video_id>/*.jpg or root/<video_id>.webm.
Pass the split folder (e.g. splits/ucf_ARN) as `split_dir`.
"""


def _split_files_hash(split_dir: str) -> str:
  digest = hashlib.sha256()
  for split in splits_lib.SPLITS:
    with open(splits_lib.split_file(split_dir, split), 'rb') as f:
      digest.update(f.read())
  return digest.hexdigest()[:8]


class FewShotVideos(tfds.core.GeneratorBasedBuilder):
  """Few-shot action recognition benchmarks from a manual download folder."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      FewShotVideosConfig(name=s.name, description=s.description,
                          dataset=s.name) for s in DATASETS.values()
  ]

  @property
  def _spec(self) -> DatasetSpec:
    return DATASETS[self.builder_config.dataset]

  def _entries(self) -> dict[str, list[tuple[str, str]]]:
    config = self.builder_config
    if not config.split_dir:
      raise ValueError(
          f'Config {config.name!r} has no split_dir; build it with '
          f'real_datasets.load({config.dataset!r}, split_dir=...).')
    return splits_lib.read_splits(config.split_dir, self._spec.line_format)

  def _info(self) -> tfds.core.DatasetInfo:
    names = splits_lib.class_names(self._entries(), self._spec.line_format)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'frames': tfds.features.Sequence(
                tfds.features.Image(shape=(None, None, 3),
                                    encoding_format='jpeg')),
            'label': tfds.features.ClassLabel(names=names),
            'video_id': tfds.features.Text(),
        }),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    if config.source not in SOURCES:
      raise ValueError(f'source must be one of {SOURCES}, '
                       f'got {config.source!r}')
    root = os.fspath(dl_manager.manual_dir)
    entries = self._entries()
    self._missing = []
    metadata = self.info.metadata
    metadata.update({
        'options': {
            'dataset': config.dataset,
            'source': config.source,
            'max_frames': config.max_frames,
            'resize_short_side': config.resize_short_side,
            'jpeg_quality': config.jpeg_quality,
            'split_dir': os.fspath(config.split_dir),
            'split_files_sha256_8': _split_files_hash(config.split_dir),
            'manual_dir': root,
        },
        'video_counts': {},
        'num_listed': {},
        'num_missing': {},
        'record_labels': {},
        'record_num_frames': {},
    })
    self._write_missing()  # An empty file says that nothing is missing.
    return {split: self._generate_examples(split, entries[split], root)
            for split in splits_lib.SPLITS}

  def _video_path(self, root: str, class_name: str, video_id: str) -> str:
    """The frame folder or the video file's path without extension."""
    if self._spec.flat_layout:
      return os.path.join(root, video_id)
    path = os.path.join(root, class_name, video_id)
    alt_class = class_name.replace(' ', '_')
    if alt_class != class_name and not os.path.exists(
        os.path.join(root, class_name)):
      return os.path.join(root, alt_class, video_id)
    return path

  def _read_video(self, root: str, class_name: str,
                  video_id: str) -> list[bytes]:
    config = self.builder_config
    path = self._video_path(root, class_name, video_id)
    kwargs = dict(max_frames=config.max_frames,
                  resize_short_side=config.resize_short_side,
                  quality=config.jpeg_quality)
    if config.source == 'frames':
      frames, _ = video_decode.read_frame_folder(path, **kwargs)
    else:
      video_file = video_decode.find_video_file(path)
      if video_file is None:
        raise video_decode.UnreadableVideoError(
            f'no file {path}.{{{",".join(video_decode.VIDEO_EXTENSIONS)}}}')
      frames, _ = video_decode.decode_video_file(video_file, **kwargs)
    return frames

  def _generate_examples(self, split: str, entries: list[tuple[str, str]],
                         root: str) -> Iterator[tuple[int, dict[str, Any]]]:
    label_feature = self.info.features['label']
    # Integer keys spread over the 128-bit key space: with shuffling disabled
    # TFDS writes records in key order, and spread keys land in different
    # temporary buckets, so no bucket has to hold a whole split in memory.
    key_step = 2**128 // max(len(entries), 1)

    first_line = {}
    for index, entry in enumerate(entries):
      first_line.setdefault(entry, index)

    def read(index):
      class_name, video_id = entry = entries[index]
      if first_line[entry] != index:
        return None, (f'repeats an earlier line of the {split} split file; '
                      'the video is written once')
      if not splits_lib.is_utf8(video_id):
        return None, ('video id is not valid UTF-8 and records store it as '
                      'text; rename the file or folder and its split line')
      try:
        return self._read_video(root, class_name, video_id), None
      except video_decode.UnreadableVideoError as e:
        return None, str(e)

    counts = collections.Counter()
    labels, lengths = [], []
    missing = 0
    results = _ordered_map(read, range(len(entries)),
                           self.builder_config.num_workers)
    for index, (entry, (frames, error)) in enumerate(zip(entries, results)):
      class_name, video_id = entry
      if frames is None:
        missing += 1
        self._missing.append((split, f'{class_name}/{video_id}', error))
        continue
      counts[class_name] += 1
      label = label_feature.str2int(class_name)
      labels.append(label)
      lengths.append(len(frames))
      yield index * key_step, {
          'frames': frames,
          'label': label,
          'video_id': video_id,
      }

    metadata = self.info.metadata
    metadata['video_counts'][split] = {
        c: counts[c] for c in dict.fromkeys(c for c, _ in entries)}
    metadata['num_listed'][split] = len(entries)
    metadata['num_missing'][split] = missing
    metadata['record_labels'][split] = labels
    metadata['record_num_frames'][split] = lengths
    self._write_missing()
    if missing:
      logging.warning(
          '%s/%s: %d of %d listed videos are missing or unreadable; they are '
          'listed in %s in the prepared data folder.',
          self.builder_config.dataset, split, missing, len(entries),
          MISSING_VIDEOS_FILE)
    if not labels:
      raise ValueError(
          f'No readable video of split {split!r} of {self.builder_config.name}'
          f' under {root} (source={self.builder_config.source!r}); first '
          f'problem: {self._missing[-missing][2]}.\n'
          f'{_MANUAL_DOWNLOAD_INSTRUCTIONS}')

  def _write_missing(self):
    # Names and reasons may hold bytes that are not UTF-8 (from file names).
    lines = ''.join(splits_lib.printable(f'{s}\t{v}\t{r}\n')
                    for s, v, r in self._missing)
    (epath.Path(self.data_dir) / MISSING_VIDEOS_FILE).write_text(lines)


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any],
                 num_workers: int) -> Iterator[Any]:
  """`map(fn, items)` on threads, in order, with a bounded number in flight."""
  if num_workers <= 1:
    yield from map(fn, items)
    return
  with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 2 * num_workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def load(dataset: str, *, data_dir: str | os.PathLike,
         manual_dir: str | os.PathLike, split_dir: str | os.PathLike,
         source: str = 'frames', overwrite: bool = False,
         **options) -> FewShotVideos:
  """Constructs and prepares (once) the builder of a benchmark.

  Args:
    dataset: a key of `DATASETS`, e.g. 'ucf_ARN'.
    data_dir: where TFDS keeps prepared data.
    manual_dir: the folder of frames or video files (see module docstring).
    split_dir: the folder of split files, e.g. `splits/ucf_ARN`.
    source: 'frames' or 'videos'.
    overwrite: rebuild even if this configuration was prepared before (for
      example after adding missing videos to `manual_dir`).
    **options: other `FewShotVideosConfig` fields: max_frames,
      resize_short_side, jpeg_quality, num_workers.

  Returns:
    The prepared builder (array_record files); read it with
    `builder.as_data_source(split, deserialize_method=...)`.
  """
  if dataset not in DATASETS:
    raise ValueError(f'Unknown dataset {dataset!r}; known: {sorted(DATASETS)}')
  if source not in SOURCES:
    raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
  fields = {f.name for f in dataclasses.fields(FewShotVideosConfig)}
  unknown = set(options) - (fields - {'name', 'dataset', 'split_dir',
                                      'source'})
  if unknown:
    raise TypeError(f'Unknown options for {dataset}: {sorted(unknown)}')
  split_dir = os.fspath(split_dir)
  base = FewShotVideos.builder_configs[dataset]
  config = dataclasses.replace(base, split_dir=split_dir, source=source,
                               **options)
  # The name fixes the folder of the prepared data: it encodes every option
  # that changes the data, so another choice is never read from a stale build.
  config.name = (
      f'{dataset}_{source}_m{config.max_frames}_r{config.resize_short_side}'
      f'_q{config.jpeg_quality}_{_split_files_hash(split_dir)}')
  builder = FewShotVideos(config=config, data_dir=os.fspath(data_dir),
                          file_format='array_record')
  mode = tfds.download.GenerateMode
  download_mode = (mode.REUSE_CACHE_IF_EXISTS if overwrite else
                   mode.REUSE_DATASET_IF_EXISTS)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir), download_mode=download_mode))
  missing = missing_videos(builder)
  if missing:
    logging.warning('%s: %d listed videos are missing or unreadable, see %s',
                    dataset, len(missing),
                    os.path.join(builder.data_dir, MISSING_VIDEOS_FILE))
  return builder


def _metadata(builder: tfds.core.DatasetBuilder) -> dict[str, Any]:
  with open(os.path.join(builder.data_dir, METADATA_FILE)) as f:
    return json.load(f)


def video_counts(
    builder: tfds.core.DatasetBuilder) -> dict[str, dict[str, int]]:
  """{split: {class: videos written}} of a prepared builder."""
  return _metadata(builder)['video_counts']


def record_labels(builder: tfds.core.DatasetBuilder, split: str) -> np.ndarray:
  """Label of each record of `split`, by record index: int64 [num_records]."""
  return np.asarray(_metadata(builder)['record_labels'][split], np.int64)


def record_num_frames(builder: tfds.core.DatasetBuilder,
                      split: str) -> np.ndarray:
  """Stored frames of each record of `split`: int64 [num_records]."""
  return np.asarray(_metadata(builder)['record_num_frames'][split], np.int64)


def missing_videos(
    builder: tfds.core.DatasetBuilder) -> list[tuple[str, str, str]]:
  """(split, 'class/video_id', reason) of each listed video not written."""
  path = os.path.join(builder.data_dir, MISSING_VIDEOS_FILE)
  with open(path, encoding='utf-8') as f:
    return [tuple(line.rstrip('\n').split('\t', 2))
            for line in f if line.strip()]
