"""The OTAM, TRX and HyRSM heads: hand-built episodes, numpy loops, sizes."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.test_ops_otam import numpy_bi_mhm
from tests.test_ops_otam import numpy_otam
from vim_jax.models import heads
from vim_jax.models import temporal_selector


def _episode(seed, way, shot, queries, frames, channels):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(way), shot).astype(np.int32)
  support = rng.normal(size=(way * shot, frames, channels)).astype(np.float32)
  query = rng.normal(size=(queries, frames, channels)).astype(np.float32)
  return support, labels, query


def _numpy_cosine(a, b):
  """[Tq, C], [Ts, C] -> [Tq, Ts] 1 - cos, float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  a = a / np.linalg.norm(a, axis=-1, keepdims=True)
  b = b / np.linalg.norm(b, axis=-1, keepdims=True)
  return 1 - a @ b.T


def _numpy_class_mean(video_distances, labels, way):
  """[V_q, V_s] -> [V_q, way]: mean over each class's support videos."""
  return np.stack([video_distances[:, labels == c].mean(1)
                   for c in range(way)], axis=1)


def _init(head, support, labels, query):
  # Jitted: an eager init dispatches op by op, several times slower on CPU.
  return jax.jit(lambda s, l, q: head.init(jax.random.key(0), s, l, q,
                                           train=False))(support, labels, query)


def _apply(head, support, labels, query, variables=None):
  if variables is None:
    variables = _init(head, support, labels, query)
  fn = jax.jit(lambda v, s, l, q: head.apply(v, s, l, q, train=True))
  return fn(variables, support, labels, query), variables


# ---------------------------------------------------------------- OTAM


def test_otam_prefers_stretched_order_over_shuffled_frames():
  rng = np.random.default_rng(0)
  frames, channels = 8, 64
  source = rng.normal(size=(frames, channels)).astype(np.float32)
  shuffled = source[[3, 7, 0, 5, 1, 6, 2, 4]]
  other = rng.normal(size=(frames, channels)).astype(np.float32)
  support = np.stack([source, shuffled, other])
  labels = np.arange(3, dtype=np.int32)
  # The source's frames in order, frame 1 held for two steps, frame 4 dropped.
  query = source[[0, 1, 1, 2, 3, 5, 6, 7]][None]
  logits, variables = _apply(heads.OTAMHead(way=3), support, labels, query)
  assert not jax.tree.leaves(variables)
  assert int(np.argmax(logits[0])) == 0
  assert logits[0, 0] > logits[0, 1] + 1.0
  # The shuffled video holds the same set of frames: an order-free metric
  # cannot tell the two classes apart, the alignment's monotone paths can.
  sets = [numpy_bi_mhm(_numpy_cosine(query[0], s)) for s in support[:2]]
  np.testing.assert_allclose(sets[0], sets[1], atol=1e-6)


def test_otam_logits_match_numpy():
  way, shot = 3, 2
  support, labels, query = _episode(1, way, shot, 4, 5, 6)
  perm = np.random.default_rng(1).permutation(len(labels))
  support, labels = support[perm], labels[perm]  # any support order
  head = heads.OTAMHead(way=way, smoothing=0.2, logit_scale=2.0)
  logits, _ = _apply(head, support, labels, query)
  videos = np.array([[
      numpy_otam(d, 0.2) + numpy_otam(d.T, 0.2)
      for d in (_numpy_cosine(q, s) for s in support)] for q in query])
  expected = -2.0 * _numpy_class_mean(videos, labels, way)
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5,
                             atol=1e-5)


# ---------------------------------------------------------------- TRX


def _numpy_layer_norm(x, eps=1e-6):  # Flax's default epsilon; scale 1, bias 0
  return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True)
                                                   + eps)


def _numpy_trx(params, support, labels, query, way, cardinalities, pe_scale):
  """TRX distances class by class, as in the TRX paper (but the mean over
  the channels, as the head's docstring says), float64."""
  frames, channels = support.shape[1:]
  pe = pe_scale * temporal_selector.position_embedding(frames, channels)
  total = np.zeros((len(query), way))
  for k in cardinalities:
    p = jax.tree.map(lambda x: np.asarray(x, np.float64),
                     params[f'cardinality_{k}'])
    tuples = heads.frame_tuples(frames, k)

    def embed(videos):
      x = (videos + pe)[:, tuples].reshape(len(videos), len(tuples), -1)
      keys = x @ p['key']['kernel'] + p['key']['bias']
      values = x @ p['value']['kernel'] + p['value']['bias']
      return _numpy_layer_norm(keys), _numpy_layer_norm(values)

    s_keys, s_values = embed(support.astype(np.float64))
    q_keys, q_values = embed(query.astype(np.float64))
    hidden = s_keys.shape[-1]
    for c in range(way):
      keys = s_keys[labels == c].reshape(-1, hidden)  # [shot * P, H]
      values = s_values[labels == c].reshape(-1, hidden)
      for q in range(len(query)):
        scores = q_keys[q] @ keys.T / np.sqrt(hidden)  # [P, shot * P]
        weights = np.exp(scores - scores.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        diff = q_values[q] - weights @ values  # [P, H]
        total[q, c] += (diff**2).mean(1).mean()
  return -total


def test_trx_logits_match_numpy_and_shapes_under_jit():
  way, shot = 3, 2
  support, labels, query = _episode(2, way, shot, 4, 5, 6)
  head = heads.TRXHead(way=way, hidden=16)
  logits, variables = _apply(head, support, labels, query)
  assert logits.shape == (4, way)
  expected = _numpy_trx(variables['params'], support, labels, query, way,
                        (2, 3), 0.1)
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4,
                             atol=1e-4)
  grads = jax.grad(lambda v: head.apply(v, support, labels, query,
                                        train=True).sum())(variables)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  shapes = jax.tree.map(np.shape, variables['params'])
  assert shapes['cardinality_3']['key']['kernel'] == (3 * 6, 16)
  assert shapes['cardinality_2']['value_norm']['scale'] == (16,)


def test_trx_class_with_the_query_pair_wins():
  channels, frames = 16, 4
  e = 3.0 * np.eye(channels, dtype=np.float32)
  query = e[[0, 1, 2, 3]][None]
  support = np.stack([
      e[[0, 1, 4, 5]],   # the query's pair (frames 0, 1) at its positions
      e[[1, 0, 6, 7]],   # the same two frames, in the other order
      e[[8, 9, 10, 11]],
  ])
  labels = np.arange(3, dtype=np.int32)
  head = heads.TRXHead(way=3, cardinalities=(2,), hidden=2 * channels)
  variables = _init(head, support, labels, query)
  # Identity keys and values: a pair's key and value are its two frames'
  # features side by side (then layer-normed).
  identity = {'kernel': jnp.eye(2 * channels), 'bias': jnp.zeros(2 * channels)}
  params = flax.core.unfreeze(variables['params'])
  params['cardinality_2']['key'] = identity
  params['cardinality_2']['value'] = identity
  logits, _ = _apply(head, support, labels, query, {'params': params})
  assert int(np.argmax(logits[0])) == 0
  assert logits[0, 0] > logits[0, 1] > logits[0, 2]


def test_trx_distance_is_bounded_whatever_the_width():
  """Per cardinality, the mean over channels of (v - p)^2, v layer-normed
  (per-channel mean 0, variance 1) and p a convex mix of such vectors, lies
  in [0, 4] (var v + var p + 2 |cov|), so with logit scale 1 two
  cardinalities give logits in [-8, 0] at any width (summed over 1152
  channels they would reach thousands and saturate the softmax)."""
  support, labels, query = _episode(5, 3, 2, 4, 8, 32)
  for hidden in (16, 1152):
    head = heads.TRXHead(way=3, hidden=hidden)
    logits, _ = _apply(head, 10.0 * support, labels, 10.0 * query)
    logits = np.asarray(logits)
    assert np.all(logits <= 0.0) and np.all(logits >= -8.0), hidden
    assert logits.min() < -1.0, hidden  # not trivially 0


# ---------------------------------------------------------------- HyRSM


def test_hyrsm_shapes_and_finite_gradients():
  way, shot = 4, 2
  support, labels, query = _episode(3, way, shot, 5, 6, 16)
  head = heads.HyRSMHead(way=way, heads=4)
  logits, variables = _apply(head, support, labels, query)
  assert logits.shape == (5, way)
  assert np.all(np.isfinite(np.asarray(logits)))

  def loss(v, s, q):
    logits = head.apply(v, s, labels, q, train=True)
    return jax.nn.log_softmax(logits)[:, 0].sum()

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(variables, support, query)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
  # Every parameter is reached (the inter-relation through the fusion).
  assert all(float(jnp.abs(g).max()) > 0 for g in leaves)


def test_hyrsm_with_zero_output_projections_is_bi_mhm():
  way, shot = 3, 2
  support, labels, query = _episode(4, way, shot, 4, 5, 8)
  head = heads.HyRSMHead(way=way, heads=2, logit_scale=3.0)
  variables = _init(head, support, labels, query)
  zeroed = flax.core.unfreeze(variables['params'])
  for name in ('intra', 'inter'):
    zeroed[name]['out'] = jax.tree.map(jnp.zeros_like, zeroed[name]['out'])
  for name in ('fuse_frames', 'fuse_video'):
    zeroed[name] = jax.tree.map(jnp.zeros_like, zeroed[name])
  logits, _ = _apply(head, support, labels, query, {'params': zeroed})
  videos = np.array([[numpy_bi_mhm(_numpy_cosine(q, s)) for s in support]
                     for q in query])
  expected = -3.0 * _numpy_class_mean(videos, labels, way)
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5,
                             atol=1e-5)


# ---------------------------------------------------------------- sizes

# Fig. 22 (5-way 1-shot UCF101) lists total parameters with a ResNet-50.
# (ProtoNet's and OTAM's 25.8 M is neither the trunk below nor the trunk with
# its classifier, 25.6 M; the TRX and HyRSM totals are the trunk plus head.)
PAPER_TOTAL = {'TRX': 47.1e6, 'HyRSM': 65.6e6}
# torchvision's ResNet-50 (25,557,032) without its 1000-way classifier: the
# trunk all three reference codes use; tests/test_resnet.py checks that the
# Flax ResNet-50 has exactly this many.
RESNET50_TRUNK = 25_557_032 - (2048 * 1000 + 1000)  # 23,508,032


def test_parameter_counts_at_paper_size():
  c, t = 2048, 8
  # ProtoNet's head is a function (`protonet_logits`) with no parameters, and
  # OTAM's alignment has none either: Fig. 22 gives both the same total.
  assert heads.parameter_count(heads.OTAMHead(way=5), t, c) == 0
  # TRX: per cardinality k, key and value maps kC -> 1152 with biases and two
  # layer norms (scale and bias) of width 1152.
  hidden = 1152
  trx = sum(2 * (k * c * hidden + hidden) + 2 * 2 * hidden for k in (2, 3))
  assert heads.parameter_count(heads.TRXHead(way=5), t, c) == trx
  # HyRSM: two attention blocks of 4C^2 + 3C (bias-free qkv 3C^2, output
  # C^2 + C, layer norm 2C) and the fusion 2C^2 + C.
  hyrsm = 2 * (4 * c * c + 3 * c) + 2 * c * c + c
  assert heads.parameter_count(heads.HyRSMHead(way=5), t, c) == hyrsm
  # Trunk + head against Fig. 22: TRX 23.51 + 23.61 = 47.11 M (47.1 M);
  # HyRSM 23.51 + 41.96 = 65.47 M (65.6 M; the official code's auxiliary
  # 2048 x 64 + 64 = 0.13 M training classifier makes up the difference).
  for name, head in (('TRX', trx), ('HyRSM', hyrsm)):
    total = RESNET50_TRUNK + head
    assert abs(total / PAPER_TOTAL[name] - 1) < 0.05, (name, total)
  assert abs((RESNET50_TRUNK + trx) / 47.1e6 - 1) < 0.001
  assert abs((RESNET50_TRUNK + hyrsm + 2048 * 64 + 64) / 65.6e6 - 1) < 0.001


@pytest.mark.parametrize('head', [heads.OTAMHead, heads.TRXHead,
                                  heads.HyRSMHead])
def test_heads_ignore_support_order(head):
  way, shot = 3, 2
  support, labels, query = _episode(5, way, shot, 3, 4, 8)
  module = head(way=way) if head is heads.OTAMHead else head(
      way=way, **({'hidden': 8} if head is heads.TRXHead else {'heads': 2}))
  logits, variables = _apply(module, support, labels, query)
  perm = np.random.default_rng(5).permutation(len(labels))
  shuffled, _ = _apply(module, support[perm], labels[perm], query, variables)
  np.testing.assert_allclose(np.asarray(shuffled), np.asarray(logits),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('row', ['otam', 'trx', 'hyrsm'])
def test_head_rows_use_the_head_on_backbone_features(row):
  """configs/vim.py's head rows: the model's logits are the head's on the
  backbone's pooled frame features, and a training step moves the head."""
  from configs import vim as vim_config  # pylint: disable=g-import-not-at-top
  from tests.test_losses import random_episode  # pylint: disable=g-import-not-at-top
  from vim_jax.models import build  # pylint: disable=g-import-not-at-top
  from vim_jax.models import few_shot  # pylint: disable=g-import-not-at-top
  from vim_jax.models import normalisation  # pylint: disable=g-import-not-at-top
  config = vim_config.get_config(f'row={row},base=test')
  if row == 'trx':
    config.model.head_kwargs = {'hidden': 16}
  model = build.model(config.model, way=config.data.way)
  episode = random_episode(config)
  variables = jax.jit(lambda ep: model.init(
      {'params': jax.random.PRNGKey(0)}, ep, train=False))(episode)
  assert set(variables['params']) == (
      {'backbone'} | ({'head'} if row != 'otam' else set()))
  logits = jax.jit(lambda v, ep: model.apply(v, ep, train=False)['logits'])(
      variables, episode)
  videos = np.concatenate([episode['support'], episode['query']])
  maps = model.apply(variables, np.asarray(normalisation.normalise(videos)),
                     train=False, method='embed')
  features = np.asarray(maps).mean((2, 3))
  num_support = len(episode['support'])
  head = few_shot.HEADS[row](way=config.data.way, **dict(
      config.model.head_kwargs))
  expected = head.apply({'params': variables['params'].get('head', {})},
                        features[:num_support], episode['support_labels'],
                        features[num_support:], train=False)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_head_checks():
  from configs import vim as vim_config  # pylint: disable=g-import-not-at-top
  from vim_jax.models import few_shot  # pylint: disable=g-import-not-at-top
  config = vim_config.get_config('row=alignment,base=test')
  for head in ('otam', 'trx', 'hyrsm'):  # behind the alignment
    config.model.head = head
    few_shot.check_head(config.model)
  # A reduced alignment width cannot share TRX's or HyRSM's parameters
  # with the unaligned (backbone-width) call; OTAM has none.
  config.model.alignment.channels = 16
  with pytest.raises(ValueError, match=r"config.model.head='hyrsm' behind "
                     'the alignment needs config.model.alignment.channels=0'):
    few_shot.check_head(config.model)
  config.model.head = 'otam'
  few_shot.check_head(config.model)
  config.model.head = 'dtw'
  with pytest.raises(ValueError, match=r"config.model.head='dtw' is not one"):
    few_shot.check_head(config.model)
