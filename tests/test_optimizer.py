"""steps.make_optimizer: per-module learning-rate scales (train.lr_scales)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from vim_jax import steps


def _train_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      lr=0.05, lr_decay=0.5, lr_decay_every=200, momentum=0.9,
      weight_decay=5e-4, grad_clip_norm=0.0, lr_scales=''))
  config.update(overrides)
  return config


def _params():
  rng = np.random.default_rng(0)
  draw = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  return {'backbone': {'conv': {'kernel': draw(3, 4)}},
          'sampler': {'evaluator_w1': {'kernel': draw(4, 2), 'bias': draw(2)},
                      'evaluator_w2': draw(2, 1),
                      'scan': {'conv': {'kernel': draw(2, 2)}}}}


def _updates(train_config, params, grads, steps_=3):
  tx = steps.make_optimizer(train_config)
  state = tx.init(params)
  out = []
  for _ in range(steps_):
    updates, state = tx.update(grads, state, params)
    out.append(updates)
  return out


def test_parse_lr_scales():
  assert steps.parse_lr_scales('') == {}
  assert steps.parse_lr_scales(' sampler/evaluator_w1=0.1, backbone=0 ') == {
      'sampler/evaluator_w1': 0.1, 'backbone': 0.0}
  for bad in ('sampler', 'sampler=fast', '=0.1', 'sampler=-1'):
    with pytest.raises(ValueError, match='lr_scales.*' + bad.split('=')[0]):
      steps.parse_lr_scales(bad)


def test_scaled_updates_are_the_plain_ones_times_the_longest_path_scale():
  """Momentum SGD with weight decay is linear in the lr, so a path's scale
  multiplies its updates at every step; the longest matching path wins
  ('sampler/evaluator_w1' over 'sampler'), and other paths are untouched."""
  params = _params()
  grads = jax.tree.map(lambda x: jnp.sin(3.0 * x), params)
  plain = _updates(_train_config(), params, grads)
  scaled = _updates(_train_config(
      lr_scales='sampler=0.5,sampler/evaluator_w1=0.1,backbone/conv=0'),
                    params, grads)
  for before, after in zip(plain, scaled):
    for part in ('kernel', 'bias'):
      np.testing.assert_allclose(
          after['sampler']['evaluator_w1'][part],
          0.1 * before['sampler']['evaluator_w1'][part], rtol=1e-6)
    np.testing.assert_allclose(after['sampler']['evaluator_w2'],
                               0.5 * before['sampler']['evaluator_w2'],
                               rtol=1e-6)
    np.testing.assert_allclose(
        after['sampler']['scan']['conv']['kernel'],
        0.5 * before['sampler']['scan']['conv']['kernel'], rtol=1e-6)
    np.testing.assert_array_equal(after['backbone']['conv']['kernel'], 0.0)


def test_a_path_that_matches_no_parameter_is_named():
  tx = steps.make_optimizer(_train_config(lr_scales='sampler/evaluator=0.1'))
  with pytest.raises(ValueError, match="'sampler/evaluator' is no parameter"):
    tx.init(_params())


def test_without_scales_the_optimizer_state_is_unchanged():
  """Checkpoints written before `lr_scales` existed restore: the same state
  tree as plain SGD with weight decay."""
  params = _params()
  config = _train_config()
  ours = steps.make_optimizer(config).init(params)
  theirs = optax.chain(
      optax.add_decayed_weights(5e-4),
      optax.sgd(steps.lr_schedule(config), momentum=0.9)).init(params)
  assert (jax.tree_util.tree_structure(ours)
          == jax.tree_util.tree_structure(theirs))
