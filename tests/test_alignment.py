"""Spatial-temporal action alignment (paper 3.4): hand-worked cases, numpy."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import default
from vim_jax.figures import alignment as alignment_figures
from vim_jax.figures import sampler as sampler_figures
from vim_jax.models import build
from vim_jax.models import protonet

WAY, SHOT, QUERIES, T, H, W, C = 3, 2, 2, 4, 3, 3, 8
LABELS = np.array([2, 0, 1, 0, 2, 1])  # shuffled on purpose


def make_config(**overrides):
  cfg = default.get_config().model.alignment
  cfg.localisation_hidden = cfg.offset_hidden = 4  # small and fast
  for key, value in overrides.items():
    setattr(cfg, key, value)
  return cfg


def episode(seed=0):
  rng = np.random.default_rng(seed)
  support = rng.normal(size=(WAY * SHOT, T, H, W, C)).astype(np.float32)
  query = rng.normal(size=(QUERIES, T, H, W, C)).astype(np.float32)
  return support, query


def init(module, support, query, labels=LABELS):
  return module.init({'params': jax.random.key(0)}, support, labels, query,
                     train=False)


@functools.lru_cache(maxsize=None)
def _full_params(channels):
  support, query = episode()
  module = build.alignment(make_config(
      transform=True, rearrange=True, spatial=True, channels=channels), WAY)
  return init(module, support, query)['params']


def initial_variables(module):
  """Initial variables of a module with every part on (one init per width).

  A superset of what `module` uses (apply ignores the rest), equal to its own
  initial parameters: parameters are initialised by name.
  """
  return {'params': _full_params(module.channels)}


def run(module, variables, support, query, labels=LABELS, train=False,
        key=1):
  rngs = {'sampler': jax.random.key(key)} if train else None
  return module.apply(variables, support, labels, query, train=train,
                      rngs=rngs)


def replace(params, path, value):
  """A copy of nested params with params[path[0]]...[path[-1]] = value."""
  params = jax.tree.map(lambda x: x, params)
  node = params
  for name in path[:-1]:
    node = node[name]
  node[path[-1]] = jnp.asarray(value, jnp.float32)
  return params


def randomise_heads(params, seed=0, scale=0.1):
  """Small random kernels for the zero-initialised heads (TT and SC)."""
  rng = np.random.default_rng(seed)
  for path in (('localiser', 'head', 'kernel'), ('offsets', 'head', 'kernel')):
    if path[0] in params:
      shape = params[path[0]][path[1]][path[2]].shape
      params = replace(params, path, scale * rng.normal(size=shape))
  return params


def numpy_mask(dy, dx):
  """[H, W] area of each cell covered by the map shifted by (dy, dx) cells."""
  i, j = np.arange(H), np.arange(W)
  rows = np.clip(np.minimum(i + 1, dy + H) - np.maximum(i, dy), 0, 1)
  cols = np.clip(np.minimum(j + 1, dx + W) - np.maximum(j, dx), 0, 1)
  return rows[:, None] * cols[None, :]


def numpy_masked_mean(maps, dy, dx):  # [H, W, D] -> [D]
  mask = numpy_mask(dy, dx)
  return (mask[:, :, None] * maps).sum((0, 1)) / mask.sum()


def test_parameter_tree():
  """TT's, TR's and SC's parameters sit directly under the alignment (SC's
  module shares its scope), under the names checkpoints hold."""
  assert set(_full_params(0)) == {'localiser', 'rearrange', 'offsets'}
  assert set(_full_params(5)) == {'reduce', 'localiser', 'rearrange',
                                  'offsets'}
  assert set(_full_params(0)['offsets']) == {'conv_support', 'conv_query',
                                             'head'}


def test_everything_off_is_protonet():
  support, query = episode()
  module = build.alignment(make_config(), WAY)
  variables = init(module, support, query)
  assert not variables.get('params')
  q_al, p_al, aux = run(module, variables, support, query)
  features = jnp.asarray(np.concatenate([support, query])).mean(axis=(2, 3))
  protos = protonet.class_prototypes(features[:len(support)], LABELS, WAY)
  assert q_al.shape == p_al.shape == (QUERIES, WAY, T, C)
  for n in range(WAY):
    np.testing.assert_array_equal(q_al[:, n], features[len(support):])
    np.testing.assert_array_equal(p_al[:, n], np.broadcast_to(
        protos[n], (QUERIES, T, C)))
  # Independent numpy reference.
  np_protos = np.stack([support[LABELS == c].mean((0, 2, 3))
                        for c in range(WAY)])
  np.testing.assert_allclose(p_al[0], np_protos, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(aux['query_unaligned'], query.mean((2, 3)),
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(aux['prototype_unaligned'], np_protos,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(
      aux['warp'], np.tile([1.0, 0.0], (WAY * SHOT + QUERIES, 1)))
  np.testing.assert_array_equal(
      aux['attention'], np.broadcast_to(np.eye(T), (QUERIES, WAY, T, T)))
  np.testing.assert_array_equal(aux['offsets'], 0)
  np.testing.assert_array_equal(aux['cost'], 0)
  # Shuffling the support does not change the prototypes.
  perm = np.random.default_rng(1).permutation(len(LABELS))
  _, p_perm, _ = run(module, variables, support[perm], query, LABELS[perm])
  np.testing.assert_allclose(p_perm, p_al, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('transform,rearrange,spatial,order,channels', [
    (True, True, True, 'temporal_first', 0),
    (True, True, True, 'spatial_first', 5),
    (True, False, True, 'spatial_first', 0),
])
def test_shapes(transform, rearrange, spatial, order, channels):
  support, query = episode()
  module = build.alignment(make_config(
      transform=transform, rearrange=rearrange, spatial=spatial, order=order,
      channels=channels), WAY)
  variables = initial_variables(module)
  params = randomise_heads(variables['params'])
  dim = channels or C
  for train in (True, False):
    q_al, p_al, aux = run(module, {'params': params}, support, query,
                          train=train)
    assert q_al.shape == p_al.shape == (QUERIES, WAY, T, dim)
    assert q_al.dtype == p_al.dtype == jnp.float32
    assert aux['warp'].shape == (WAY * SHOT + QUERIES, 2)
    assert aux['attention'].shape == (QUERIES, WAY, T, T)
    assert aux['offsets'].shape == (QUERIES, WAY, T, 2)
    assert aux['cost'].shape == (QUERIES, WAY)
    assert aux['query_unaligned'].shape == (QUERIES, T, dim)
    assert aux['prototype_unaligned'].shape == (WAY, T, dim)
    for value in (q_al, p_al) + tuple(aux.values()):
      assert np.all(np.isfinite(value))
    np.testing.assert_allclose(aux['attention'].sum(-1), 1, rtol=1e-5)
    limit = 0.5 * np.array([H, W])  # max_shift = 0.5 map sides
    assert np.all(np.abs(aux['offsets']) <= limit + 1e-6)
    assert np.any(aux['offsets'] != 0)  # the heads were randomised
    assert np.all(aux['cost'] > 0)


@pytest.mark.parametrize('spatial', [False, True])
def test_transform_starts_as_identity(spatial):
  support, query = episode()
  on = build.alignment(
      make_config(transform=True, spatial=spatial), WAY)
  off = build.alignment(make_config(spatial=spatial), WAY)
  variables = initial_variables(on)
  q_on, p_on, aux = run(on, variables, support, query)
  q_off, p_off, _ = run(off, variables, support, query)  # ignores localiser
  np.testing.assert_array_equal(
      aux['warp'], np.tile([1.0, 0.0], (WAY * SHOT + QUERIES, 1)))
  np.testing.assert_array_equal(q_on, q_off)
  np.testing.assert_array_equal(p_on, p_off)
  np.testing.assert_array_equal(aux['cost'], 0)


def test_transform_warps_like_temporal_warp():
  """A hand-set (a, b) (bias of the zero-kernel head) resamples every video."""
  support, query = episode()
  module = build.alignment(make_config(transform=True), WAY)
  variables = initial_variables(module)
  a, b = 0.75, 0.25  # samples t' = 0.75 t + 0.25 in [-0.5, 1.0]
  # the head's output (u, v) gives a = 1 + r tanh(u), b = r tanh(v), r = 0.5
  params = replace(variables['params'], ('localiser', 'head', 'bias'),
                   [np.arctanh((a - 1) / 0.5), np.arctanh(b / 0.5)])
  q_al, p_al, aux = run(module, {'params': params}, support, query)
  np.testing.assert_allclose(aux['warp'], np.tile([a, b], (8, 1)), atol=1e-7)
  # numpy: frame i at position (a * t_i + b + 1) * (T - 1) / 2, linear interp.
  pos = (a * np.linspace(-1, 1, T) + b + 1) * (T - 1) / 2
  lo = np.floor(pos).astype(int)
  frac = pos - lo

  def warp(x):  # [T, C]
    return (1 - frac[:, None]) * x[lo] + frac[:, None] * x[np.minimum(lo + 1,
                                                                      T - 1)]

  pooled_q = query.mean((2, 3))
  np.testing.assert_allclose(q_al[:, 0], [warp(x) for x in pooled_q],
                             rtol=1e-5, atol=1e-6)
  pooled_s = [warp(x) for x in support.mean((2, 3))]
  protos = np.stack([np.mean([p for p, l in zip(pooled_s, LABELS) if l == c],
                             0) for c in range(WAY)])
  np.testing.assert_allclose(p_al[0], protos, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux['cost'], abs(1 - a) + abs(b), rtol=1e-6)


@pytest.mark.parametrize('order', ['temporal_first', 'spatial_first'])
def test_rearrangement_recovers_a_permutation(order):
  """Query = time permutation of its class's prototype, one-hot time codes."""
  perm = np.array([2, 0, 3, 1])  # query step s shows prototype step perm[s]
  codes = 10.0 * np.eye(C, dtype=np.float32)  # [C, C]
  support = np.zeros((WAY * SHOT, T, H, W, C), np.float32)
  for v, label in enumerate(LABELS):
    for t in range(T):  # class c uses codes (t + 4 c) % C: distinct in time
      support[v, t] = codes[(t + 4 * label) % C]
  query = np.zeros((QUERIES, T, H, W, C), np.float32)
  for s in range(T):
    query[0, s] = codes[perm[s]]  # class 0, time-permuted
    query[1, s] = codes[(perm[s] + 4) % C]  # class 1, time-permuted
  # Eq. 17 as printed: no locality prior.
  module = build.alignment(
      make_config(rearrange=True, order=order, locality=0.0), WAY)
  variables = initial_variables(module)
  eye = np.eye(C, dtype=np.float32)
  params = variables['params']
  for name in ('key', 'query', 'value'):
    params = replace(params, ('rearrange', name, 'kernel'), eye)
  params = replace(params, ('rearrange', 'value', 'bias'), np.zeros(C))
  q_al, p_al, aux = run(module, {'params': params}, support, query)
  # M_e[t, s] = 1 where the query's step s shows the prototype's step t.
  expected = np.zeros((T, T))
  expected[perm, np.arange(T)] = 1
  np.testing.assert_allclose(aux['attention'][0, 0], expected, atol=1e-6)
  np.testing.assert_allclose(aux['attention'][1, 1], expected, atol=1e-6)
  for q, label in ((0, 0), (1, 1)):
    proto = support[LABELS == label][0].mean((1, 2))  # [T, C] in time order
    np.testing.assert_allclose(q_al[q, label], proto, atol=1e-4)
    np.testing.assert_allclose(p_al[q, label], proto, atol=1e-4)
    assert protonet.frame_cosine_distance(q_al[q, label],
                                          p_al[q, label]) < 1e-6
  # Rows (the prototype's steps) are normalised over the query's steps: a
  # query showing steps [0, 0, 1, 2] gives row 0 half of each of its first two
  # steps and row 3, which nothing matches, the query's mean.
  repeat = query.copy()
  repeat[0] = codes[[0, 0, 1, 2]][:, None, None, :]
  q_rep, _, aux = run(module, {'params': params}, support, repeat)
  expected = np.array([[0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                       [0.25, 0.25, 0.25, 0.25]])
  np.testing.assert_allclose(aux['attention'][0, 0], expected, atol=1e-6)
  np.testing.assert_allclose(q_rep[0, 0, 3], repeat[0].mean((0, 1, 2)),
                             atol=1e-4)
  # Without TR the permuted query does not match.
  plain = build.alignment(make_config(order=order), WAY)
  q_plain, p_plain, _ = run(plain, {}, support, query)
  assert protonet.frame_cosine_distance(q_plain[0, 0], p_plain[0, 0]) > 1


@pytest.mark.parametrize('beta', [0.5, 2.0])
def test_locality_prior_closed_form(beta):
  """Frames all alike: M_e = softmax_s(-beta (t - s)^2), by hand; d/dbeta."""
  frame = np.random.default_rng(0).normal(size=(H, W, C)).astype(np.float32)
  support = np.broadcast_to(frame, (WAY * SHOT, T, H, W, C))
  query = np.broadcast_to(frame, (QUERIES, T, H, W, C))
  module = build.alignment(
      make_config(rearrange=True, locality=beta), WAY)
  variables = init(module, support, query)
  assert np.isclose(variables['params']['rearrange']['log_locality'],
                    np.log(beta))
  _, _, aux = run(module, variables, support, query)
  gap = (np.arange(T)[:, None] - np.arange(T)[None, :]) ** 2
  expected = np.exp(-beta * gap)
  expected /= expected.sum(1, keepdims=True)
  np.testing.assert_allclose(aux['attention'][1, 2], expected, rtol=1e-5,
                             atol=1e-7)
  # The prior is learned: the derivative of sum_t M_e[t, t] with respect to
  # log beta matches a central difference.
  def diagonal(log_beta):
    params = replace(variables['params'], ('rearrange', 'log_locality'),
                     log_beta)
    _, _, aux = module.apply({'params': params}, support, LABELS, query,
                             train=False)
    return jnp.trace(aux['attention'][0, 0])
  grad = jax.grad(diagonal)(jnp.float32(np.log(beta)))
  eps = 1e-2
  numeric = (diagonal(np.log(beta) + eps) - diagonal(np.log(beta) - eps)) / (
      2 * eps)
  assert grad > 0
  np.testing.assert_allclose(grad, numeric, rtol=1e-3)


@pytest.mark.parametrize('order', ['temporal_first', 'spatial_first'])
def test_spatial_at_init_is_average_pooling(order):
  support, query = episode()
  module = build.alignment(
      make_config(spatial=True, order=order), WAY)
  off = build.alignment(make_config(), WAY)
  variables = initial_variables(module)
  q_off, p_off, _ = run(off, {}, support, query)
  q_al, p_al, aux = run(module, variables, support, query)
  np.testing.assert_array_equal(aux['offsets'], 0)
  np.testing.assert_allclose(q_al, q_off, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(p_al, p_off, rtol=1e-5, atol=1e-6)
  # Training: perturbed offsets change the pooling (unless there are none).
  q_tr, _, aux_tr = run(module, variables, support, query, train=True)
  np.testing.assert_array_equal(aux_tr['offsets'], 0)  # unperturbed
  assert np.max(np.abs(q_tr - q_off)) > 1e-3
  q_tr2, _, _ = run(module, variables, support, query, train=True)
  np.testing.assert_array_equal(q_tr, q_tr2)  # same key, same perturbations
  quiet = build.alignment(
      make_config(spatial=True, order=order, perturbations=0), WAY)
  q_quiet, _, _ = run(quiet, variables, support, query, train=True)
  np.testing.assert_allclose(q_quiet, q_off, rtol=1e-5, atol=1e-6)


def test_spatial_hand_set_offsets_match_numpy():
  support, query = episode()
  module = build.alignment(make_config(spatial=True), WAY)
  variables = initial_variables(module)
  target = np.array([0.75, -0.6])  # (dy, dx) cells; max 0.5 * 3 = 1.5
  raw = target / (0.5 * np.array([H, W]))
  params = replace(variables['params'], ('offsets', 'head', 'bias'),
                   np.arctanh(raw))
  q_al, p_al, aux = run(module, {'params': params}, support, query)
  np.testing.assert_allclose(aux['offsets'],
                             np.broadcast_to(target, (QUERIES, WAY, T, 2)),
                             rtol=1e-5)
  np.testing.assert_allclose(
      aux['cost'], np.sqrt(T * np.sum(raw ** 2)), rtol=1e-5)
  protos = np.stack([support[LABELS == c].mean(0) for c in range(WAY)])
  dy, dx = target
  for q in range(QUERIES):
    for n in range(WAY):
      for t in range(T):
        np.testing.assert_allclose(
            p_al[q, n, t], numpy_masked_mean(protos[n, t], dy, dx),
            rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            q_al[q, n, t], numpy_masked_mean(query[q, t], -dy, -dx),
            rtol=1e-5, atol=1e-6)
  # Support cell (i + dy, j + dx) faces query cell (i, j): with whole-cell
  # offsets the windows are the same size and shifted by (dy, dx).
  assert numpy_mask(1, -1).sum() == numpy_mask(-1, 1).sum() == 4


@pytest.mark.parametrize('order', ['temporal_first', 'spatial_first'])
def test_support_videos_average_to_the_prototypes(order):
  """'support_aligned' (for the metric heads): each support video through
  what its class prototype went through; their class means are the
  aligned prototypes, per query with SC and once for all queries without."""
  support, query = episode()
  module = build.alignment(make_config(
      transform=True, rearrange=True, spatial=True, order=order), WAY)
  params = randomise_heads(initial_variables(module)['params'])
  rngs = {'sampler': jax.random.key(1)}
  for train, shape in ((True, (QUERIES, WAY * SHOT, T, C)),
                       (False, (WAY * SHOT, T, C))):
    if not train:  # SC off at test: nothing depends on the pair any more
      module = build.alignment(make_config(
          transform=True, rearrange=True, spatial=True, order=order,
          test_spatial=False), WAY)
    _, prototypes, aux = module.apply(
        {'params': params}, support, LABELS, query, train=train, rngs=rngs,
        support_videos=True)
    videos = aux['support_aligned']
    assert videos.shape == shape
    means = protonet.class_prototypes(
        jnp.moveaxis(jnp.broadcast_to(videos, (QUERIES,) + shape[-3:]), 1, 0),
        LABELS, WAY)  # [N, V_q, T, D]
    np.testing.assert_allclose(jnp.moveaxis(means, 0, 1), prototypes,
                               rtol=1e-5, atol=1e-5)
    # The query side and everything else are as without support videos.
    _, plain, plain_aux = module.apply(
        {'params': params}, support, LABELS, query, train=train, rngs=rngs)
    np.testing.assert_array_equal(plain, prototypes)
    assert 'support_aligned' not in plain_aux


def test_rearranged_spatial_pooling_matches_materialised_maps():
  """The factorised TR + SC contraction equals pooling the mixed maps."""
  support, query = episode()
  module = build.alignment(
      make_config(rearrange=True, spatial=True), WAY)
  variables = initial_variables(module)
  rng = np.random.default_rng(3)
  w_v = rng.normal(size=(C, C)).astype(np.float32) / np.sqrt(C)
  b_v = rng.normal(size=C).astype(np.float32)
  params = replace(variables['params'], ('rearrange', 'value', 'kernel'), w_v)
  params = replace(params, ('rearrange', 'value', 'bias'), b_v)
  params = randomise_heads(params, scale=1.0)
  q_al, p_al, aux = run(module, {'params': params}, support, query)
  offsets, attention = np.asarray(aux['offsets']), np.asarray(aux['attention'])
  assert len(np.unique(offsets.round(4))) > 4  # varied offsets
  protos = np.stack([support[LABELS == c].mean(0) for c in range(WAY)])
  protos_v = protos @ w_v + b_v  # [N, T, H, W, C]
  query_v = query @ w_v + b_v  # [V_q, T, H, W, C]
  for q in range(QUERIES):
    for n in range(WAY):
      mixed = np.einsum('ts,shwd->thwd', attention[q, n], query_v[q])
      for t in range(T):
        dy, dx = offsets[q, n, t]
        np.testing.assert_allclose(
            p_al[q, n, t], numpy_masked_mean(protos_v[n, t], dy, dx),
            rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            q_al[q, n, t], numpy_masked_mean(mixed[t], -dy, -dx),
            rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('order', ['temporal_first', 'spatial_first'])
def test_distances_ignore_support_order(order):
  support, query = episode()
  module = build.alignment(make_config(
      transform=True, rearrange=True, spatial=True, order=order), WAY)
  variables = initial_variables(module)
  params = randomise_heads(variables['params'], scale=1.0)

  def distances(s, labels):
    q_al, p_al, _ = run(module, {'params': params}, s, query, labels)
    return protonet.frame_cosine_distance(q_al, p_al)  # [V_q, N]

  perm = np.random.default_rng(2).permutation(len(LABELS))
  np.testing.assert_allclose(distances(support, LABELS),
                             distances(support[perm], LABELS[perm]),
                             rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_module():
  support, query = episode()
  module = build.alignment(make_config(
      transform=True, rearrange=True, spatial=True, channels=5), WAY)
  variables = initial_variables(module)

  @jax.jit
  def grads(params):
    def loss(params):
      q_al, p_al, _ = module.apply(
          {'params': params}, support, LABELS, query, train=True,
          rngs={'sampler': jax.random.key(0)})
      return protonet.frame_cosine_distance(q_al, p_al).mean()
    return jax.grad(loss)(params)

  at_init = grads(variables['params'])
  for leaf in jax.tree.leaves(at_init):
    assert np.all(np.isfinite(leaf))
  for path in (('localiser', 'head', 'bias'), ('localiser', 'head', 'kernel'),
               ('rearrange', 'key', 'kernel'), ('rearrange', 'query', 'kernel'),
               ('rearrange', 'value', 'kernel'), ('offsets', 'head', 'bias'),
               ('offsets', 'head', 'kernel'), ('reduce', 'kernel')):
    leaf = at_init
    for name in path:
      leaf = leaf[name]
    assert np.max(np.abs(leaf)) > 0, path
  # The layers behind the zero-initialised heads learn once the heads move.
  moved = grads(randomise_heads(variables['params']))
  for path, leaf in jax.tree_util.tree_flatten_with_path(moved)[0]:
    assert np.all(np.isfinite(leaf)), path
    assert np.max(np.abs(leaf)) > 0, path


def test_test_time_switches():
  support, query = episode()
  # Trained with everything, evaluated with nothing: plain ProtoNet pooling.
  module = build.alignment(make_config(
      transform=True, rearrange=True, spatial=True, test_transform=False,
      test_rearrange=False, test_spatial=False), WAY)
  variables = init(module, support, query)
  assert set(variables['params']) == {'localiser', 'rearrange', 'offsets'}
  params = randomise_heads(variables['params'])
  q_al, p_al, aux = run(module, {'params': params}, support, query)
  q_off, p_off, _ = run(build.alignment(make_config(), WAY), {},
                        support, query)
  np.testing.assert_array_equal(q_al, q_off)
  np.testing.assert_array_equal(p_al, p_off)
  np.testing.assert_array_equal(aux['cost'], 0)
  q_tr, _, _ = run(module, {'params': params}, support, query, train=True)
  assert np.max(np.abs(q_tr - q_off)) > 1e-3
  # Trained with nothing, a module switched on at test has (initial) params.
  module = build.alignment(make_config(test_rearrange=True), WAY)
  variables = module.init({'params': jax.random.key(0)}, support, LABELS,
                          query, train=True)
  assert set(variables['params']) == {'rearrange'}
  _, _, aux = run(module, variables, support, query)
  assert np.any(aux['attention'] != np.eye(T))


def test_alignment_figure(tmp_path):
  t, size = 4, 28
  rng = np.random.default_rng(0)
  support = rng.integers(0, 100, (t, size, size, 3), dtype=np.uint8)
  query = rng.integers(0, 100, (t, size, size, 3), dtype=np.uint8)
  offsets = np.array([[0, 0], [1, -1], [-2, 0], [0.5, 0.5]])
  image = alignment_figures.alignment_figure(
      support, query, (0.5, 0.5), offsets, (7, 7))
  assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
  assert image.shape[0] >= 2 * size and image.shape[1] >= t * size
  red = np.all(image == alignment_figures.SC_COLOUR, axis=-1)
  blue = np.all(image == alignment_figures.TT_COLOUR, axis=-1)
  assert red.any() and blue.any()
  # a = 0.5, b = 0.5 samples normalised times [0, 1]: the last two frames
  # only (frame times -1, -1/3, 1/3, 1), so blue marks sit in the right half.
  cols = np.nonzero(blue.any(0))[0]
  assert cols.min() >= image.shape[1] // 2 - 4
  assert alignment_figures.sampled_frames(0.5, 0.5, t).tolist() == [
      False, False, True, True]
  assert alignment_figures.sampled_frames(1.0, 0.0, t).all()
  path = tmp_path / 'alignment.png'
  sampler_figures.save_png(image, str(path))
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


def test_transform_warp_is_bounded():
  """However large the localisation head's output, |a - 1| and |b| <= max_warp."""
  support, query = episode()
  module = build.alignment(make_config(transform=True), WAY)
  variables = initial_variables(module)
  params = replace(variables['params'], ('localiser', 'head', 'bias'),
                   [-100.0, 100.0])
  _, _, aux = run(module, {'params': params}, support, query)
  np.testing.assert_allclose(aux['warp'], np.tile([0.5, 0.5], (8, 1)), atol=1e-6)


@pytest.mark.parametrize('kind', ['transform', 'spatial'])
def test_at_bound_flags(kind):
  """'warps_at_bound' / 'offsets_at_bound' flag an output within 1 % of its
  bound, hand-set through the zero-kernel heads' biases: 0.98 of the bound
  is not flagged, 0.995 is, in either component; a module that is off
  flags nothing."""
  support, query = episode()
  module = build.alignment(make_config(**{kind: True}), WAY)
  variables = initial_variables(module)
  head = ('localiser' if kind == 'transform' else 'offsets', 'head', 'bias')
  key = 'warps_at_bound' if kind == 'transform' else 'offsets_at_bound'
  other = 'offsets_at_bound' if kind == 'transform' else 'warps_at_bound'
  for fractions, expected in [((0.98, -0.98), False), ((0.3, -0.995), True),
                              ((0.995, 0.0), True), ((0.0, 0.0), False)]:
    params = replace(variables['params'], head,
                     np.arctanh(np.array(fractions, np.float32)))
    _, _, aux = run(module, {'params': params}, support, query)
    shape = (WAY * SHOT + QUERIES,) if kind == 'transform' else (
        QUERIES, WAY, T)
    assert aux[key].shape == shape
    np.testing.assert_array_equal(aux[key], expected, err_msg=str(fractions))
    assert not np.any(aux[other])
