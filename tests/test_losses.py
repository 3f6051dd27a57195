"""Tests of the training objective (vim_jax/losses.py).

References: scipy's `rel_entr` (KL) and `log_softmax` (cross-entropy),
and the gradients of the real model (configs/test.py with every module on)
for the routing of L_intra and L_inter.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import special

from configs import vim as vim_config
from vim_jax import losses
from vim_jax import steps
from vim_jax import train
from vim_jax.models import build
from vim_jax.models import shufflenet


def _logits(seed, shape=(5, 4), scale=3.0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=shape) * scale).astype(np.float32)


def _np_kl(target_logits, logits):
  p = special.softmax(target_logits.astype(np.float64), -1)
  q = special.softmax(logits.astype(np.float64), -1)
  return special.rel_entr(p, q).sum(-1).mean()


def _np_ce(logits, labels):
  log_q = special.log_softmax(logits.astype(np.float64), -1)
  return -log_q[np.arange(len(labels)), labels].mean()


def test_kl_divergence_matches_scipy():
  for seed in range(3):
    a, b = _logits(seed), _logits(seed + 10)
    np.testing.assert_allclose(losses.kl_divergence(a, b), _np_kl(a, b),
                               rtol=1e-5, atol=1e-6)


def test_classification_matches_numpy():
  logits, labels = _logits(0), np.array([0, 3, 1, 1, 2])
  loss, accuracy = losses.classification(logits, labels)
  np.testing.assert_allclose(loss, _np_ce(logits, labels), rtol=1e-5)
  assert accuracy == np.mean(logits.argmax(-1) == labels)
  total, _ = losses.classification(logits, labels, 'sum')
  np.testing.assert_allclose(total, 5 * _np_ce(logits, labels), rtol=1e-5)


def test_intra_is_zero_only_for_equal_predictions():
  a, b = _logits(0), _logits(1)
  assert float(losses.intra_video(a, a)) == 0.0
  # A constant shift per row leaves the distribution unchanged.
  assert abs(float(losses.intra_video(a, a + 7.0))) < 1e-5
  value = float(losses.intra_video(a, b))
  assert value > 0.1
  np.testing.assert_allclose(value, _np_kl(a, b), rtol=1e-5)


def test_inter_is_ce_minus_kl():
  a, u = _logits(0), _logits(1)
  labels = np.array([0, 3, 1, 1, 2])
  np.testing.assert_allclose(losses.inter_video(a, a, labels),
                             _np_ce(a, labels), rtol=1e-5)
  np.testing.assert_allclose(losses.inter_video(a, u, labels),
                             _np_ce(a, labels) - _np_kl(u, a), rtol=1e-5)
  # The KL term makes L_inter lower than CE when the predictions differ.
  assert losses.inter_video(a, u, labels) < losses.classification(a, labels)[0]
  # beta weighs the KL term alone: 0 leaves the CE, -1 adds the KL.
  for beta in (0.0, -1.0, 0.25):
    np.testing.assert_allclose(losses.inter_video(a, u, labels, beta),
                               _np_ce(a, labels) - beta * _np_kl(u, a),
                               rtol=1e-5)


def test_stop_gradient_targets_receive_nothing():
  a, b = jnp.asarray(_logits(0)), jnp.asarray(_logits(1))
  labels = jnp.array([0, 3, 1, 1, 2])
  # L_intra: the dense prediction is the target.
  g_dense, g_selected = jax.grad(losses.intra_video, argnums=(0, 1))(a, b)
  assert np.all(np.asarray(g_dense) == 0)
  assert np.abs(g_selected).max() > 1e-3
  # L_inter: the unaligned prediction only enters through the KL target.
  g_aligned, g_unaligned = jax.grad(losses.inter_video, argnums=(0, 1))(
      a, b, labels)
  assert np.all(np.asarray(g_unaligned) == 0)
  # ... and the KL term does pull on the aligned logits: its gradient is
  # d(-KL)/d a = -(q - p) summed per row over the mean, i.e. (p - q) / V.
  g_ce = jax.grad(lambda x: losses.classification(x, labels)[0])(a)
  p = special.softmax(np.asarray(b, np.float64), -1)
  q = special.softmax(np.asarray(a, np.float64), -1)
  np.testing.assert_allclose(g_aligned - g_ce, (p - q) / len(p), atol=1e-6)


def _extremes():
  """(target, prediction) pairs: one-hot-like (logits +-1e4) and uniform."""
  one_hot = np.full((4, 5), -1e4, np.float32)
  one_hot[np.arange(4), [0, 1, 2, 3]] = 1e4
  other = np.roll(one_hot, 1, axis=1)  # one-hot on a different class
  uniform = np.zeros((4, 5), np.float32)
  return [(one_hot, one_hot), (one_hot, other), (other, one_hot),
          (uniform, one_hot), (one_hot, uniform), (uniform, uniform)]


@pytest.mark.parametrize('pair', range(6))
def test_finite_values_and_gradients_at_extremes(pair):
  target, pred = (jnp.asarray(x) for x in _extremes()[pair])
  labels = jnp.array([0, 1, 2, 3])
  fns = {'kl': lambda t, p: losses.kl_divergence(t, p),
         'intra': lambda t, p: losses.intra_video(t, p),
         'inter': lambda t, p: losses.inter_video(p, t, labels)}
  for name, fn in fns.items():
    value = fn(target, pred)
    grads = jax.grad(fn, argnums=(0, 1))(target, pred)
    assert np.isfinite(value), (name, value)
    assert all(np.all(np.isfinite(g)) for g in grads), name
  # Exact values where the distributions are exact: KL(onehot || onehot) = 0,
  # KL(uniform || uniform) = 0, KL(uniform || one-hot) ~ 2e4 (finite, large).
  kl = float(losses.kl_divergence(target, pred))
  if pair in (0, 5):
    assert kl == 0.0
  if pair == 3:
    np.testing.assert_allclose(kl, 0.8 * 2e4, rtol=1e-3)


def _np_distill(scan, backbone):
  def cosines(x):
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    x = x - x.mean(0)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return x @ x.T
  return np.mean((cosines(scan) - cosines(backbone)) ** 2)


def test_scan_distillation():
  rng = np.random.default_rng(0)
  backbone = rng.normal(size=(4, 3, 6)).astype(np.float32)  # [V, T, C]
  scan = rng.normal(size=(4, 3, 5)).astype(np.float32)  # another width
  np.testing.assert_allclose(losses.scan_distillation(scan, backbone),
                             _np_distill(scan, backbone), rtol=1e-5)
  assert float(losses.scan_distillation(scan, backbone)) > 0.05
  # Zero for the same angles: a positive multiple plus a constant, and a
  # rotation into more channels.
  same = 3.0 * backbone + 7.0
  assert abs(float(losses.scan_distillation(same, backbone))) < 1e-10
  q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  rotated = (backbone @ q[:6]).astype(np.float32)  # [V, T, 8]
  assert abs(float(losses.scan_distillation(rotated, backbone))) < 1e-10
  # Hand-worked: two frames, centred to +-u and +-w: cosines [[1, -1],
  # [-1, 1]] on both sides whatever u and w are, so 0; three frames on a
  # line against three in a triangle differ.
  two_a = np.array([[[0.0, 1.0], [2.0, 1.0]]], np.float32)
  two_b = np.array([[[5.0, 5.0, 5.0], [5.0, 6.0, 9.0]]], np.float32)
  assert abs(float(losses.scan_distillation(two_a, two_b))) < 1e-10
  line = np.array([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]], np.float32)
  # Centred: (-1, 0), (0, 0), (1, 0); the middle frame's norm is guarded,
  # its cosines are 0: [[1, 0, -1], [0, 0, 0], [-1, 0, 1]].
  triangle = np.array([[[1.0, 0.0], [-0.5, 0.75 ** 0.5],
                        [-0.5, -0.75 ** 0.5]]], np.float32)
  # Cosines of an equilateral triangle: 1 on the diagonal, -1/2 elsewhere.
  expected = np.mean((np.array([[1, 0, -1], [0, 0, 0], [-1, 0, 1]])
                      - np.array([[1, -.5, -.5], [-.5, 1, -.5],
                                  [-.5, -.5, 1]])) ** 2)
  np.testing.assert_allclose(losses.scan_distillation(line, triangle),
                             expected, rtol=1e-5)
  # The backbone is the target: no gradient reaches it.
  g_scan, g_backbone = jax.grad(losses.scan_distillation, argnums=(0, 1))(
      jnp.asarray(scan), jnp.asarray(backbone))
  assert np.all(np.asarray(g_backbone) == 0)
  assert np.abs(g_scan).max() > 1e-4


def test_total_loss_weights():
  a, b, c, d = (_logits(s) for s in range(4))
  rng = np.random.default_rng(1)
  scan = rng.normal(size=(4, 3, 5)).astype(np.float32)
  backbone = rng.normal(size=(4, 3, 6)).astype(np.float32)
  labels = np.array([0, 3, 1, 1, 2])
  outputs = {'logits': a, 'intra_logits': (b, c), 'unaligned_logits': d,
             'distill_frames': (scan, backbone)}
  weights = ml_collections.ConfigDict(dict(
      mu1=0.3, mu2=2.0, cls_reduction='mean', inter_estimator='prediction',
      inter_temperature=1.0, inter_kl_weight=0.5, scan_distill_weight=4.0))
  loss, metrics = losses.total_loss(outputs, {'query_labels': labels}, weights)
  ce = _np_ce(a, labels)
  expected = (ce + 0.3 * _np_kl(b, c) + 2.0 * (ce - 0.5 * _np_kl(d, a))
              + 4.0 * _np_distill(scan, backbone))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert set(metrics) == {'loss', 'cls_loss', 'accuracy', 'intra_loss',
                          'inter_loss', 'distill_loss'}
  # Weight 0 reports the term and leaves it out.
  weights.scan_distill_weight = 0.0
  loss, metrics = losses.total_loss(outputs, {'query_labels': labels}, weights)
  np.testing.assert_allclose(loss, expected - 4.0 * _np_distill(
      scan, backbone), rtol=1e-5)
  assert 'distill_loss' in metrics
  # Without the modules' outputs the loss is the classification loss alone.
  loss, metrics = losses.total_loss({'logits': a}, {'query_labels': labels},
                                    weights)
  np.testing.assert_allclose(loss, ce, rtol=1e-5)
  assert not {'intra_loss', 'inter_loss', 'distill_loss'} & set(metrics)
  # 'inter_logits' (train.inter_grad='alignment') replace the model's logits
  # in L_inter only; L_cls stays on 'logits'.
  outputs['inter_logits'] = b
  loss, metrics = losses.total_loss(outputs, {'query_labels': labels}, weights)
  np.testing.assert_allclose(metrics['inter_loss'], _np_ce(b, labels)
                             - 0.5 * _np_kl(d, b), rtol=1e-5)
  np.testing.assert_allclose(metrics['cls_loss'], ce, rtol=1e-5)
  # The 'features' estimator reads the query features, 'inter_query' in
  # place of 'aligned_query'; 'sum' sums L_cls over the V_q = 5 queries.
  rng = np.random.default_rng(2)
  aligned = rng.normal(size=(5, 4, 3, 6)).astype(np.float32)
  routed = rng.normal(size=(5, 4, 3, 6)).astype(np.float32)
  unaligned = rng.normal(size=(5, 3, 6)).astype(np.float32)
  outputs.update(aligned_query=aligned,
                 alignment={'query_unaligned': unaligned})
  weights.update(inter_estimator='features', cls_reduction='sum')
  del outputs['inter_logits']
  loss, metrics = losses.total_loss(outputs, {'query_labels': labels}, weights)
  np.testing.assert_allclose(metrics['cls_loss'], 5 * ce, rtol=1e-5)
  np.testing.assert_allclose(
      loss, 5 * ce + 0.3 * _np_kl(b, c)
      + 2.0 * _np_inter_features(aligned, unaligned), rtol=1e-5)
  outputs['inter_query'] = routed
  _, metrics = losses.total_loss(outputs, {'query_labels': labels}, weights)
  np.testing.assert_allclose(metrics['inter_loss'],
                             _np_inter_features(routed, unaligned), rtol=1e-5)
  # mi_weight_scale multiplies mu1 and mu2 only.
  weights.mi_weight_scale = 0.1
  scaled, _ = losses.total_loss(outputs, {'query_labels': labels}, weights)
  np.testing.assert_allclose(
      scaled, 5 * ce + 0.1 * (0.3 * _np_kl(b, c) + 2.0 * _np_inter_features(
          routed, unaligned)), rtol=1e-5)
  for field, value in (('inter_estimator', 'both'), ('cls_reduction', 'max')):
    with pytest.raises(ValueError, match=field):
      losses.total_loss(outputs, {'query_labels': labels},
                        ml_collections.ConfigDict({**weights.to_dict(), field: value}))


def _np_inter_features(aligned, unaligned, temperature=1.0):
  """The authors' feature-level estimate, as a plain loop over pairs and
  frames: KL(softmax(aligned / tau) || softmax(unaligned / tau)) over the
  channels, summed over frames, averaged over (query, class) pairs."""
  v_q, way, frames, _ = aligned.shape
  total = 0.0
  for q in range(v_q):
    for n in range(way):
      for t in range(frames):
        p = special.softmax(aligned[q, n, t].astype(np.float64) / temperature)
        r = special.softmax(unaligned[q, t].astype(np.float64) / temperature)
        total += np.sum(p * np.log(p / r))
  return total / (v_q * way)


def test_inter_features_matches_a_numpy_loop():
  rng = np.random.default_rng(0)
  for temperature in (1.0, 0.5, 3.0):
    aligned = rng.normal(size=(3, 5, 4, 7)).astype(np.float32) * 2
    unaligned = rng.normal(size=(3, 4, 7)).astype(np.float32) * 2
    np.testing.assert_allclose(
        losses.inter_video_features(aligned, unaligned, temperature),
        _np_inter_features(aligned, unaligned, temperature), rtol=1e-5)


def test_inter_features_zero_at_the_identity_and_never_negative():
  rng = np.random.default_rng(1)
  unaligned = rng.normal(size=(4, 8, 16)).astype(np.float32) * 3
  same = np.broadcast_to(unaligned[:, None], (4, 5, 8, 16))
  assert float(losses.inter_video_features(same, unaligned)) == 0.0
  # A constant added to every channel leaves the softmax as it is.
  assert abs(float(losses.inter_video_features(same + 2.5, unaligned))) < 1e-5
  for seed in range(20):
    draw = np.random.default_rng(seed)
    scale = draw.choice([1e-3, 1.0, 30.0])
    aligned = (unaligned[:, None] + scale * draw.normal(
        size=(4, 5, 8, 16))).astype(np.float32)
    value = float(losses.inter_video_features(aligned, unaligned))
    assert value >= 0.0, (seed, value)
  assert value > 1.0  # far apart, clearly positive


def test_inter_features_gradient_reaches_the_aligned_side_only():
  rng = np.random.default_rng(2)
  aligned = jnp.asarray(rng.normal(size=(3, 5, 4, 7)), jnp.float32)
  unaligned = jnp.asarray(rng.normal(size=(3, 4, 7)), jnp.float32)
  g_aligned, g_unaligned = jax.grad(
      losses.inter_video_features, argnums=(0, 1))(aligned, unaligned)
  assert np.all(np.asarray(g_unaligned) == 0)
  # Central finite differences of the numpy loop on a few entries.
  eps = 1e-3
  a = np.asarray(aligned, np.float64)
  for index in [(0, 0, 0, 0), (1, 3, 2, 5), (2, 4, 3, 6)]:
    up, down = a.copy(), a.copy()
    up[index] += eps
    down[index] -= eps
    u = np.asarray(unaligned, np.float64)
    numeric = (_np_inter_features(up, u) - _np_inter_features(down, u)) / (
        2 * eps)
    np.testing.assert_allclose(g_aligned[index], numeric, rtol=1e-3,
                               atol=1e-5)


def random_variables(shapes, seed=0):
  """Numpy draws on abstract flax variables (no compiled init).

  Kernels ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2), norm scales and scalars
  1 + N(0, 0.1^2), running means 0 and variances 1. Zero-initialised heads
  (TT's, SC's) are random here, so every module's input side sees a gradient
  too.
  """
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == 'mean':
      return np.zeros(leaf.shape, leaf.dtype)
    if name == 'var':
      return np.ones(leaf.shape, leaf.dtype)
    if name == 'bias':
      return (0.1 * rng.normal(size=leaf.shape)).astype(leaf.dtype)
    if name == 'scale' or not leaf.shape:  # scalars: PE scale, log beta
      return (1 + 0.1 * rng.normal(size=leaf.shape)).astype(leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else (
        leaf.shape[0])
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def random_episode(config, seed=0):
  """One random uint8 episode with `config`'s training shapes."""
  spec = train.episode_spec(config, 'train')
  rng = np.random.default_rng(seed)
  frames = (spec.frames, spec.frame_size, spec.frame_size, 3)
  return dict(
      support=rng.integers(0, 256, (spec.num_support,) + frames, np.uint8),
      query=rng.integers(0, 256, (spec.num_query,) + frames, np.uint8),
      support_labels=np.arange(spec.num_support, dtype=np.int32) % spec.way,
      query_labels=np.arange(spec.num_query, dtype=np.int32) % spec.way)


def maps_config(row):
  """A test row whose backbone and scan maps are 2 x 2 and larger (at 1 x 1,
  as in configs/test.py, SC's pooling and SA's warp do not depend on their
  offsets and saliency, and their gradients are round-off)."""
  config = vim_config.get_config(f'row={row},base=test')
  config.data.frame_size = 64
  config.model.sampler.scan_size = 64
  return config


def _apply(model, variables, episode, key=2, routed=False, **kwargs):
  """Training outputs; with `routed`, and L_inter's routed pass
  (`train.inter_grad='alignment'`) as the training step runs it."""
  outputs = model.apply(variables, episode, train=True, sigma=0.1,
                        rngs={'sampler': jax.random.PRNGKey(key)},
                        mutable=['batch_stats'], **kwargs)[0]
  if routed:
    outputs.update(steps.routed_inter_outputs(model, variables, outputs,
                                              episode))
  return outputs


@pytest.fixture(scope='module')
def model_grads():
  """Gradients of L_intra, both L_inter estimators and the scan net's
  distillation w.r.t. every parameter of full VIM, on 2 x 2 maps."""
  config = maps_config('full')
  model = build.model(config.model, way=config.data.way)
  episode = random_episode(config)
  keys = {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)}
  variables = random_variables(jax.eval_shape(
      lambda ep: model.init(keys, ep, train=False), episode))
  maps = jax.eval_shape(
      lambda: model.apply(variables, episode['query'][:1], train=False,
                          method='embed'))
  assert min(maps.shape[2:4]) >= 2, maps.shape
  labels = episode['query_labels']

  @jax.jit
  def grads(params, batch_stats, episode):
    def loss(params, which):
      variables = {'params': params, 'batch_stats': batch_stats}
      if which == 'intra':
        return losses.intra_video(
            *_apply(model, variables, episode, intra=True)['intra_logits'])
      if which.endswith('routed'):
        out = _apply(model, variables, episode, routed=True)
        aligned_logits, aligned_query = out['inter_logits'], out['inter_query']
      else:
        out = _apply(model, variables, episode)
        aligned_logits, aligned_query = out['logits'], out['aligned_query']
      if which == 'distill':
        return losses.scan_distillation(*out['distill_frames'])
      if which.startswith('prediction'):
        return losses.inter_video(aligned_logits, out['unaligned_logits'],
                                  labels)
      return losses.inter_video_features(
          aligned_query, out['alignment']['query_unaligned'])
    which = ('intra', 'prediction', 'distill', 'prediction_routed',
             'features', 'features_routed')
    routed = _apply(model, {'params': params, 'batch_stats': batch_stats},
                    episode, routed=True)
    return dict({w: jax.grad(loss)(params, w) for w in which},
                routed=(routed['logits'], routed['inter_logits'],
                        routed['aligned_query'], routed['inter_query']))

  return grads(variables['params'], variables['batch_stats'], episode)


def _max_abs(tree):
  return max(float(np.abs(x).max()) for x in jax.tree.leaves(tree))


def test_intra_gradient_reaches_the_sampler_only(model_grads):
  """L_intra on the frames the sampler produces: TS, SA and the task
  learner behind both receive its gradient."""
  intra = model_grads['intra']
  sampler = intra['sampler']
  # TS: the evaluator and the generated w2; SA: the generated w_s (only the
  # rescan of the amplified frames reaches it); the task encoder behind
  # both.
  for name in ('evaluator_w1', 'generator_t', 'generator_s', 'task_encoder'):
    for part, grad in sampler[name].items():
      assert _max_abs(grad) > 1e-8, (name, part)
  assert _max_abs(sampler['scan']) > 0  # the scan features themselves
  # Nothing reaches the backbone or the alignment: exactly zero.
  assert _max_abs(intra['backbone']) == 0.0
  assert _max_abs(intra['alignment']) == 0.0


@pytest.mark.parametrize('estimator', ['prediction', 'features'])
def test_inter_gradient_reaches_the_alignment(model_grads, estimator):
  inter = model_grads[estimator]
  alignment = inter['alignment']
  for name in ('localiser', 'rearrange', 'offsets'):
    for part, grad in alignment[name].items():
      assert _max_abs(grad) > 1e-8, (name, part)
  assert _max_abs(inter['backbone']) > 0


def _leaf(tree, path):
  for key in path:
    tree = tree[key.key]
  return tree


@pytest.mark.parametrize('estimator', ['prediction', 'features'])
def test_inter_gradient_to_the_alignment_only(model_grads, estimator):
  """train.inter_grad='alignment': the same L_inter value, its gradient on
  the alignment's parameters only."""
  routed = model_grads[estimator + '_routed']
  logits, inter_logits, query, inter_query = model_grads['routed']
  # The second pass perturbs SC as the first (on 2 x 2 maps a different
  # perturbation changes the pooling: test_routed_pass_perturbs_alike).
  np.testing.assert_allclose(inter_logits, logits, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(inter_query, query, rtol=1e-5, atol=1e-5)
  for name in ('localiser', 'rearrange', 'offsets'):
    for part, grad in routed['alignment'][name].items():
      assert _max_abs(grad) > 1e-8, (name, part)
  assert _max_abs(routed['backbone']) == 0.0
  assert _max_abs(routed['sampler']) == 0.0
  # The alignment's own gradient is the one the unrouted loss gives it: the
  # stop-gradient only cuts the path below the alignment. The two passes
  # are compiled apart; measured, their float32 rounding differs by up to
  # 3e-6 on SC's predictor (gradients up to 4e-2).
  for path, grad in jax.tree_util.tree_leaves_with_path(routed['alignment']):
    np.testing.assert_allclose(
        grad, _leaf(model_grads[estimator]['alignment'], path), rtol=1e-4,
        atol=1e-5)


def test_routed_pass_perturbs_alike():
  """On 2 x 2 maps SC's training perturbations change the aligned logits,
  so the routed pass's equality above depends on sharing them."""
  config = maps_config('alignment')
  model = build.model(config.model, way=config.data.way)
  episode = random_episode(config)
  keys = {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)}
  variables = random_variables(jax.eval_shape(
      lambda ep: model.init(keys, ep, train=False), episode))
  run = jax.jit(lambda key: _apply(model, variables, episode, key,
                                   routed=True),
                static_argnums=0)
  first, second = run(2), run(3)
  assert np.abs(first['logits'] - second['logits']).max() > 1e-4
  np.testing.assert_allclose(first['inter_logits'], first['logits'],
                             rtol=1e-5, atol=1e-6)


def test_distillation_gradient_reaches_the_scan_net_only(model_grads):
  distill = model_grads['distill']
  for name, grad in distill['sampler']['scan'].items():
    assert _max_abs(grad) > 0, name
  # The selection is fixed and the backbone is the target: TS, SA, the task
  # learner, the backbone and the alignment get exactly nothing.
  for name in distill['sampler']:
    if name != 'scan':
      assert _max_abs(distill['sampler'][name]) == 0.0, name
  assert _max_abs(distill['backbone']) == 0.0
  assert _max_abs(distill['alignment']) == 0.0


def test_distillation_on_the_amplified_frames_scans_what_the_backbone_saw():
  """`distill_amplified` (train.scan_distill_frames='amplified'): the
  distillation's scan side is the scan net run by hand on the frames the
  backbone saw (the amplified ones, held fixed), and with `detach_scan` so
  is its whole gradient into the scan net: the scan of the M dense frames
  adds none. 'selected' pairs other features (those of the dense frames
  before SA)."""
  config = maps_config('full')
  config.model.sampler.detach_scan = True
  model = build.model(config.model, way=config.data.way)
  episode = random_episode(config)
  keys = {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)}
  variables = random_variables(jax.eval_shape(
      lambda ep: model.init(keys, ep, train=False), episode))
  sampler = config.model.sampler
  scan = shufflenet.build_scan_network(sampler.scan_net).clone(
      **sampler.scan_kwargs)

  def by_hand(scan_params, frames):
    v, t = frames.shape[:2]
    maps, _ = scan.apply(
        {'params': scan_params,
         'batch_stats': variables['batch_stats']['sampler']['scan']},
        frames.reshape((v * t,) + frames.shape[2:]), train=True,
        mutable=['batch_stats'])
    return maps.mean((1, 2)).reshape(v, t, -1)

  @jax.jit
  def run(params):
    full = dict(variables, params=params)
    frames = model.apply(
        full, episode, method=lambda m, ep: m._input_frames(
            ep, train=True, sigma=0.1, prior=0.0, intra=False,
            rescan=True)[0], rngs={'sampler': jax.random.PRNGKey(2)},
        mutable=['batch_stats'])[0]
    out = {which: _apply(model, full, episode, distill_amplified=which)
           for which in (True, False)}

    def distill(p):
      return losses.scan_distillation(*_apply(
          model, dict(variables, params=p), episode,
          distill_amplified=True)['distill_frames'])

    def distill_by_hand(scan_params):
      return losses.scan_distillation(
          by_hand(scan_params, jax.lax.stop_gradient(frames)),
          out[True]['distill_frames'][1])
    return (frames, out, jax.grad(distill)(params)['sampler']['scan'],
            jax.grad(distill_by_hand)(params['sampler']['scan']))

  frames, out, grad, grad_by_hand = run(variables['params'])
  assert 'intra_logits' not in out[True]  # the rescan without L_intra
  hand = by_hand(variables['params']['sampler']['scan'], frames)
  np.testing.assert_allclose(out[True]['distill_frames'][0], hand,
                             rtol=1e-4, atol=1e-5)
  assert not np.allclose(out[False]['distill_frames'][0], hand, atol=1e-3)
  assert _max_abs(grad) > 1e-6
  for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(grad_by_hand)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
