"""Opens the configured dataset's splits as `VideoSource`s."""
import functools

import tensorflow_datasets as tfds
from tensorflow_datasets.core import decode

from input_pipeline import episodes

SPLITS = ('train', 'validation', 'test')


@functools.lru_cache(maxsize=8)
def _builder(dataset, tfds_data_dir, manual_dir, split_dir, source,
             procedural_items):
  if dataset == 'procedural':
    from input_pipeline import procedural  # pylint: disable=g-import-not-at-top
    return procedural.load(procedural.make_config(**dict(procedural_items)),
                           tfds_data_dir)
  from input_pipeline import real_datasets  # pylint: disable=g-import-not-at-top
  return real_datasets.load(dataset, data_dir=tfds_data_dir,
                            manual_dir=manual_dir, split_dir=split_dir,
                            source=source)


def builder_for(data_config) -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder of `config.data` (generated if needed)."""
  procedural = tuple(sorted(
      (k, tuple(v) if isinstance(v, (list, tuple)) else v)
      for k, v in data_config.procedural.items()))
  return _builder(data_config.dataset, data_config.tfds_data_dir,
                  data_config.manual_dir, data_config.split_dir,
                  data_config.source, procedural)


def load_source(data_config, split: str) -> episodes.VideoSource:
  """One split of `config.data`'s dataset, read without decoding."""
  if split not in SPLITS:
    raise ValueError(f'split {split!r} is not one of {SPLITS}.')
  builder = builder_for(data_config)
  records = builder.as_data_source(
      split, deserialize_method=decode.DeserializeMethod.DESERIALIZE_NO_DECODE)
  return episodes.VideoSource(
      records, builder.info.features['label'].names,
      f'{data_config.dataset}/{split}')
