"""The real-dataset configs and what input_pipeline/datasets.py does with them.

The configs are parsed the way main.py parses them (config_flags, with the
command lines of their docstrings); the paper's numbers are written out here
from Tables 1, 2 and 3, independently of the docstrings. The cross-domain and
limit tests build two tiny frame trees from the real split files.
"""
import os
import pathlib
import re

import numpy as np
from PIL import Image
import pytest

from configs import real
from input_pipeline import datasets
from input_pipeline import episodes
from input_pipeline import splits
from tests import helpers
from tests.test_configs import _parse
from tests.test_real_datasets import _pick
from tests.helpers import write_split_dir
from tests.test_real_datasets import needs_splits

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASET_CONFIGS = {
    'ucf101': 'ucf_ARN', 'hmdb51': 'hmdb_ARN', 'kinetics100': 'kinetics_CMN',
    'ssv2_small': 'ssv2_CMN', 'ssv2_full': 'ssv2_OTAM',
    'activitynet': 'activitynet_VIM',
}
# Paper Table 1 (5-way; ssv2_small is the paper's SSv2) and Table 2.
PAPER = {
    'ucf101': {('VIM', 1): 86.2, ('VIM', 5): 96.1,
               ('ProtoNet*', 1): 78.7, ('ProtoNet*', 5): 89.6},
    'hmdb51': {('VIM', 1): 61.1, ('VIM', 5): 76.5,
               ('ProtoNet*', 1): 54.2, ('ProtoNet*', 5): 68.4},
    'kinetics100': {('VIM', 1): 73.8, ('VIM', 5): 87.1,
                    ('ProtoNet*', 1): 64.5, ('ProtoNet*', 5): 77.9},
    'ssv2_small': {('VIM', 1): 40.8, ('VIM', 5): 54.9,
                   ('ProtoNet*', 1): 34.2, ('ProtoNet*', 5): 46.5},
    'activitynet': {('VIM', 1): 74.7, ('VIM', 3): 79.3, ('VIM', 5): 89.6,
                    ('ProtoNet*', 1): 66.5, ('ProtoNet*', 3): 73.4,
                    ('ProtoNet*', 5): 80.3},
}
# The other methods alone (Table 1; Table 2 for ActivityNet) and with VIM
# (Table 3): {dataset: {method: {shot: (alone, + VIM)}}}.
TABLE_3 = {
    'hmdb51': {'OTAM': {1: (54.5, 59.3), 5: (66.1, 74.2)},
               'TRX': {1: (53.1, 55.5), 5: (75.6, 76.3)},
               'HyRSM': {1: (60.3, 60.9), 5: (76.0, 75.6)}},
    'ucf101': {'OTAM': {1: (79.9, 83.6), 5: (88.9, 94.5)},
               'TRX': {1: (78.6, 83.7), 5: (96.1, 95.6)},
               'HyRSM': {1: (83.9, 85.3), 5: (94.7, 95.2)}},
    'kinetics100': {'OTAM': {1: (73.0, 74.3), 5: (85.8, 86.1)},
                    'TRX': {1: (63.6, 68.8), 5: (85.9, 86.0)},
                    'HyRSM': {1: (73.7, 73.9), 5: (86.1, 86.6)}},
    'ssv2_small': {'OTAM': {1: (36.4, 38.9), 5: (48.0, 51.4)},
                   'TRX': {1: (36.0, 39.6), 5: (59.1, 58.0)},
                   'HyRSM': {1: (40.6, 41.0), 5: (56.1, 56.8)}},
    'activitynet': {'OTAM': {1: (69.9, 75.4), 3: (75.9, None),
                             5: (85.2, 87.7)},
                    'TRX': {1: (69.9, 72.2), 3: (77.6, None),
                            5: (88.7, 89.9)},
                    'HyRSM': {1: (72.1, 73.8), 3: (78.0, None),
                              5: (87.5, 88.1)}},
}
# Every cell a dataset config's docstring holds a command for.
CELLS = {name: {**PAPER[name], **{
    (f'{method} + VIM' if vim else method, shot): number
    for method, shots in TABLE_3[name].items()
    for shot, numbers in shots.items()
    for vim, number in enumerate(numbers) if number is not None}}
         for name in PAPER}
HEADS = {'OTAM': 'otam', 'TRX': 'trx', 'HyRSM': 'hyrsm'}
ARGS = ['shot=1', 'shot=5', 'shot=1,limit=20', 'way=10,shot=1',
        'shot=1,test_dataset=ucf_ARN', 'shot=5,method=protonet',
        'shot=1,method=otam', 'shot=5,method=trx_vim',
        'shot=1,method=hyrsm_vim']


def _path(name):
  return ROOT / 'configs' / f'{name}.py'


@pytest.mark.parametrize('arg', ARGS)
@pytest.mark.parametrize('name', sorted(DATASET_CONFIGS))
def test_dataset_config_loads_with_its_arguments(name, arg):
  config = _parse([f'--config={_path(name)}:{arg}'])
  given = dict(item.split('=') for item in arg.split(','))
  data, model = config.data, config.model
  assert data.dataset == DATASET_CONFIGS[name]
  assert (data.way, data.shot, data.query) == (
      int(given.get('way', 5)), int(given['shot']), 5)
  assert data.limit == int(given.get('limit', 0))
  assert data.test_dataset == given.get('test_dataset')
  # SSv2's classes depend on left and right: never mirrored.
  assert data.hflip == (not name.startswith('ssv2'))
  # Paper 4.2.
  assert (model.backbone, model.backbone_width) == ('resnet50', 64)
  assert (data.frame_size, data.dense_frames, model.frames) == (224, 20, 8)
  assert data.resize_short_side == 256
  assert config.eval.test_episodes == 10_000
  train = config.train
  assert (train.lr, train.lr_decay, train.sigma, train.sigma_decay) == (
      0.01, 0.9, 0.1, 0.8)
  assert (train.mu1, train.mu2) == (0.5, 1.0)
  # 'Epochs' of 200 episodes, in steps of episodes_per_step episodes.
  episodes_per_step = train.episodes_per_step
  assert train.num_steps * episodes_per_step == 15_000 * 200
  assert train.lr_decay_every * episodes_per_step == 5000 * 200
  assert train.sigma_decay_every * episodes_per_step == 2000 * 200
  method = given.get('method', 'vim')
  vim = method == 'vim' or method.endswith('_vim')
  assert model.head == {'vim': 'protonet', 'protonet': 'protonet'}.get(
      method, method.removesuffix('_vim'))
  sampler, alignment = model.sampler, model.alignment
  assert sampler.enabled == vim
  assert all(sampler[k] for k in ('temporal', 'spatial', 'adaptive'))
  assert [alignment[k] for k in ('transform', 'rearrange', 'spatial')] == [
      vim] * 3
  assert data.split_dir is None and data.manual_dir is None


def test_generic_real_config_and_bad_arguments():
  config = _parse([f'--config={_path("real")}:dataset=hmdb_ARN,shot=5'])
  assert (config.data.dataset, config.data.shot) == ('hmdb_ARN', 5)
  with pytest.raises(ValueError, match='test_dataset=.*ucf101'):
    real.make_config('kinetics_CMN', 'test_dataset=ucf101')
  with pytest.raises(ValueError, match='method='):
    real.make_config('kinetics_CMN', 'method=dtw')


def _docstring_commands(name):
  """{(method, shot): (paper number, [argv after main.py])} of a docstring."""
  text = _path(name).read_text().split('"""')[1]
  cells = {}
  pattern = (r'^(VIM|ProtoNet\*|(?:OTAM|TRX|HyRSM)(?: \+ VIM)?), 5-way '
             r'(\d)-shot \(paper: ([\d.]+)\):\n\n(.*?)(?:\n\n|\Z)')
  for method, shot, number, command in re.findall(pattern, text,
                                                  re.S | re.M):
    argv = command.replace('\\\n', ' ').split()
    assert argv[:2] == ['python', 'main.py']
    cells[method, int(shot)] = (float(number), argv[2:])
  return cells


@pytest.mark.parametrize('name', sorted(CELLS))
def test_docstring_commands_run_the_paper_cells(name):
  cells = _docstring_commands(name)
  assert {k: v[0] for k, v in cells.items()} == CELLS[name]
  for (method, shot), (_, argv) in cells.items():
    flags = [a for a in argv if not a.startswith('--workdir=')]
    assert len(flags) == len(argv) - 1  # every command names a workdir
    flags = [f'--config={ROOT}/' + a[len('--config='):]
             if a.startswith('--config=') else a for a in flags]
    config = _parse(flags)
    assert (config.data.way, config.data.shot) == (5, shot)
    vim = method.endswith('VIM')
    assert config.model.sampler.enabled == vim
    assert config.model.alignment.rearrange == vim
    assert config.model.head == HEADS.get(method.split(' ')[0], 'protonet')
    assert os.path.basename(config.data.split_dir) == config.data.dataset
    assert config.data.manual_dir and config.model.backbone_weights
    assert bool(config.model.scan_weights) == vim


def _source(videos_per_class):
  records = helpers.fake_records(videos_per_class, num_frames=2, size=4)
  return episodes.VideoSource(records, [f'c{i}' for i in range(
      len(videos_per_class))], 'fake/train')


def test_limit_keeps_exactly_limit_videos_per_class_deterministically():
  source = _source([6, 5, 2, 7])
  before = [v.copy() for v in source.videos_of_class]
  limited = datasets.limit_videos_per_class(source, 3, seed=0)
  assert [len(v) for v in limited.videos_of_class] == [3, 3, 2, 3]
  for kept, full in zip(limited.videos_of_class, before):
    assert set(kept) <= set(full) and list(kept) == sorted(kept)
  # The same subset every time; the full source is untouched.
  again = datasets.limit_videos_per_class(_source([6, 5, 2, 7]), 3, seed=0)
  for a, b in zip(limited.videos_of_class, again.videos_of_class):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(source.videos_of_class, before):
    np.testing.assert_array_equal(a, b)
  # A smaller limit keeps a subset of a larger one; another seed differs.
  larger = datasets.limit_videos_per_class(source, 4, seed=0)
  for small, big in zip(limited.videos_of_class, larger.videos_of_class):
    assert set(small) <= set(big)
  other = datasets.limit_videos_per_class(source, 3, seed=1)
  assert any(set(a) != set(b) for a, b in zip(limited.videos_of_class,
                                              other.videos_of_class))
  assert datasets.limit_videos_per_class(source, 0, seed=0) is source
  # Episodes only use the kept videos.
  spec = episodes.EpisodeSpec(way=4, shot=1, query=1, frames=2, frame_size=4,
                              train=True)
  kept = set(np.concatenate(limited.videos_of_class))
  used = set()
  for i in range(30):
    used |= set(episodes.plan_episode(limited, spec, 0, 'train', i)['video'])
  assert used <= kept and len(used) > 8


def test_missing_fields_and_hflip_name_the_config_field():
  config = real.make_config('ucf_ARN')
  with pytest.raises(ValueError, match=r'config\.data\.split_dir is not set'):
    datasets.load_source(config.data, 'train')
  config.data.split_dir = '/nonexistent/ucf_ARN'
  with pytest.raises(ValueError, match=r'config\.data\.manual_dir is not set'):
    datasets.load_source(config.data, 'validation')
  config.data.manual_dir = '/nonexistent'
  config.data.test_dataset = 'hmdb_ARN'
  with pytest.raises(ValueError, match=r'config\.data\.test_split_dir'):
    datasets.load_source(config.data, 'test')
  config.data.test_dataset = 'hmdb'
  with pytest.raises(ValueError, match=r'config\.data\.test_dataset='):
    datasets.load_source(config.data, 'test')
  ssv2 = real.make_config('ssv2_CMN')
  ssv2.data.hflip = True
  with pytest.raises(ValueError, match=r'config\.data\.hflip=True'):
    datasets.load_source(ssv2.data, 'train')


def _frame_tree(base, folder):
  """A tiny frame tree of real split lines: 3/2/2 classes, 4/2/2 videos."""
  picked = _pick(folder, {'train': 3, 'validation': 2, 'test': 2},
                 lambda i: 4)
  picked['validation'] = picked['validation'][:2] + picked['validation'][4:6]
  picked['test'] = picked['test'][:2] + picked['test'][4:6]
  split_dir = write_split_dir(base / folder, picked)
  for split in splits.SPLITS:
    for v, (class_name, video_id) in enumerate(picked[split]):
      path = base / f'{folder}_frames' / class_name / video_id
      os.makedirs(path)
      for i in range(3):
        Image.fromarray(np.full((12, 16, 3), 40 * i + v, np.uint8)).save(
            path / f'{i:03d}.jpg')
  return picked, str(split_dir), str(base / f'{folder}_frames')


@needs_splits
def test_cross_domain_test_source_and_limit(tmp_path):
  ucf, ucf_split, ucf_root = _frame_tree(tmp_path, 'ucf_ARN')
  hmdb, hmdb_split, hmdb_root = _frame_tree(tmp_path, 'hmdb_ARN')
  config = real.make_config(
      'ucf_ARN', 'way=2,shot=1,query=1,limit=2,test_dataset=hmdb_ARN')
  data = config.data
  data.tfds_data_dir = str(tmp_path / 'tfds')
  data.split_dir, data.manual_dir = ucf_split, ucf_root
  data.test_split_dir, data.test_manual_dir = hmdb_split, hmdb_root
  data.resize_short_side, data.build_workers = 0, 1

  def ids(source, videos=None):
    videos = range(len(source)) if videos is None else videos
    return [(source.class_names[source.labels[i]], source.video_id(i))
            for i in videos]

  train = datasets.load_source(data, 'train')
  assert ids(train) == ucf['train']
  # limit=2: two of the four videos of each class take part in episodes.
  assert [len(v) for v in train.videos_of_class] == [2, 2, 2]
  assert 'limit=2' in train.name
  validation = datasets.load_source(data, 'validation')
  assert ids(validation) == ucf['validation']
  assert [len(v) for v in validation.videos_of_class] == [2, 2]
  test = datasets.load_source(data, 'test')
  assert test.name == 'hmdb_ARN/test'
  assert ids(test) == hmdb['test']
  assert set(test.class_names) >= {c for c, _ in hmdb['test']}
  assert not set(test.class_names) & {c for c, _ in ucf['train']}
  # Without test_dataset the test split is the training dataset's.
  data.test_dataset = None
  assert ids(datasets.load_source(data, 'test')) == ucf['test']
