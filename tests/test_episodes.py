"""Episode planning and the tf.data episode pipeline."""
import numpy as np
import pytest
import tensorflow as tf

from input_pipeline import episodes
from tests import helpers

NAMES = [f'class{c}' for c in range(8)]


def _source(counts=(6, 6, 6, 6, 6, 5, 7), num_frames=10):
  return episodes.VideoSource(helpers.fake_records(counts, num_frames),
                              NAMES, 'fake/train')


def _spec(**kw):
  args = dict(way=4, shot=2, query=3, frames=5, frame_size=8, train=True)
  args.update(kw)
  return episodes.EpisodeSpec(**args)


@pytest.mark.parametrize('train', [True, False])
def test_plan_has_n_classes_k_plus_q_distinct_videos(train):
  source, spec = _source(), _spec(train=train)
  for index in range(20):
    plan = episodes.plan_episode(source, spec, seed=3, split='train', index=index)
    assert len(set(plan['classes'])) == spec.way
    assert len(set(plan['video'])) == spec.way * (spec.shot + spec.query)
    # each video's true class is the episode class its label points to
    np.testing.assert_array_equal(
        source.labels[plan['video']], plan['classes'][plan['labels']])
    support_labels = plan['labels'][:spec.num_support]
    query_labels = plan['labels'][spec.num_support:]
    assert np.all(np.bincount(support_labels, minlength=spec.way) == spec.shot)
    assert np.all(np.bincount(query_labels, minlength=spec.way) == spec.query)
    assert np.all(np.diff(plan['frame_index'], axis=1) >= 0)
    assert plan['frame_index'].max() < 10


def test_plan_is_a_pure_function_of_seed_and_index():
  source, spec = _source(), _spec()
  a = episodes.plan_episode(source, spec, 0, 'train', 5)
  b = episodes.plan_episode(source, spec, 0, 'train', 5)
  c = episodes.plan_episode(source, spec, 0, 'train', 6)
  d = episodes.plan_episode(source, spec, 1, 'train', 5)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a['video'], c['video'])
  assert not np.array_equal(a['video'], d['video'])


def test_support_order_is_shuffled():
  source, spec = _source(), _spec()
  orders = {tuple(episodes.plan_episode(source, spec, 0, 'train', i)['labels'][:8])
            for i in range(10)}
  assert len(orders) > 1
  assert (0, 0, 1, 1, 2, 2, 3, 3) not in orders or len(orders) > 5


def test_impossible_episodes_name_field_and_class():
  source = _source()
  with pytest.raises(episodes.EpisodeError, match=r'config.data.way=9.*7 classes'):
    source.check(_spec(way=9))
  with pytest.raises(episodes.EpisodeError, match="class 'class5' has 5 videos"):
    source.check(_spec(shot=3, query=3))


def test_pipeline_decodes_the_planned_frames():
  source = _source()
  spec = _spec(train=False, test_crop_fraction=1.0)
  ds = episodes.episode_dataset(
      source, spec, seed=0, split='test',
      indices=tf.data.Dataset.range(3, 5), batch=2)
  batch = next(ds.as_numpy_iterator())
  assert batch['support'].shape == (2, 8, 5, 8, 8, 3)
  assert batch['query'].shape == (2, 12, 5, 8, 8, 3)
  for e, index in enumerate([3, 4]):
    plan = episodes.plan_episode(source, spec, 0, 'test', index)
    assert batch['index'][e] == index
    frames = np.concatenate([batch['support'][e], batch['query'][e]])
    expected = np.minimum(20 * plan['frame_index'] + plan['video'][:, None] % 20, 255)
    np.testing.assert_allclose(frames.mean(axis=(2, 3, 4)), expected, atol=2)
    np.testing.assert_array_equal(
        np.concatenate([batch['support_labels'][e], batch['query_labels'][e]]),
        plan['labels'])


def test_train_indices_partition_across_processes():
  single = list(episodes.train_indices(2, 5, 8).as_numpy_iterator())
  assert single == list(range(16, 40))
  parts = [list(episodes.train_indices(2, 5, 8, p, 2).as_numpy_iterator())
           for p in range(2)]
  assert sorted(parts[0] + parts[1]) == single
  assert parts[0][:4] == [16, 17, 18, 19] and parts[1][:4] == [20, 21, 22, 23]
  padded = list(episodes.eval_indices(10, 4).as_numpy_iterator())
  assert padded == list(range(10)) + [9, 9]
