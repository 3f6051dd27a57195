"""shard_map vs pmap, and 1 vs 4 devices, give the same training trajectory."""
import jax
import numpy as np
import pytest

from configs import test as test_config
from vim_jax import parallel
from vim_jax import train


def _batches(config, num_steps, episodes=4):
  spec = train.episode_spec(config, 'train')
  rng = np.random.default_rng(0)
  frames = (spec.frames, spec.frame_size, spec.frame_size, 3)
  for step in range(num_steps):
    labels = lambda n: np.stack([rng.permutation(np.arange(n) % spec.way)
                                 for _ in range(episodes)]).astype(np.int32)
    yield dict(
        support=rng.integers(0, 256, (episodes, spec.num_support) + frames, np.uint8),
        query=rng.integers(0, 256, (episodes, spec.num_query) + frames, np.uint8),
        support_labels=labels(spec.num_support), query_labels=labels(spec.num_query),
        classes=np.tile(np.arange(spec.way, dtype=np.int32), (episodes, 1)),
        video=np.zeros((episodes, spec.num_support + spec.num_query), np.int32),
        index=np.arange(step * episodes, (step + 1) * episodes, dtype=np.int32))


def _train(kind, devices, num_steps=3):
  config = test_config.get_config()
  # Random-pixel episodes with batch norm amplify float reassociation across
  # steps; a small learning rate keeps 1-vs-4-device runs comparable.
  config.train.lr = 0.01
  runner = parallel.Runner(kind, devices)
  experiment = train.Experiment(config, runner)
  state = runner.put_state(experiment.init_state())
  losses = []
  for batch in _batches(config, num_steps):
    state, metrics = experiment.train_step(state, batch)
    losses.append(float(runner.get_replicated(metrics)['loss']))
  return jax.tree.map(np.asarray, runner.get_state(state)), losses


@pytest.fixture(scope='module')
def shard_map_4():
  assert len(jax.devices()) == 4, 'tests/conftest.py sets 4 CPU devices'
  return _train('shard_map', jax.devices())


def _assert_close(a, b, tol):
  flat_a, tree_a = jax.tree.flatten(a)
  flat_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(flat_a, flat_b):
    np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def test_pmap_equals_shard_map(shard_map_4):
  state, losses = _train('pmap', jax.devices())
  _assert_close(state.params, shard_map_4[0].params, 1e-6)
  _assert_close(state.batch_stats, shard_map_4[0].batch_stats, 1e-6)
  np.testing.assert_allclose(losses, shard_map_4[1], rtol=1e-5)
  assert int(state.step) == 3


def test_one_device_equals_four(shard_map_4):
  state, losses = _train('shard_map', jax.devices()[:1])
  # Same maths, different reduction order: float32 rounding, amplified by
  # three steps of batch norm on random pixels, stays below 5e-4 (weights and
  # statistics are O(0.1-1)); the first step agrees to 1e-6.
  _assert_close(state.params, shard_map_4[0].params, 5e-4)
  _assert_close(state.batch_stats, shard_map_4[0].batch_stats, 5e-4)
  np.testing.assert_allclose(losses, shard_map_4[1], rtol=1e-5)
  # the parameters did move: the comparison is not between initial states
  init = train.Experiment(test_config.get_config(),
                          parallel.Runner('shard_map', jax.devices()[:1])).init_state()
  moved = max(float(np.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(state.params), jax.tree.leaves(init.params)))
  assert moved > 1e-4
