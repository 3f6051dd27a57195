"""Tests of the few-shot benchmark builders on tiny generated trees.

The trees follow the real split files (a few of their lines), with frames
whose pixel values encode (video, frame index), so order, subsampling and
labels can be checked from the decoded data.
"""

import io
import os
import pathlib

import numpy as np
from PIL import Image
import pytest
from tensorflow_datasets.core import shuffle as tfds_shuffle

from input_pipeline import real_datasets
from input_pipeline import splits
from input_pipeline import video_decode
from tests import helpers

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SPLITS_ROOT = REPO_ROOT.parent / 'shared' / 'splits'
needs_splits = pytest.mark.skipif(not SPLITS_ROOT.is_dir(),
                                  reason=f'{SPLITS_ROOT} is absent')


def _pick(folder, classes_per_split, videos_per_class):
  """The first lines of the first classes of each split of a real split dir."""
  entries = splits.read_splits(SPLITS_ROOT / folder)
  picked = {}
  for split in splits.SPLITS:
    names = list(dict.fromkeys(c for c, _ in entries[split]))
    picked[split] = []
    for i, name in enumerate(names[:classes_per_split[split]]):
      videos = [v for c, v in entries[split] if c == name]
      picked[split] += [(name, v) for v in videos[:videos_per_class(i)]]
  return picked


def _colour(video, frame):
  return (10 + 20 * frame, 10 + 40 * (video % 6), 60 + 30 * (video // 6))


def _mean_colour(jpeg_bytes):
  return np.asarray(Image.open(io.BytesIO(jpeg_bytes))).reshape(-1, 3).mean(0)


@pytest.fixture(scope='module')
def ucf(tmp_path_factory):
  """UCF101 frame tree: 3/2/2 classes, 2-3 videos each, one folder absent,
  one empty; video lengths 4, 5 and 12 frames of 24x32 pixels."""
  base = tmp_path_factory.mktemp('ucf')
  picked = _pick('ucf_ARN', {'train': 3, 'validation': 2, 'test': 2},
                 lambda i: 3 if i % 2 == 0 else 2)
  split_dir = helpers.write_split_dir(base / 'ucf_ARN', picked)
  lines = [e for s in splits.SPLITS for e in picked[s]]
  deleted, empty = lines[1], lines[-1]
  frame_files = {}
  for v, (class_name, video_id) in enumerate(lines):
    if (class_name, video_id) == deleted:
      continue
    folder = base / 'root' / class_name / video_id
    os.makedirs(folder)
    if (class_name, video_id) == empty:
      continue
    frame_files[class_name, video_id] = []
    for i in range((4, 5, 12)[v % 3]):
      path = folder / f'img_{i + 1}.jpg'
      Image.fromarray(np.full((24, 32, 3), _colour(v, i), np.uint8)).save(
          path, quality=95)
      frame_files[class_name, video_id].append(path)
  builder = real_datasets.load(
      'ucf_ARN', data_dir=base / 'data', manual_dir=base / 'root',
      split_dir=split_dir, max_frames=6, resize_short_side=0, num_workers=2)
  return dict(builder=builder, picked=picked, deleted=deleted, empty=empty,
              frame_files=frame_files)


@needs_splits
def test_frames_build_has_listed_videos_labels_and_frames(ucf):
  builder, picked = ucf['builder'], ucf['picked']
  expected_names = list(dict.fromkeys(
      c for s in splits.SPLITS for c, _ in picked[s]))
  assert builder.info.features['label'].names == expected_names
  for split in splits.SPLITS:
    records = helpers.prepared_records(builder, split)
    expected = [e for e in picked[split] if e in ucf['frame_files']]
    assert [(c, v) for c, v, _ in records] == expected
    for class_name, video_id, frames in records:
      files = ucf['frame_files'][class_name, video_id]
      # 4 and 5 frames are kept; 12 frames are cut to 6 segment centres
      # 1, 3, ..., 11 (files img_2, img_4, ..., img_12, in numeric order).
      keep = range(len(files)) if len(files) <= 6 else range(1, 12, 2)
      # No resize asked: the stored frames are the files' bytes.
      assert frames == [files[i].read_bytes() for i in keep]
    labels = real_datasets.record_labels(builder, split)
    assert labels.tolist() == [expected_names.index(c) for c, _ in expected]
    assert real_datasets.record_num_frames(builder, split).tolist() == [
        len(frames) for _, _, frames in records]
    counts = real_datasets.video_counts(builder)[split]
    assert counts == {c: sum(e[0] == c for e in expected)
                      for c in dict.fromkeys(c for c, _ in picked[split])}


@needs_splits
def test_frames_build_reports_missing_videos(ucf):
  missing = real_datasets.missing_videos(ucf['builder'])
  deleted, empty = ucf['deleted'], ucf['empty']
  assert [(s, v) for s, v, _ in missing] == [
      ('train', '/'.join(deleted)), ('test', '/'.join(empty))]
  assert 'no folder' in missing[0][2] and 'zero frames' in missing[1][2]
  # A second load reuses the prepared data and its reports.
  again = real_datasets.load(
      'ucf_ARN', data_dir=pathlib.Path(ucf['builder'].data_dir).parents[2],
      manual_dir='/nonexistent',
      split_dir=ucf['builder'].builder_config.split_dir,
      max_frames=6, resize_short_side=0)
  assert again.data_dir == ucf['builder'].data_dir
  assert real_datasets.missing_videos(again) == missing


@needs_splits
def test_decoded_frames_through_tfds(ucf):
  """The frames decode as images of the written colours, in order."""
  source = ucf['builder'].as_data_source('validation')
  lines = [e for s in splits.SPLITS for e in ucf['picked'][s]]
  for i in range(len(source)):
    example = source[i]
    v = lines.index(tuple(ucf['picked']['validation'][i]))
    n = len(ucf['frame_files'][lines[v]])
    keep = range(n) if n <= 6 else range(1, 12, 2)
    assert np.shape(example['frames']) == (len(keep), 24, 32, 3)
    for frame, k in zip(example['frames'], keep):
      np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), _colour(v, k),
                                 atol=3)


@needs_splits
def test_ssv2_otam_flat_frames_resized(tmp_path, monkeypatch):
  """SSv2-OTAM lines `trainN/id` read `root/id/`; frames shrunk to 16 px.

  TFDS's writer is made to spill every record to its on-disk buckets (as it
  does beyond 1 GB), and the records must still keep the split-file order.
  """
  monkeypatch.setattr(tfds_shuffle, 'MAX_MEM_BUFFER_SIZE', 0)
  monkeypatch.setattr(tfds_shuffle, 'BUCKETS_NUMBER', 10)
  picked = _pick('ssv2_OTAM', {'train': 2, 'validation': 1, 'test': 1},
                 lambda i: 2)
  split_dir = helpers.write_split_dir(tmp_path / 'ssv2_OTAM', picked)
  lines = [e for s in splits.SPLITS for e in picked[s]]
  for v, (_, video_id) in enumerate(lines):
    os.makedirs(tmp_path / 'root' / video_id)
    for i in range(3):
      # PNG and grayscale JPEG frames must come back as RGB JPEG.
      ext = 'png' if v == 0 else 'jpg'
      mode = 'L' if v == 1 else 'RGB'
      Image.fromarray(np.full((24, 32, 3), _colour(v, i), np.uint8)).convert(
          mode).save(tmp_path / 'root' / video_id / f'{i:05d}.{ext}')
  builder = real_datasets.load(
      'ssv2_OTAM', data_dir=tmp_path / 'data', manual_dir=tmp_path / 'root',
      split_dir=split_dir, resize_short_side=16, num_workers=1)
  names = builder.info.features['label'].names
  # OTAM classes are ordered by their index N within each split.
  train_classes = sorted({c for c, _ in picked['train']},
                         key=lambda c: int(c[5:]))
  assert names[:2] == train_classes
  assert not real_datasets.missing_videos(builder)
  assert real_datasets.HORIZONTAL_FLIP_OK['ssv2_OTAM'] is False
  assert real_datasets.HORIZONTAL_FLIP_OK['ucf_ARN'] is True
  for split in splits.SPLITS:
    records = helpers.prepared_records(builder, split)
    assert [(c, v) for c, v, _ in records] == picked[split]
    for class_name, video_id, frames in records:
      v = lines.index((class_name, video_id))
      assert len(frames) == 3
      for i, jpeg in enumerate(frames):
        image = Image.open(io.BytesIO(jpeg))
        assert (image.format, image.mode, image.size) == ('JPEG', 'RGB',
                                                          (21, 16))
        expected = _colour(v, i)
        if v == 1:  # Grayscale: ITU-R 601-2 luma of the colour.
          expected = [np.dot(expected, (0.299, 0.587, 0.114))] * 3
        np.testing.assert_allclose(_mean_colour(jpeg), expected, atol=4)


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255),
           (255, 0, 255), (128, 128, 128), (255, 255, 255), (0, 0, 0),
           (255, 128, 0)]


@needs_splits
def test_video_files_build(tmp_path):
  picked = _pick('ucf_ARN', {'train': 1, 'validation': 1, 'test': 1},
                 lambda i: 2)
  split_dir = helpers.write_split_dir(tmp_path / 'ucf_ARN', picked)
  root = tmp_path / 'root'
  (good, garbage), (webm, avi), (test_good, absent) = (
      picked[s] for s in splits.SPLITS)
  for class_name, _ in (good, webm, test_good):
    os.makedirs(root / class_name, exist_ok=True)
  helpers.write_video(root / good[0] / f'{good[1]}.mp4', COLOURS)
  (root / garbage[0] / f'{garbage[1]}.avi').write_bytes(
      bytes(range(256)) * 8)
  helpers.write_video(root / webm[0] / f'{webm[1]}.webm', COLOURS[::-1],
                      codec='libvpx-vp9')
  helpers.write_video(root / avi[0] / f'{avi[1]}.avi', COLOURS[2:7],
                      codec='mpeg4')
  helpers.write_video(root / test_good[0] / f'{test_good[1]}.mkv',
                      COLOURS[:3])
  builder = real_datasets.load(
      'ucf_ARN', data_dir=tmp_path / 'data', manual_dir=root,
      split_dir=split_dir, source='videos', max_frames=4, resize_short_side=16)
  expected = {
      'train': [(good, [COLOURS[i] for i in (1, 3, 6, 8)])],
      'validation': [(webm, [COLOURS[::-1][i] for i in (1, 3, 6, 8)]),
                     # 5 frames to 4: centres of segments 1.25 frames long.
                     (avi, [COLOURS[2:7][i] for i in (0, 1, 3, 4)])],
      'test': [(test_good, COLOURS[:3])],
  }
  for split in splits.SPLITS:
    records = helpers.prepared_records(builder, split)
    assert [(c, v) for c, v, _ in records] == [e for e, _ in expected[split]]
    for (_, _, frames), (_, colours) in zip(records, expected[split]):
      assert len(frames) == len(colours)
      for jpeg, colour in zip(frames, colours):
        assert Image.open(io.BytesIO(jpeg)).size == (16, 16)
        np.testing.assert_allclose(_mean_colour(jpeg), colour, atol=12)
  missing = real_datasets.missing_videos(builder)
  assert [(s, v) for s, v, _ in missing] == [
      ('train', '/'.join(garbage)), ('test', '/'.join(absent))]
  assert 'cannot decode' in missing[0][2] and 'no file' in missing[1][2]
  assert real_datasets.video_counts(builder)['train'] == {good[0]: 1}


@pytest.mark.parametrize('estimate', [3, 10, 25, 0])
def test_video_decode_survives_a_wrong_frame_count(tmp_path, monkeypatch,
                                                   estimate):
  path = tmp_path / 'v.mp4'
  helpers.write_video(path, COLOURS)
  monkeypatch.setattr(video_decode, '_estimate_frame_count',
                      lambda _: estimate)
  frames, count = video_decode.decode_video_file(
      str(path), max_frames=4, resize_short_side=0, quality=95)
  assert count == 10
  for jpeg, i in zip(frames, (1, 3, 6, 8), strict=True):
    np.testing.assert_allclose(_mean_colour(jpeg), COLOURS[i], atol=12)


def test_subsample_indices():
  np.testing.assert_array_equal(video_decode.subsample_indices(10, 4),
                                [1, 3, 6, 8])
  np.testing.assert_array_equal(video_decode.subsample_indices(100, 3),
                                [16, 50, 83])
  np.testing.assert_array_equal(video_decode.subsample_indices(5, 8), range(5))
  np.testing.assert_array_equal(video_decode.subsample_indices(7, 0), range(7))
  for n, k in ((64, 64), (65, 64), (1000, 7), (9, 8)):
    idx = video_decode.subsample_indices(n, k)
    # Frame j (covering [j, j + 1)) holds the centre of segment i of k equal
    # segments of [0, n).
    assert len(idx) == k and np.all(np.diff(idx) > 0)
    assert all(j <= (i + 0.5) * n / k < j + 1 for i, j in enumerate(idx))


def test_natural_order_and_target_size():
  names = ['img_10.jpg', 'img_2.jpg', 'img_1.jpg', 'img_9.jpg']
  assert sorted(names, key=video_decode.natural_sort_key) == [
      'img_1.jpg', 'img_2.jpg', 'img_9.jpg', 'img_10.jpg']
  assert video_decode.target_size(320, 240, 128) == (171, 128)
  assert video_decode.target_size(240, 320, 128) == (128, 171)
  assert video_decode.target_size(100, 80, 128) is None
  assert video_decode.target_size(320, 240, 0) is None


def test_truncated_jpeg_frame_is_unreadable(tmp_path):
  noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
  Image.fromarray(noise).save(tmp_path / 'a.jpg')
  data = (tmp_path / 'a.jpg').read_bytes()
  (tmp_path / 'b.jpg').write_bytes(data[:len(data) // 2])
  with pytest.raises(video_decode.UnreadableVideoError, match='b.jpg'):
    video_decode.read_frame_folder(str(tmp_path), max_frames=0,
                                   resize_short_side=0, quality=90)


def test_load_rejects_unknown_dataset_and_options(tmp_path):
  with pytest.raises(ValueError, match='ucf101'):
    real_datasets.load('ucf101', data_dir=tmp_path, manual_dir=tmp_path,
                       split_dir=tmp_path)
  with pytest.raises(TypeError, match='frames_max'):
    real_datasets.load('ucf_ARN', data_dir=tmp_path, manual_dir=tmp_path,
                       split_dir=tmp_path, frames_max=3)
  with pytest.raises(ValueError, match='source'):
    real_datasets.load('ucf_ARN', data_dir=tmp_path, manual_dir=tmp_path,
                       split_dir=tmp_path, source='gifs')


@needs_splits
def test_class_folders_with_underscores_for_spaces(tmp_path):
  """Kinetics class 'air drumming' may sit in the folder 'air_drumming'."""
  picked = _pick('kinetics_CMN', {'train': 1, 'validation': 1, 'test': 1},
                 lambda i: 1)
  split_dir = helpers.write_split_dir(tmp_path / 'kinetics_CMN', picked)
  for v, (class_name, video_id) in enumerate(
      e for s in splits.SPLITS for e in picked[s]):
    assert ' ' in class_name
    folder = tmp_path / 'root' / class_name.replace(' ', '_') / video_id
    os.makedirs(folder)
    Image.fromarray(np.full((8, 8, 3), _colour(v, 0), np.uint8)).save(
        folder / 'img_00001.jpg')
  builder = real_datasets.load(
      'kinetics_CMN', data_dir=tmp_path / 'data', manual_dir=tmp_path / 'root',
      split_dir=split_dir)
  assert not real_datasets.missing_videos(builder)
  for split in splits.SPLITS:
    assert [(c, v) for c, v, _ in helpers.prepared_records(builder, split)] == picked[split]
