"""Opens the configured dataset's splits as `VideoSource`s.

`config.data.dataset` is 'procedural' (the built-in dataset) or a builder
config of `real_datasets` ('ucf_ARN', 'hmdb_ARN', 'kinetics_CMN', 'ssv2_CMN',
'ssv2_OTAM', 'activitynet_VIM'), prepared once from `data.manual_dir` and
`data.split_dir` with the build options `data.max_frames`,
`data.resize_short_side`, `data.jpeg_quality` and `data.build_workers`.

Two protocol variants act here:

* limit test (paper 4.4.8): `data.limit > 0` keeps that many training videos
  per class (`limit_videos_per_class`);
* cross-domain test (paper 4.4.11): `data.test_dataset` takes the test split
  from another builder (`data.test_split_dir`, `data.test_manual_dir`,
  `data.test_source`); training and validation stay on `data.dataset`, so
  model selection never sees the target domain.

Horizontal flips: `data.hflip=True` on a dataset whose labels depend on
left and right (SSv2, `real_datasets.HORIZONTAL_FLIP_OK`) is an error, not a
silent change; the SSv2 configs set it to False.
"""
import copy
import dataclasses
import functools
import logging

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import decode

from input_pipeline import episodes
from input_pipeline import real_datasets

SPLITS = ('train', 'validation', 'test')
PROCEDURAL = 'procedural'


@dataclasses.dataclass(frozen=True)
class BuildRequest:
  """Everything that selects one prepared builder (hashable, for the cache).

  Attributes:
    dataset: 'procedural' or a `real_datasets.DATASETS` key.
    tfds_data_dir: TFDS data_dir (None: TFDS's default).
    manual_dir: the user's frames or videos (real datasets).
    split_dir: the split folder (real datasets).
    source: 'frames' or 'videos'.
    options: sorted (name, value) build options (`real_datasets.load`
      keywords, or the procedural dataset's fields).
  """
  dataset: str
  tfds_data_dir: str | None
  manual_dir: str | None
  split_dir: str | None
  source: str
  options: tuple


@functools.lru_cache(maxsize=8)
def _builder(request: BuildRequest):
  if request.dataset == PROCEDURAL:
    from input_pipeline import procedural  # pylint: disable=g-import-not-at-top
    return procedural.load(procedural.make_config(**dict(request.options)),
                           request.tfds_data_dir)
  return real_datasets.load(
      request.dataset,
      data_dir=request.tfds_data_dir or tfds.core.constants.DATA_DIR,
      manual_dir=request.manual_dir, split_dir=request.split_dir,
      source=request.source, **dict(request.options))


def build_request(data_config, split: str = 'train') -> BuildRequest:
  """Which builder serves `split` of `config.data`.

  Raises:
    ValueError: an unknown dataset, or a real dataset without its split or
      manual folder (naming the config field).
  """
  if split not in SPLITS:
    raise ValueError(f'split {split!r} is not one of {SPLITS}.')
  data = data_config
  if data.dataset == PROCEDURAL and not (split == 'test' and
                                         data.get('test_dataset')):
    options = tuple(sorted(
        (k, tuple(v) if isinstance(v, (list, tuple)) else v)
        for k, v in data.procedural.items()))
    return BuildRequest(PROCEDURAL, data.tfds_data_dir, None, None,
                        data.source, options)
  prefix = ''
  dataset = data.dataset
  if split == 'test' and data.get('test_dataset'):
    prefix, dataset = 'test_', data.test_dataset
  known = real_datasets.DATASETS
  if dataset not in known:
    field = f'config.data.{prefix}dataset'
    valid = sorted(known) if prefix else [PROCEDURAL] + sorted(known)
    raise ValueError(f'{field}={dataset!r} is not one of {valid}.')
  fields = {}
  for name in ('split_dir', 'manual_dir'):
    value = data.get(prefix + name)
    if not value:
      raise ValueError(
          f'config.data.{prefix}{name} is not set; {dataset} needs it: pass '
          f'--config.data.{prefix}{name}=' + (
              f'../shared/splits/{dataset} (the folder of its train/val/test '
              'split files)' if name == 'split_dir' else
              f'<folder of the {dataset} frames or videos>') + '.')
    fields[name] = value
  source = (data.get('test_source') if prefix else None) or data.source
  options = (('jpeg_quality', data.jpeg_quality),
             ('max_frames', data.max_frames),
             ('num_workers', data.build_workers),
             ('resize_short_side', data.resize_short_side))
  return BuildRequest(dataset, data.tfds_data_dir, fields['manual_dir'],
                      fields['split_dir'], source, options)


def builder_for(data_config, split: str = 'train') -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder serving `split` of `config.data` (generated if
  needed)."""
  return _builder(build_request(data_config, split))


def check_hflip(data_config) -> None:
  """Raises ValueError if training would mirror videos whose label it flips."""
  if data_config.dataset == PROCEDURAL or not data_config.hflip:
    return
  if not real_datasets.HORIZONTAL_FLIP_OK.get(data_config.dataset, True):
    raise ValueError(
        f'config.data.hflip=True but {data_config.dataset} labels depend on '
        'left and right (a mirrored video changes class); pass '
        '--config.data.hflip=False (the SSv2 configs do).')


def limit_videos_per_class(source: episodes.VideoSource, limit: int,
                           seed: int) -> episodes.VideoSource:
  """A view of `source` whose episodes use at most `limit` videos per class.

  Class `c` keeps the first `limit` videos of a permutation drawn from
  `np.random.default_rng([seed, c])` (`c` = global label), in record order:
  the subset depends on neither the other classes nor the run, and a smaller
  limit keeps a subset of a larger one. Classes with fewer videos keep all.
  The records, labels and frame counts are shared with `source` (episode plans
  index records); only `videos_of_class` is restricted.

  Args:
    source: the full split.
    limit: videos kept per class; 0 keeps all (returns `source`).
    seed: fixes the subset.

  Returns:
    A shallow copy of `source` with `videos_of_class` restricted and the limit
    in its name.
  """
  if limit < 0:
    raise ValueError(f'config.data.limit={limit} must be >= 0.')
  if not limit:
    return source
  kept = []
  for c, videos in zip(source.classes, source.videos_of_class):
    order = np.random.default_rng([seed, int(c)]).permutation(len(videos))
    kept.append(np.sort(videos[order[:limit]]))
  restricted = copy.copy(source)
  restricted.videos_of_class = kept
  total = sum(len(v) for v in kept)
  restricted.name = f'{source.name}[limit={limit}]'
  logging.info('%s: limit test, %d of %d videos (at most %d per class)',
               source.name, total, len(source), limit)
  return restricted


def load_source(data_config, split: str) -> episodes.VideoSource:
  """One split of `config.data`'s dataset, read without decoding.

  The training split honours `data.limit`; the test split comes from
  `data.test_dataset` when it is set.
  """
  if split == 'train':
    check_hflip(data_config)
  request = build_request(data_config, split)
  builder = _builder(request)
  records = builder.as_data_source(
      split, deserialize_method=decode.DeserializeMethod.DESERIALIZE_NO_DECODE)
  source = episodes.VideoSource(
      records, builder.info.features['label'].names,
      f'{request.dataset}/{split}')
  if split == 'train':
    source = limit_videos_per_class(source, data_config.get('limit', 0),
                                    data_config.get('limit_seed', 0))
  return source
