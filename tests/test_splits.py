"""Tests of input_pipeline.splits against the benchmark split files."""

import os
import pathlib

import pytest

from input_pipeline import splits

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SPLITS_ROOT = REPO_ROOT.parent / 'shared' / 'splits'
needs_splits = pytest.mark.skipif(not SPLITS_ROOT.is_dir(),
                                  reason=f'{SPLITS_ROOT} is absent')

# The table of shared/splits/README.md: classes and videos, train/val/test.
README_COUNTS = {
    'ucf_ARN': ((70, 10, 21), (9154, 1421, 2745)),
    'hmdb_ARN': ((31, 10, 10), (4280, 1194, 1292)),
    'kinetics_CMN': ((64, 12, 24), (6400, 1200, 2400)),
    'ssv2_CMN': ((64, 12, 24), (6400, 1200, 2400)),
    'ssv2_OTAM': ((64, 12, 24), (67013, 1926, 2857)),
    'activitynet_VIM': ((64, 12, 24), (4480, 840, 1680)),
}


def _write_split_dir(path, train, val, test, suffix='03'):
  os.makedirs(path, exist_ok=True)
  for prefix, lines in (('train', train), ('val', val), ('test', test)):
    with open(os.path.join(path, f'{prefix}list{suffix}.txt'), 'w') as f:
      f.write(''.join(line + '\n' for line in lines))
  return str(path)


@needs_splits
@pytest.mark.parametrize('folder', sorted(README_COUNTS))
def test_real_split_counts_match_readme(folder):
  assert folder in splits.SPLIT_PROTOCOLS
  entries = splits.read_splits(SPLITS_ROOT / folder)
  class_counts, video_counts = README_COUNTS[folder]
  for i, split in enumerate(splits.SPLITS):
    assert len(entries[split]) == video_counts[i], split
    assert len({c for c, _ in entries[split]}) == class_counts[i], split
  train, val, test = ({c for c, _ in entries[s]} for s in splits.SPLITS)
  assert not train & val and not train & test and not val & test
  names = splits.class_names(entries, splits.infer_line_format(
      SPLITS_ROOT / folder))
  assert len(names) == len(set(names)) == sum(class_counts)


@needs_splits
def test_real_split_lines_keep_spaces_and_file_order():
  entries = splits.read_splits(SPLITS_ROOT / 'kinetics_CMN')
  assert entries['train'][0] == ('air drumming', '-VtLx-mcPds_000012_000022')
  names = splits.class_names(entries)
  assert names[0] == 'air drumming'
  assert names[64] == 'baking cookies'  # first line of vallist03.txt
  assert names[76] == 'blasting sand'  # first line of testlist03.txt


@needs_splits
def test_otam_class_names_are_split_and_index():
  entries = splits.read_splits(SPLITS_ROOT / 'ssv2_OTAM')
  assert entries['train'][0] == ('train8', '78687')
  assert entries['validation'][0] == ('val2', '188509')
  names = splits.class_names(entries, splits.SPLIT_INDEX_VIDEO)
  assert names == ([f'train{n}' for n in range(64)] +
                   [f'val{n}' for n in range(12)] +
                   [f'test{n}' for n in range(24)])


def test_finds_files_by_prefix(tmp_path):
  d = _write_split_dir(tmp_path / 'x', ['a/1', 'a/2', 'b/3'], ['c/4'], ['d/5'],
                       suffix='07')
  assert splits.split_file(d, 'validation').endswith('vallist07.txt')
  assert splits.read_split(d, 'train') == [('a', '1'), ('a', '2'), ('b', '3')]
  assert splits.class_names(splits.read_splits(d)) == ['a', 'b', 'c', 'd']


@pytest.mark.parametrize('bad', ['novideo', 'a/b/c', '/123', 'cls/ '])
def test_malformed_line_names_file_and_line(tmp_path, bad):
  d = _write_split_dir(tmp_path / 'x', ['a/1', '', bad], ['c/4'], ['d/5'])
  with pytest.raises(splits.SplitFileError, match=r'trainlist03\.txt:3'):
    splits.read_split(d, 'train')


def test_otam_line_must_match_split(tmp_path):
  d = _write_split_dir(tmp_path / 'x', ['train0/1', 'val1/2'], ['val0/3'],
                       ['test0/4'])
  with pytest.raises(splits.SplitFileError, match=r'trainlist03\.txt:2'):
    splits.read_split(d, 'train', splits.SPLIT_INDEX_VIDEO)
  d = _write_split_dir(tmp_path / 'y', ['train0/1', 'trainx/2'], ['val0/3'],
                       ['test0/4'])
  with pytest.raises(splits.SplitFileError, match=r'trainlist03\.txt:2'):
    splits.read_split(d, 'train', splits.SPLIT_INDEX_VIDEO)
  # The same lines read as class/video_id are fine.
  assert splits.read_split(d, 'train')[1] == ('trainx', '2')


def test_repeated_line_and_overlapping_classes(tmp_path):
  # A repeat is returned in its place; the dataset builder reports it.
  d = _write_split_dir(tmp_path / 'x', ['a/1', 'a/2', 'a/1'], ['c/4'], ['d/5'])
  assert splits.read_split(d, 'train') == [('a', '1'), ('a', '2'), ('a', '1')]
  assert splits.class_names(splits.read_splits(d)) == ['a', 'c', 'd']
  d = _write_split_dir(tmp_path / 'y', ['a/1'], ['c/4'], ['a/5'])
  with pytest.raises(splits.SplitFileError, match="'a'"):
    splits.read_splits(d)


def test_missing_or_ambiguous_file(tmp_path):
  d = _write_split_dir(tmp_path / 'x', ['a/1'], ['c/4'], ['d/5'])
  os.remove(os.path.join(d, 'testlist03.txt'))
  with pytest.raises(splits.SplitFileError, match='test'):
    splits.read_split(d, 'test')
  _write_split_dir(tmp_path / 'x', ['a/1'], ['c/4'], ['d/5'], suffix='07')
  with pytest.raises(splits.SplitFileError, match='exactly one'):
    splits.read_split(d, 'train')
  with pytest.raises(ValueError):
    splits.read_split(d, 'val')
