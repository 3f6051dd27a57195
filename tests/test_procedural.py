"""Tests of the procedural dataset: the renderer and the TFDS builder."""
import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from tensorflow_datasets.core import decode

from input_pipeline import procedural
from input_pipeline import render

TINY = dict(num_classes=(4, 3, 3), videos_per_class=3, num_frames=8,
            frame_size=32, seed=0)


def _video(split='train', c=0, v=0, *, seed=0, num_frames=16, frame_size=32,
           params=None, **kwargs):
  params = params or procedural.class_params(seed, split, c)
  return procedural.render_video(
      params, render.video_rng(seed, split, c, v), num_frames=num_frames,
      frame_size=frame_size, **kwargs)


def _inside(span, num_frames):
  """Frames whose centre time lies in [t0, t1), computed independently."""
  times = (np.arange(num_frames) + 0.5) / num_frames
  return (times >= span[0]) & (times < span[1])


# --- Renderer.


def test_render_shapes_and_determinism():
  a = _video('test', 2, 5)
  b = _video('test', 2, 5)
  assert a['frames'].shape == (16, 32, 32, 3)
  assert a['frames'].dtype == np.uint8
  assert a['action_span'].shape == (2,) and a['action_span'].dtype == np.float32
  assert a['actor_boxes'].shape == (16, 4)
  assert a['actor_boxes'].dtype == np.float32
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  c = _video('test', 2, 6)
  assert not np.array_equal(a['frames'], c['frames'])


@pytest.mark.parametrize('split,c,v', [('train', 0, 0), ('train', 3, 1),
                                       ('validation', 1, 2), ('test', 5, 7)])
def test_actor_absent_outside_span_present_inside(split, c, v):
  f_len, size = 16, 32
  video = _video(split, c, v, num_frames=f_len, frame_size=size)
  empty = _video(split, c, v, num_frames=f_len, frame_size=size, actor=False)
  t0, t1 = video['action_span']
  assert 0 <= t0 < t1 <= 1
  assert 0.35 - 1e-6 <= t1 - t0 <= 0.8 + 1e-6
  inside = _inside(video['action_span'], f_len)
  assert inside.any() and not inside.all()
  boxes = video['actor_boxes']
  np.testing.assert_array_equal(boxes[~inside], 0)
  assert np.all(boxes >= 0) and np.all(boxes <= 1)
  assert np.all(boxes[inside, 2:] > boxes[inside, :2])
  diff = np.abs(video['frames'].astype(int) - empty['frames']).sum(-1)
  assert np.all(diff[~inside] == 0)  # [F, S, S]
  # Inside the span the actor changes pixels, and only near its box.
  coords = (np.arange(size) + 0.5) / size
  for f in np.flatnonzero(inside):
    y0, x0, y1, x1 = boxes[f]
    pad = 1.0 / size
    near = (((coords >= y0 - pad) & (coords <= y1 + pad))[:, None]
            & ((coords >= x0 - pad) & (coords <= x1 + pad))[None, :])
    assert diff[f][near].sum() > 0
    assert np.all(diff[f][~near] == 0)


def test_actor_is_small():
  for c in range(6):
    boxes = _video('train', c, 0, num_frames=32,
                   frame_size=64)['actor_boxes']
    present = boxes[boxes.any(1)]
    side = np.maximum(present[:, 2] - present[:, 0],
                      present[:, 3] - present[:, 1])
    # 10-22% of the frame side, outline included.
    assert np.all(side > 0.1) and np.all(side < 0.25), side


def test_frames_outside_span_carry_no_class_information():
  # The same video stream with two different classes: the timing, the
  # background, the distractors and the noise are the same, so frames
  # without the actor must be identical.
  f_len = 16
  a = _video(params=procedural.class_params(0, 'train', 0), num_frames=f_len)
  b = _video(params=procedural.class_params(0, 'test', 3), num_frames=f_len)
  np.testing.assert_array_equal(a['action_span'], b['action_span'])
  inside = _inside(a['action_span'], f_len)
  np.testing.assert_array_equal(a['frames'][~inside], b['frames'][~inside])
  assert not np.array_equal(a['frames'][inside], b['frames'][inside])


def _trajectory(video, grid):
  """Box centre at progress `grid`, offset removed: [len(grid), 2]."""
  boxes, progress = video['actor_boxes'], video['progress']
  inside = progress >= 0
  centre = (boxes[inside, :2] + boxes[inside, 2:]) / 2  # [F_in, 2]
  s = progress[inside]
  assert np.all(np.diff(s) > 0)  # a monotone speed profile
  path = np.stack([np.interp(grid, s, centre[:, i]) for i in range(2)], 1)
  return path - path.mean(0)


def test_same_class_trajectories_are_closer_than_other_classes():
  grid = np.linspace(0.25, 0.75, 11)
  num_classes, num_videos = 6, 4
  paths = np.stack([
      [_trajectory(_video('test', c, v, num_frames=32), grid)
       for v in range(num_videos)] for c in range(num_classes)])  # [C, V, G, 2]
  flat = paths.reshape(num_classes * num_videos, -1)
  labels = np.repeat(np.arange(num_classes), num_videos)
  dist = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
  same = labels[:, None] == labels[None]
  off_diag = ~np.eye(len(labels), dtype=bool)
  assert dist[same & off_diag].mean() < 0.5 * dist[~same].mean()
  # Nearest neighbour (leave one out) recovers the class.
  dist[~off_diag] = np.inf
  assert np.mean(labels[dist.argmin(1)] == labels) >= 0.9


def test_videos_are_misaligned():
  # TC: spans differ; SC: the same progress sits at different places.
  videos = [_video('train', 1, v, num_frames=32) for v in range(8)]
  spans = np.stack([v['action_span'] for v in videos])
  assert spans[:, 0].std() > 0.03 and np.ptp(spans[:, 1] - spans[:, 0]) > 0.05
  starts = []
  for v in videos:
    boxes = v['actor_boxes'][v['progress'] >= 0]
    starts.append((boxes[0, :2] + boxes[0, 2:]) / 2)
  assert np.std(starts, axis=0).max() > 0.03


def test_class_params_are_deterministic_and_split_disjoint():
  a = procedural.class_params(7, 'train', 3)
  b = render.class_params.__wrapped__(7, 'train', 3)  # bypass the cache
  np.testing.assert_array_equal(a.coef, b.coef)
  assert a.spin == b.spin
  coefs = {split: [procedural.class_params(7, split, c).coef for c in range(5)]
           for split in procedural.SPLITS}
  for s1 in procedural.SPLITS:
    for s2 in procedural.SPLITS:
      for i, c1 in enumerate(coefs[s1]):
        for j, c2 in enumerate(coefs[s2]):
          if (s1, i) != (s2, j):
            assert not np.allclose(c1, c2)


# --- Config and builder.


def test_config_name_and_default():
  config = procedural.make_config(**TINY)
  assert config.name == 'c4-3-3_v3_f8_s32_seed0'
  assert procedural.make_config(**TINY) is config
  default = procedural.ProceduralActions.BUILDER_CONFIGS[0]
  assert procedural.make_config() is default
  assert procedural.make_config().name == 'c64-12-24_v30_f32_s64_seed0'
  names = {procedural.make_config(**dict(TINY, **{k: v})).name
           for k, v in [('seed', 1), ('num_frames', 9), ('frame_size', 33),
                        ('videos_per_class', 4), ('num_classes', (4, 3, 4))]}
  assert len(names) == 5 and config.name not in names


def test_misnamed_config_is_refused(tmp_path):
  config = procedural.ProceduralConfig(name='c4-3-3_v3_f8_s32_seed0',
                                       num_classes=(5, 3, 3),
                                       videos_per_class=3, num_frames=8,
                                       frame_size=32, seed=0)
  with pytest.raises(ValueError, match='does not encode'):
    procedural.load(config, str(tmp_path))


@pytest.fixture(scope='module')
def tiny_dirs(tmp_path_factory):
  """The tiny config built in two separate data dirs."""
  config = procedural.make_config(**TINY)
  dirs = [str(tmp_path_factory.mktemp(f'tfds{i}')) for i in range(2)]
  return config, [procedural.load(config, d) for d in dirs], dirs


def _records(builder, split, method):
  return builder.as_data_source(split, deserialize_method=method)


def test_splits_counts_and_labels(tiny_dirs):
  config, (builder, _), _ = tiny_dirs
  assert builder.info.splits['train'].num_examples == 12
  assert builder.info.splits['validation'].num_examples == 9
  assert builder.info.splits['test'].num_examples == 9
  names = builder.info.features['label'].names
  assert len(names) == 10 and len(set(names)) == 10
  ranges = {'train': range(0, 4), 'validation': range(4, 7),
            'test': range(7, 10)}
  ids = set()
  for split, labels in ranges.items():
    source = _records(builder, split,
                      decode.DeserializeMethod.DESERIALIZE_NO_DECODE)
    seen = []
    for i in range(len(source)):
      feature = source[i].features.feature
      label = feature['label'].int64_list.value[0]
      vid = feature['video_id'].bytes_list.value[0].decode()
      assert label in labels
      assert names[label].startswith(split + '_')
      assert vid.startswith(split + '_')
      seen.append(label)
      ids.add(vid)
    # Every class of the split, each with videos_per_class videos.
    assert sorted(seen) == sorted(list(labels) * config.videos_per_class)
  assert len(ids) == 30


def test_data_source_decodes_to_rendered_frames(tiny_dirs):
  config, (builder, _), _ = tiny_dirs
  source = _records(builder, 'test',
                    decode.DeserializeMethod.DESERIALIZE_NO_DECODE)
  offset = sum(config.num_classes[:2])
  for i in (0, len(source) - 1):
    feature = source[i].features.feature
    jpegs = feature['frames'].bytes_list.value
    assert len(jpegs) == config.num_frames
    vid = feature['video_id'].bytes_list.value[0].decode()  # test_ccc/vid_vvvv
    c, v = int(vid[5:8]), int(vid[-4:])
    assert feature['label'].int64_list.value[0] == offset + c
    video = procedural.render_video(
        procedural.class_params(config.seed, 'test', c),
        render.video_rng(config.seed, 'test', c, v),
        num_frames=config.num_frames, frame_size=config.frame_size)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in jpegs])
    assert decoded.shape == video['frames'].shape
    error = np.abs(decoded.astype(float) - video['frames']).mean()
    assert error < 8.0, error
    # TensorFlow (the pipeline's decoder) agrees, up to its own IDCT.
    tf_decoded = tf.io.decode_jpeg(jpegs[-1]).numpy()
    assert np.abs(tf_decoded.astype(float) - video['frames'][-1]).mean() < 8.0
    np.testing.assert_allclose(feature['action_span'].float_list.value,
                               video['action_span'])
    np.testing.assert_allclose(
        np.reshape(feature['actor_boxes'].float_list.value, (-1, 4)),
        video['actor_boxes'])


def test_build_is_deterministic(tiny_dirs):
  _, (first, second), _ = tiny_dirs
  for split in procedural.SPLITS:
    a = _records(first, split, decode.DeserializeMethod.RAW_BYTES)
    b = _records(second, split, decode.DeserializeMethod.RAW_BYTES)
    assert len(a) == len(b)
    assert a[0] == b[0]
    assert a[len(a) - 1] == b[len(b) - 1]


def test_load_reuses_prepared_data(tiny_dirs):
  config, (builder, _), (data_dir, _) = tiny_dirs
  files = sorted(p for p in os.listdir(builder.data_dir) if 'array_record' in p)
  stamps = [os.stat(os.path.join(builder.data_dir, p)).st_mtime_ns
            for p in files]
  again = procedural.load(config, data_dir)
  assert str(again.data_dir) == str(builder.data_dir)
  assert again.info.splits['train'].num_examples == 12
  assert [os.stat(os.path.join(again.data_dir, p)).st_mtime_ns
          for p in files] == stamps
