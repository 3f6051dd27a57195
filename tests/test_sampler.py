"""Tests of the video sampler (vim_jax/models/sampler.py) and its figure.

Tiny shapes: M = 6 dense frames, T = 3, 32x32 frames scanned at 32x32 by a
one-unit-per-stage ShuffleNet (64 channels, 2x2 maps). Parameters are drawn
with numpy on the shapes from `jax.eval_shape` (no compiled init), and each
configuration's apply is jitted once and shared between tests.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import default
from vim_jax import steps
from vim_jax.figures import sampler as figure_lib
from vim_jax.models import build
from vim_jax.models import shufflenet
from vim_jax.models import spatial_amplifier
from vim_jax.models import task_adaptive
from vim_jax.models import temporal_selector
from vim_jax.ops import frames as frames_ops

M, T, SIZE, V_S, V_Q = 6, 3, 32, 4, 2
TINY_SCAN = dict(stages_repeats=(1, 1, 1),
                 stages_out_channels=(8, 16, 16, 32, 64))
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def _config(**overrides):
  cfg = default.get_config().model.sampler
  cfg.enabled = True
  cfg.scan_size = SIZE
  cfg.num_samples = 64
  cfg.hidden = 16
  cfg.task_dim = 8
  cfg.scan_kwargs = TINY_SCAN
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


def _episode(seed=0):
  rng = np.random.default_rng(seed)
  support = rng.normal(size=(V_S, M, SIZE, SIZE, 3)).astype(np.float32)
  query = rng.normal(size=(V_Q, M, SIZE, SIZE, 3)).astype(np.float32)
  return jnp.asarray(support), jnp.arange(V_S), jnp.asarray(query)


def _random_variables(shapes, seed=0):
  """Numpy draws on the abstract variables: kernels ~ N(0, 1/fan_in)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name in ('scale', 'var', 'position_scale'):  # Eq. 1's PE at full scale
      return jnp.ones(leaf.shape, leaf.dtype)
    if name in ('bias', 'mean'):
      return jnp.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else (
        leaf.shape[0])
    return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in),
                       leaf.dtype)
  return jax.tree_util.tree_map_with_path(draw, shapes)


@functools.lru_cache(maxsize=None)
def _setup(**overrides):
  """(module, variables, jitted eval apply, jitted train apply) per config."""
  module = build.sampler(_config(**overrides), frames=T)
  support, labels, query = _episode()
  shapes = jax.eval_shape(lambda: module.init(
      {'params': jax.random.key(0)}, support, labels, query, train=False))
  variables = _random_variables(shapes)

  @jax.jit
  def evaluate(variables, support, query):
    out, state = module.apply(variables, support, labels, query, train=False,
                              mutable=['intermediates'])
    return out, state.get('intermediates', {})

  @jax.jit
  def train(variables, support, query, sigma, key):
    out, state = module.apply(
        variables, support, labels, query, train=True, sigma=sigma,
        rngs={'sampler': key}, mutable=['batch_stats', 'intermediates'])
    return out, state.get('intermediates', {})
  return module, variables, evaluate, train


def _setup_of(**overrides):
  return _setup(**dict(sorted(overrides.items())))


def _smooth_videos(count, seed):
  """[count, M, SIZE, SIZE, 3] products of low-frequency sinusoids."""
  rng = np.random.default_rng(seed)
  yy, xx = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing='ij')
  shape = (count, M, 1, 1, 3)
  fy, fx = rng.uniform(0.5, 2, (2,) + shape)
  py, px = rng.uniform(0, 2 * np.pi, (2,) + shape)
  return jnp.asarray(
      np.sin(2 * np.pi * fy * yy[..., None] / SIZE + py)
      * np.cos(2 * np.pi * fx * xx[..., None] / SIZE + px), jnp.float32)


def _uniform_frames(videos):
  return np.asarray(videos)[:, frames_ops.dense_frame_indices(M, T)]


def test_parameters_follow_the_switches():
  """The parameters sit directly under the sampler whichever part (TS, SA,
  the task-adaptive learner) makes them: the parts share its scope."""
  def names(**overrides):
    module = build.sampler(_config(**overrides), frames=T)
    shapes = jax.eval_shape(lambda: module.init(
        {'params': jax.random.key(0)}, *_episode(), train=False))
    return set(shapes['params'])
  assert names() == {'scan', 'evaluator_w1', 'position_scale',
                     'task_encoder', 'generator_t', 'generator_s'}
  assert names(adaptive=False) == {'scan', 'evaluator_w1', 'position_scale',
                                   'evaluator_w2', 'saliency_w_s'}
  assert names(spatial=False, adaptive=False) == {
      'scan', 'evaluator_w1', 'position_scale', 'evaluator_w2'}
  # Test-time isolation: the switches of both modes get parameters.
  assert names(temporal=False, test_temporal=True, spatial=False) == {
      'scan', 'evaluator_w1', 'position_scale', 'task_encoder', 'generator_t'}
  assert names(test_adaptive=False) == names() | {'evaluator_w2',
                                                  'saliency_w_s'}
  assert names(method='mgsampler') == {'scan'}


def test_shapes_modes_and_selection():
  _, variables, evaluate, train = _setup_of()
  support, _, query = _episode()
  v = V_S + V_Q
  (sup, qry, aux), _ = evaluate(variables, support, query)
  assert sup.shape == (V_S, T, SIZE, SIZE, 3)
  assert qry.shape == (V_Q, T, SIZE, SIZE, 3)
  expected = dict(indices=(v, T), indicators=(v, T, M), scores=(v, M),
                  saliency=(v, T, 2, 2), scan_frames=(v, M, 64),
                  scan_dense=(v, 64), scan_selected=(v, 64))
  assert {k: a.shape for k, a in aux.items()} == expected
  indices = np.asarray(aux['indices'])
  assert indices.dtype == np.int32
  assert np.all(np.diff(indices, axis=1) > 0)
  scores = np.asarray(aux['scores'])
  np.testing.assert_allclose(scores.min(1), 0.0, atol=1e-6)
  np.testing.assert_allclose(scores.max(1), 1.0, atol=1e-6)
  # Evaluation picks the T best scores (numpy reference), as one-hot rows.
  np.testing.assert_array_equal(
      indices, np.sort(np.argsort(-scores, axis=1, kind='stable')[:, :T], 1))
  np.testing.assert_array_equal(
      np.asarray(aux['indicators']), np.eye(M)[indices])
  saliency = np.asarray(aux['saliency'])
  assert saliency.min() >= 0 and saliency.max() <= 1
  np.testing.assert_allclose(saliency.max((2, 3)), 1.0, atol=1e-6)
  # The scan features, from the scan network alone: mean over the M dense
  # frames, and over the T selected ones.
  scan = shufflenet.ShuffleNetV2(**TINY_SCAN)
  maps = jax.jit(functools.partial(scan.apply, train=False))(
      {'params': variables['params']['scan'],
       'batch_stats': variables['batch_stats']['scan']},
      jnp.concatenate([support, query]).reshape(-1, SIZE, SIZE, 3))
  pooled = np.asarray(maps).mean((1, 2)).reshape(v, M, -1)  # [V, M, c]
  np.testing.assert_allclose(np.asarray(aux['scan_frames']), pooled,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(aux['scan_dense']), pooled.mean(1),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      np.asarray(aux['scan_selected']),
      np.take_along_axis(pooled, indices[..., None], 1).mean(1),
      rtol=1e-5, atol=1e-5)

  # Deterministic without any rng.
  (sup2, qry2, aux2), _ = evaluate(variables, support, query)
  np.testing.assert_array_equal(np.asarray(sup), np.asarray(sup2))
  np.testing.assert_array_equal(np.asarray(qry), np.asarray(qry2))

  # Training: soft rows (each sums to 1), random per key.
  (tsup, _, taux), _ = train(variables, support, query, 0.5, jax.random.key(1))
  assert tsup.shape == sup.shape
  assert {k: a.shape for k, a in taux.items()} == expected
  rows = np.asarray(taux['indicators'])
  np.testing.assert_allclose(rows.sum(-1), 1.0, atol=1e-5)
  assert np.any((rows > 0) & (rows < 1))
  np.testing.assert_array_equal(np.asarray(taux['indices']), rows.argmax(-1))
  (_, _, taux2), _ = train(variables, support, query, 0.5, jax.random.key(2))
  assert not np.allclose(rows, np.asarray(taux2['indicators']))
  # A tiny sigma gives (nearly) the hard selection, strictly increasing.
  (_, _, taux3), _ = train(variables, support, query, 1e-4, jax.random.key(3))
  assert np.all(np.diff(np.asarray(taux3['indices']), axis=1) > 0)


def _train_at_prior(module, variables, episode, sigma=0.0):
  """A jitted prior -> (frames [V, T, ...] support first, aux) of one
  training-mode pass on `episode` with a fixed 'sampler' key."""
  support, labels, query = episode

  @jax.jit
  def train(prior):
    (s_out, q_out, aux), _ = module.apply(
        variables, support, labels, query, train=True, sigma=sigma,
        prior=prior, rngs={'sampler': jax.random.key(0)},
        mutable=['batch_stats', 'intermediates'])
    return jnp.concatenate([s_out, q_out]), aux
  return train


def test_uniform_prior_mixes_the_scores():
  """Training ranks (1 - lambda) s + lambda u; lambda = 1 gives uniform frames."""
  module, variables, _, _ = _setup_of(spatial=False)
  run = _train_at_prior(module, variables, _episode(), sigma=0.05)
  train = lambda prior: run(prior)[1]
  uniform = frames_ops.dense_frame_indices(M, T)
  u = np.zeros(M, np.float32)
  u[uniform] = 1.0

  # The mixing is checked against the train-mode scores at prior 0 (the
  # scan features differ from evaluation's by the batch statistics).
  s_train = np.asarray(train(0.0)['scores'])
  # Prior 0 leaves the min-max scores as they are.
  np.testing.assert_allclose(s_train.min(1), 0.0, atol=1e-6)
  np.testing.assert_allclose(s_train.max(1), 1.0, atol=1e-6)
  assert not np.allclose(s_train, u)
  mixed = np.asarray(train(0.3)['scores'])
  np.testing.assert_allclose(mixed, 0.7 * s_train + 0.3 * u, atol=1e-6)
  aux = train(1.0)
  np.testing.assert_allclose(np.asarray(aux['scores']), np.broadcast_to(
      u, s_train.shape), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(aux['indices']),
                                np.broadcast_to(uniform, (V_S + V_Q, T)))


def test_temporal_prior_off_leaves_ts_alone_and_sa_on_its_prior():
  """`temporal_prior=False`: lambda = 1 leaves TS's training scores and
  selection as at lambda = 0, while SA (`spatial_prior`) still takes the
  prior: its saliency is the constant 1 (the identity warp), so the frames
  are TS's own (smoothed) selection unwarped, `indicators @ videos` by hand
  here."""
  module, variables, _, _ = _setup_of(spatial_prior=True,
                                      temporal_prior=False)
  support, labels, query = _episode()
  train = _train_at_prior(module, variables, (support, labels, query),
                          sigma=0.05)

  _, aux0 = train(0.0)
  frames1, aux1 = train(1.0)
  for key in ('scores', 'indices', 'indicators'):
    np.testing.assert_array_equal(np.asarray(aux1[key]),
                                  np.asarray(aux0[key]))
  indices = np.asarray(aux0['indices'])
  assert not np.array_equal(
      indices, np.broadcast_to(frames_ops.dense_frame_indices(M, T),
                               indices.shape))  # TS's own choice
  np.testing.assert_allclose(np.asarray(aux1['saliency']), 1.0)
  videos = np.concatenate([np.asarray(support), np.asarray(query)])
  by_hand = np.einsum('vtm,vmhwc->vthwc', np.asarray(aux0['indicators']),
                      videos)
  np.testing.assert_allclose(np.asarray(frames1), by_hand, atol=1e-4)


@pytest.mark.parametrize('spatial_prior', [False, True])
def test_spatial_prior_starts_at_the_identity_warp(spatial_prior):
  """With `spatial_prior`, SA amplifies by (1 - lambda) a + lambda in training.

  lambda = 1 leaves the selected frames unwarped (TS off, so they are the
  uniform frames); lambda = 0.3 warps by 0.7 a + 0.3, checked against
  `amplify` applied by hand. Without the switch the prior leaves SA alone.
  """
  module, variables, _, _ = _setup_of(temporal=False,
                                      spatial_prior=spatial_prior)
  support, labels, query = _episode()
  train = _train_at_prior(module, variables, (support, labels, query))

  videos = np.concatenate([np.asarray(support), np.asarray(query)])
  uniform = videos[:, frames_ops.dense_frame_indices(M, T)]
  plain, aux0 = train(0.0)
  a = np.asarray(aux0['saliency'])
  assert a.min() == 0.0 and a.max() == 1.0  # min-max per frame
  frames1, aux1 = train(1.0)
  mixed, aux3 = train(0.3)
  if not spatial_prior:
    np.testing.assert_array_equal(np.asarray(frames1), np.asarray(plain))
    np.testing.assert_array_equal(np.asarray(mixed), np.asarray(plain))
    return
  np.testing.assert_allclose(np.asarray(aux1['saliency']), 1.0)
  np.testing.assert_allclose(np.asarray(frames1), uniform, atol=1e-4)
  assert np.abs(np.asarray(plain) - uniform).max() > 0.1  # a did warp
  np.testing.assert_allclose(np.asarray(aux3['saliency']), 0.7 * a + 0.3,
                             atol=1e-6)
  by_hand = spatial_amplifier.amplify(jnp.asarray(uniform), jnp.asarray(
      0.7 * a + 0.3), floor=module.saliency_floor)
  np.testing.assert_allclose(np.asarray(mixed), np.asarray(by_hand),
                             atol=1e-4)


def test_prior_schedule():
  cfg = default.get_config().train
  assert steps.prior_schedule(cfg, 10) == 0.0  # uniform_prior_steps = 0
  cfg.uniform_prior_steps = 100
  np.testing.assert_allclose(
      [steps.prior_schedule(cfg, s) for s in (0, 25, 100, 200)],
      [1.0, 0.75, 0.0, 0.0])


@pytest.mark.parametrize('overrides', [
    dict(temporal=False, spatial=False), dict(method='uniform')])
def test_no_temporal_no_spatial_is_uniform_sampling(overrides):
  _, variables, evaluate, train = _setup_of(**overrides)
  support, _, query = _episode()
  (sup, qry, aux), _ = evaluate(variables, support, query)
  np.testing.assert_array_equal(np.asarray(sup), _uniform_frames(support))
  np.testing.assert_array_equal(np.asarray(qry), _uniform_frames(query))
  np.testing.assert_array_equal(
      np.asarray(aux['indices'][0]), frames_ops.dense_frame_indices(M, T))
  np.testing.assert_array_equal(np.asarray(aux['saliency']), 0.0)
  if overrides.get('method') == 'uniform':
    (tsup, _, _), _ = train(variables, support, query, 0.1, jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(tsup), _uniform_frames(support))


def test_position_embedding():
  pe = temporal_selector.position_embedding(5, 6)
  for pos in range(5):
    for i in range(3):  # Vaswani et al.: sin and cos of pos / 10000^(2i/d)
      angle = pos / 10000 ** (2 * i / 6)
      np.testing.assert_allclose(pe[pos, 2 * i], np.sin(angle), atol=1e-6)
      np.testing.assert_allclose(pe[pos, 2 * i + 1], np.cos(angle), atol=1e-6)


def test_channel_attention_matches_equations_7_8():
  rng = np.random.default_rng(0)
  maps = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)  # [.., h, w, c]
  w_s = rng.normal(size=5).astype(np.float32)
  # Eq. 7-8 as written, in float64: F [c, hw], alpha [c, c].
  f = maps.astype(np.float64).reshape(2, 12, 5).transpose(0, 2, 1)
  alpha = f @ f.transpose(0, 2, 1) / np.sqrt(12)
  f_prime = alpha @ f  # [2, c, hw]
  expected = (w_s[None, :, None] * f_prime).mean(1).reshape(2, 3, 4)
  got = spatial_amplifier.channel_attention_saliency(jnp.asarray(maps),
                                               jnp.asarray(w_s))
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_constant_saliency_is_identity_and_sa_gradient():
  frames = np.random.default_rng(1).normal(size=(2, 3, 32, 32, 3)).astype(
      np.float32)
  for value in (0.0, 1.0, 0.3):
    out = spatial_amplifier.amplify(jnp.asarray(frames),
                              jnp.full((2, 3, 2, 2), value), floor=0.05)
    np.testing.assert_allclose(np.asarray(out), frames, atol=1e-5)

  # In the module: SA on the uniform frames; w_s = 0 gives a zero map.
  _, variables, evaluate, _ = _setup_of(temporal=False, adaptive=False)
  support, labels, query = _episode()
  zero = jax.tree.map(lambda x: x, variables)
  zero['params']['saliency_w_s'] = jnp.zeros_like(
      variables['params']['saliency_w_s'])
  (sup, qry, aux), _ = evaluate(zero, support, query)
  np.testing.assert_array_equal(np.asarray(aux['saliency']), 0.0)
  np.testing.assert_allclose(np.asarray(sup), _uniform_frames(support),
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(qry), _uniform_frames(query),
                             atol=1e-5)
  # A non-zero w_s changes the frames.
  (sup, _, aux), _ = evaluate(variables, support, query)
  assert np.abs(np.asarray(sup) - _uniform_frames(support)).max() > 0.1
  # Its gradient matches central differences along a random direction, on
  # smooth frames (bilinear sampling of noise frames has a kink at every
  # pixel, which float32 differences cannot resolve).
  support, query = _smooth_videos(V_S, seed=7), _smooth_videos(V_Q, seed=8)
  weights = np.random.default_rng(2).normal(size=sup.shape).astype(np.float32)

  @jax.jit
  @jax.value_and_grad
  def loss(w_s):
    params = dict(variables['params'], saliency_w_s=w_s)
    (sup, _, _), _ = evaluate(dict(variables, params=params), support, query)
    return jnp.sum(sup * weights)
  w_s = variables['params']['saliency_w_s']
  _, grad = loss(w_s)
  assert np.all(np.isfinite(np.asarray(grad)))
  direction = np.random.default_rng(3).normal(size=w_s.shape).astype(
      np.float32)
  h = 1e-5  # the min-max normalised 2x2 maps are steep: small steps
  numeric = (loss(w_s + h * direction)[0]
             - loss(w_s - h * direction)[0]) / (2 * h)
  analytic = float(jnp.vdot(grad, direction))
  assert abs(analytic) > 1.0
  np.testing.assert_allclose(analytic, float(numeric), rtol=0.03)


def test_gradients_reach_the_evaluator_and_generators():
  _, variables, _, train = _setup_of()
  support, _, query = _episode()
  weights = np.random.default_rng(4).normal(
      size=(V_S, T, SIZE, SIZE, 3)).astype(np.float32)

  names = ('evaluator_w1', 'position_scale', 'generator_t', 'generator_s',
           'task_encoder')

  @jax.jit
  @jax.grad
  def grad_fn(sampler_params, sigma):
    # Only the sampler's own parameters: no backward pass through the scan.
    params = dict(variables['params'], **sampler_params)
    (sup, qry, _), _ = train(dict(variables, params=params), support, query,
                             sigma, jax.random.key(5))
    return jnp.sum(sup * weights) + jnp.sum(qry)

  sampler_params = {k: variables['params'][k] for k in names}
  grads = grad_fn(sampler_params, 0.3)
  for name in names:
    leaves = [np.asarray(x) for x in jax.tree.leaves(grads[name])]
    assert all(np.all(np.isfinite(x)) for x in leaves), name
    assert max(np.abs(x).max() for x in leaves) > 0, name
  # The evaluator only receives gradient through the perturbed top-k: at
  # sigma = 0 (hard top-k) it gets none.
  grads0 = grad_fn(sampler_params, 0.0)
  for leaf in jax.tree.leaves((grads0['evaluator_w1'], grads0['position_scale'])):
    np.testing.assert_array_equal(np.asarray(leaf), 0.0)



def test_detach_scan_keeps_selection_gradients_out_of_the_scan_net():
  """With `detach_scan` a loss on the sampled frames (which reach the scan
  net only through TS's scores, SA's saliency and the task learner) gives
  the scan net no gradient, and the evaluator and generators still get
  theirs; a loss on aux['scan_frames'] (the distillation's input) still
  reaches the scan net. Without it the same loss reaches the scan net.
  Detaching changes no value."""
  support, _, query = _episode()
  weights = np.random.default_rng(4).normal(
      size=(V_S, T, SIZE, SIZE, 3)).astype(np.float32)

  def grads(detach, on):
    _, variables, _, train = _setup_of(detach_scan=detach)

    @jax.jit
    @jax.grad
    def grad_fn(params):
      (sup, qry, aux), _ = train(dict(variables, params=params), support,
                                 query, 0.3, jax.random.key(5))
      if on == 'frames':
        return jnp.sum(sup * weights) + jnp.sum(qry)
      return jnp.sum(jnp.sin(aux['scan_frames']))
    return grad_fn(variables['params'])

  def largest(tree):
    return max(float(np.abs(np.asarray(x)).max())
               for x in jax.tree.leaves(tree))

  detached, attached = grads(True, 'frames'), grads(False, 'frames')
  assert largest(detached['scan']) == 0.0
  assert largest(attached['scan']) > 0.0
  for name in ('evaluator_w1', 'generator_t', 'generator_s', 'task_encoder'):
    assert largest(detached[name]) > 0.0, name
  assert largest(grads(True, 'scan_frames')['scan']) > 0.0
  # The same values either way.
  outs = [_setup_of(detach_scan=d)[3](_setup_of(detach_scan=d)[1], support,
                                      query, 0.3, jax.random.key(5))[0]
          for d in (True, False)]
  for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _generated_w2(variables, scan_dense):
  """w2 from the parameters by hand (numpy, eps = 0): Eq. 12 and 14."""
  p = jax.tree.map(np.asarray, variables['params'])
  enc = p['task_encoder']
  x = np.maximum(scan_dense[:V_S] @ enc['dense_0']['kernel']
                 + enc['dense_0']['bias'], 0)
  x = (x @ enc['dense_1']['kernel'] + enc['dense_1']['bias']).mean(0)
  mu = x[:x.shape[0] // 2]
  theta = mu @ p['generator_t']['kernel'] + p['generator_t']['bias']
  return theta / np.linalg.norm(theta)


def test_task_adaptation_depends_on_the_support_only():
  _, variables, evaluate, train = _setup_of()
  support, _, query = _episode(0)
  other_support, _, other_query = _episode(1)
  (sup, _, aux), inter = evaluate(variables, support, query)
  w2 = np.asarray(inter['w2'][0])
  np.testing.assert_allclose(
      w2, _generated_w2(variables, np.asarray(aux['scan_dense'])), atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(inter['w_s'][0])), 1.0,
                             atol=1e-5)
  # Another query: same weights, same support frames.
  (sup_q, _, _), inter_q = evaluate(variables, support, other_query)
  np.testing.assert_array_equal(np.asarray(inter_q['w2'][0]), w2)
  np.testing.assert_array_equal(np.asarray(sup_q), np.asarray(sup))
  # Another support: other weights.
  _, inter_s = evaluate(variables, other_support, query)
  assert np.abs(np.asarray(inter_s['w2'][0]) - w2).max() > 1e-3
  # Training samples f_t = mu + sigma eps: random per key.
  _, inter_t1 = train(variables, support, query, 0.1, jax.random.key(1))
  _, inter_t2 = train(variables, support, query, 0.1, jax.random.key(2))
  assert np.abs(np.asarray(inter_t1['w2'][0])
                - np.asarray(inter_t2['w2'][0])).max() > 1e-4


def test_task_noise_starts_small():
  """log_var = E's second half + 2 log 0.05: a zero E gives noise std 0.05."""
  encoder = task_adaptive.TaskEncoder(task_dim=4)
  features = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
  params = encoder.init(jax.random.key(0), features)['params']
  params = jax.tree.map(np.zeros_like, params)
  params['dense_1']['bias'] = np.array([1, 2, 3, 4, 0, 0, 1, -1], np.float32)
  mu, log_var = encoder.apply({'params': params}, features)
  np.testing.assert_allclose(mu, [1, 2, 3, 4])
  np.testing.assert_allclose(np.exp(np.asarray(log_var) / 2),
                             [0.05, 0.05, 0.05 * np.e ** 0.5,
                              0.05 * np.e ** -0.5], rtol=1e-5)


def test_motion_indices_hand_worked():
  motion_indices = jax.jit(temporal_selector.motion_indices, static_argnums=1)
  # Frames move (by 1) only at frames 6-9 of 12.
  x = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 4, 4], np.float32)[None, :, None]
  # In units of the mean motion the four moving frames hold ~3 each:
  # cum ~ [0, ..., 0, 3, 6, 9, 12, 12, 12]; targets (j + 0.5) * 12 / k.
  np.testing.assert_array_equal(
      np.asarray(motion_indices(x, 4)), [[6, 7, 8, 9]])  # 1.5 ..
  np.testing.assert_array_equal(
      np.asarray(motion_indices(x, 3)), [[6, 7, 9]])  # 2, 6, 10
  # All motion in one frame: the picks collide there and are spread out.
  burst = np.array([0, 0, 0, 0, 5, 5, 5, 5], np.float32)[None, :, None]
  np.testing.assert_array_equal(
      np.asarray(motion_indices(burst, 3)), [[4, 5, 6]])
  # A static video gets the uniform segment centres.
  for m, k in [(20, 8), (6, 3)]:  # (6, 3): targets on frame boundaries
    np.testing.assert_array_equal(
        np.asarray(motion_indices(np.ones((1, m, 4)), k))[0],
        frames_ops.dense_frame_indices(m, k))


def test_mgsampler_selects_where_the_motion_is():
  _, variables, evaluate, _ = _setup_of(method='mgsampler')
  rng = np.random.default_rng(6)
  still = rng.normal(size=(SIZE, SIZE, 3)).astype(np.float32)
  videos = np.repeat(still[None, None], V_S + V_Q, 0).repeat(M, 1)
  # Frames 3-5 of every video change; frames 0-2 are the same image.
  videos[:, 3:] = rng.normal(size=videos[:, 3:].shape)
  support, query = jnp.asarray(videos[:V_S]), jnp.asarray(videos[V_S:])
  (sup, _, aux), _ = evaluate(variables, support, query)
  np.testing.assert_array_equal(np.asarray(aux['indices']),
                                np.tile([3, 4, 5], (V_S + V_Q, 1)))
  np.testing.assert_array_equal(np.asarray(sup), videos[:V_S, 3:])
  scores = np.asarray(aux['scores'])
  assert np.all(scores[:, :3] < 1e-3)
  assert np.all(scores[:, 3:] > 0.1)


def test_sampler_figure(tmp_path):
  _, variables, evaluate, _ = _setup_of()
  support, _, query = _episode()
  videos = jnp.concatenate([support, query])
  (sup, qry, aux), _ = evaluate(variables, support, query)
  selected = jnp.concatenate([sup, qry])
  image = figure_lib.sampler_grid(videos, aux, video=1, mean=MEAN, std=STD,
                                  selected=selected)
  gap = figure_lib.GAP
  assert image.dtype == np.uint8
  assert image.shape == (3 * SIZE + 2 * gap, M * SIZE + (M - 1) * gap, 3)
  assert image.std() > 10
  # Selected frames carry the green frame; the others are drawn as they are.
  indices = np.asarray(aux['indices'][1])
  for i in range(M):
    corner = image[0, i * (SIZE + gap)]
    if i in indices:
      np.testing.assert_array_equal(corner, figure_lib.SELECTED_COLOUR)
    else:
      np.testing.assert_array_equal(
          image[:SIZE, i * (SIZE + gap):i * (SIZE + gap) + SIZE],
          np.clip(np.round(np.asarray(videos[1, i]) * STD + MEAN), 0, 255))
      # Nothing under an unselected frame.
      assert np.all(image[SIZE + gap:, i * (SIZE + gap)] == figure_lib.BACKGROUND)
  # Recomputing the amplification from aux gives the same picture.
  recomputed = figure_lib.sampler_grid(videos, aux, video=1, mean=MEAN,
                                       std=STD, floor=0.05)
  assert np.abs(recomputed.astype(int) - image.astype(int)).max() <= 1
  path = tmp_path / 'figures' / 'sampler.png'
  figure_lib.save_png(image, str(path))
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


def test_without_position_embedding_scores_follow_content_only():
  """position_embedding=False: permuting a video's frames permutes its
  scores (the evaluator sees each frame's features and the video's mean);
  with Eq. 1's embedding (scale 1 here) the same permutation does not."""
  support, _, query = _episode()
  perm = np.array([3, 0, 5, 1, 4, 2])
  for with_pe in (False, True):
    _, variables, evaluate, _ = _setup_of(position_embedding=with_pe)
    assert ('position_scale' in variables['params']) == with_pe
    (_, _, aux), _ = evaluate(variables, support, query)
    (_, _, permuted), _ = evaluate(variables, support[:, perm], query[:, perm])
    same = np.allclose(np.asarray(permuted['scores']),
                       np.asarray(aux['scores'])[:, perm], atol=1e-5)
    assert same != with_pe


def test_straight_through_trains_on_the_frames_evaluation_picks():
  """With `straight_through` TS's training frames are whole dense frames:
  those of the hard top-k of the training scores, not blends."""
  module, variables, _, train = _setup_of(spatial=False, straight_through=True)
  support, _, query = _episode()
  (s_out, q_out, aux), _ = train(variables, support, query, 0.5,
                                 jax.random.key(0))
  videos = np.concatenate([np.asarray(support), np.asarray(query)])
  scores = np.asarray(aux['scores'])  # [V, M]
  picked = np.sort(np.argsort(-scores, 1, kind='stable')[:, :T], 1)
  expected = videos[np.arange(len(videos))[:, None], picked]
  np.testing.assert_array_equal(np.concatenate([s_out, q_out]), expected)
  # The smoothed forward at the same sigma blends frames.
  train_soft = _setup_of(spatial=False)[3]
  (_, _, aux_soft), _ = train_soft(variables, support, query, 0.5,
                                        jax.random.key(0))
  assert np.asarray(aux_soft['indicators']).max(-1).min() < 0.99
