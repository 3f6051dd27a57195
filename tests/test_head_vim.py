"""VIM in front of the OTAM, TRX and HyRSM heads (paper Table 3, "+ VIM").

The heads' per-class form (`compare`) against their plain call, the
alignment feeding a head (tiny hand-built maps, no backbone), and one train
and eval step of each *_vim row on 2 x 2 stage-4 maps.
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vim as vim_config
from tests.test_heads import _numpy_class_mean
from tests.test_heads import _numpy_cosine
from tests.test_losses import maps_config
from tests.test_losses import random_episode
from tests.test_losses import random_variables
from tests.test_ops_otam import numpy_otam
from tests.test_vim import _random_state
from tests.test_vim import _train
from vim_jax import parallel
from vim_jax import steps
from vim_jax import train
from vim_jax.models import build
from vim_jax.models import few_shot
from vim_jax.models import heads

WAY, SHOT, QUERIES, T, C = 3, 2, 4, 4, 8
HEADS = {'otam': lambda: heads.OTAMHead(way=WAY),
         'trx': lambda: heads.TRXHead(way=WAY, hidden=8),
         'hyrsm': lambda: heads.HyRSMHead(way=WAY, heads=2)}


def _head_episode(seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.repeat(np.arange(WAY), SHOT)).astype(np.int32)
  support = rng.normal(size=(WAY * SHOT, T, C)).astype(np.float32)
  query = rng.normal(size=(QUERIES, T, C)).astype(np.float32)
  return support, labels, query


def _head_variables(head, support, labels, query):
  variables = jax.eval_shape(lambda: head.init(
      jax.random.key(0), support, labels, query, train=False))
  # Random everywhere (zero-initialised output projections too).
  return random_variables(variables)


@pytest.mark.parametrize('name', sorted(HEADS))
def test_compare_with_one_query_for_every_class_is_the_head(name):
  head = HEADS[name]()
  support, labels, query = _head_episode()
  variables = _head_variables(head, support, labels, query)
  alone = head.apply(variables, support, labels, query, train=False)
  every_class = np.broadcast_to(query[:, None], (QUERIES, WAY, T, C))
  per_query = np.broadcast_to(support, (QUERIES,) + support.shape)
  for s in (support, per_query):
    logits = head.apply(variables, s, labels, every_class, train=False,
                        method='compare')
    np.testing.assert_allclose(logits, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', sorted(HEADS))
def test_compare_meets_each_class_with_its_own_query(name):
  """Logit (q, n) is the head's on query row n and the support placed for
  q, whatever the other rows and the other queries' support hold."""
  head = HEADS[name]()
  support, labels, query = _head_episode(1)
  rng = np.random.default_rng(1)
  rows = rng.normal(size=(QUERIES, WAY, T, C)).astype(np.float32)
  placed = rng.normal(size=(QUERIES,) + support.shape).astype(np.float32)
  variables = _head_variables(head, support, labels, query)
  logits = head.apply(variables, placed, labels, rows, train=False,
                      method='compare')
  for q in range(QUERIES):
    for n in range(WAY):
      alone = head.apply(variables, placed[q], labels, rows[q, n][None],
                         train=False)
      np.testing.assert_allclose(logits[q, n], alone[0, n], rtol=1e-5,
                                 atol=1e-5)


# ------------------------------------------------ alignment + head, no backbone


def _aligned(model, variables, maps, labels, train=False):
  return model.apply(variables, maps, labels, len(labels), train=train,
                     method='aligned_logits')


def _vim_model(row, **alignment):
  config = vim_config.get_config(f'row={row},base=test')
  config.model.head_kwargs = {'trx': {'hidden': 8},
                              'hyrsm': {'heads': 2}}.get(
                                  config.model.head, {})
  for key, value in alignment.items():
    config.model.alignment[key] = value
  return build.model(config.model, way=WAY), config


@pytest.mark.parametrize('name', sorted(HEADS))
def test_alignment_off_at_test_gives_the_head_alone(name):
  """With TT, TR and SC trained but off at test, a *_vim model's logits are
  its head's on the pooled features, i.e. its 'unaligned_logits'."""
  model, config = _vim_model(f'{name}_vim', test_transform=False,
                             test_rearrange=False, test_spatial=False)
  rng = np.random.default_rng(2)
  labels = rng.permutation(np.repeat(np.arange(WAY), SHOT)).astype(np.int32)
  maps = rng.normal(size=(WAY * SHOT + QUERIES, T, 2, 2, C)).astype(
      np.float32)
  variables = random_variables(jax.eval_shape(lambda: model.init(
      {'params': jax.random.key(0)}, maps, labels, len(labels), train=False,
      method='aligned_logits')))
  logits, _, _ = _aligned(model, variables, maps, labels)
  features = maps.mean((2, 3))
  head = few_shot.HEADS[name](way=WAY, **dict(config.model.head_kwargs))
  alone = head.apply({'params': variables['params'].get('head', {})},
                     features[:len(labels)], labels, features[len(labels):],
                     train=False)
  np.testing.assert_allclose(logits, alone, rtol=1e-5, atol=1e-5)
  # In training the modules are on, and change the logits.
  trained, _, _ = jax.jit(lambda v, m: model.apply(
      v, m, labels, len(labels), train=True, method='aligned_logits',
      rngs={'sampler': jax.random.key(3)}))(variables, maps)
  assert np.abs(np.asarray(trained) - np.asarray(alone)).max() > 1e-3


def test_routed_inter_pass_keeps_the_head_fixed():
  """`fixed_head` (L_inter's pass with inter_grad='alignment'): the same
  logits, a gradient for the alignment's parameters and none for the
  head's."""
  model, _ = _vim_model('hyrsm_vim')
  rng = np.random.default_rng(4)
  labels = np.repeat(np.arange(WAY), SHOT).astype(np.int32)
  maps = rng.normal(size=(WAY * SHOT + QUERIES, T, 2, 2, C)).astype(
      np.float32)
  variables = random_variables(jax.eval_shape(lambda: model.init(
      {'params': jax.random.key(0)}, maps, labels, len(labels), train=False,
      method='aligned_logits')))

  def loss(params, fixed_head):
    logits, _, _ = model.apply(
        {'params': params}, maps, labels, len(labels), train=False,
        fixed_head=fixed_head, method='aligned_logits')
    return jax.nn.log_softmax(logits)[:, 0].sum()

  step = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  (free_value, free), (fixed_value, fixed) = (
      step(variables['params'], fixed_head) for fixed_head in (False, True))
  np.testing.assert_allclose(fixed_value, free_value, rtol=1e-6)
  assert all(np.all(g == 0) for g in jax.tree.leaves(fixed['head']))
  assert all(np.abs(g).max() > 0 for g in jax.tree.leaves(free['head']))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-7),
               fixed['alignment'], free['alignment'])


def test_spatial_coordination_then_otam_by_hand():
  """SC with hand-set offsets of one whole cell on 2 x 2 maps: the support
  is pooled from cell (1, 1) and the query from cell (0, 0) (spatial.py's
  convention), so OTAM compares the actor's features wherever the clutter
  is; pooled over the whole map the clutter dominates."""
  frames, channels = 6, 32
  rng = np.random.default_rng(0)
  source = rng.normal(size=(frames, channels)).astype(np.float32)
  clutter = 4 * rng.normal(size=channels).astype(np.float32)
  actors = np.stack([  # [V_s, T, C], 2 shots per class
      source, source[[0, 1, 2, 2, 4, 5]],  # class 0: the source, in order
      source[[3, 0, 5, 1, 4, 2]], source[[5, 4, 3, 2, 1, 0]],  # 1: reordered
      rng.normal(size=(frames, channels)), rng.normal(size=(frames, channels)),
  ]).astype(np.float32)
  order = np.array([4, 0, 2, 5, 1, 3])  # any support order
  actors = actors[order]
  labels = np.repeat(np.arange(WAY), 2)[order].astype(np.int32)
  query_actor = source[[0, 1, 1, 2, 3, 5]][None]  # stretched, frame 4 dropped

  def scene(actor, cell):  # [T, C] -> [T, 2, 2, C], small noise everywhere
    maps = clutter + 0.05 * rng.normal(size=(len(actor), 2, 2, channels))
    maps[:, cell[0], cell[1]] = actor
    return maps.astype(np.float32)

  maps = np.stack([scene(a, (1, 1)) for a in actors]
                  + [scene(a, (0, 0)) for a in query_actor])
  model, config = _vim_model('otam_vim', transform=False, rearrange=False,
                             max_shift=1.0)
  variables = model.init({'params': jax.random.key(0)}, maps, labels,
                         len(labels), train=False, method='aligned_logits')
  params = flax.core.unfreeze(variables['params'])
  # tanh(b) * max_shift * 2 cells = 1 cell in both directions, every pair.
  params['alignment']['offsets']['head']['bias'] = jnp.full(
      (2,), np.arctanh(0.5), jnp.float32)
  logits, _, aux = _aligned(model, {'params': params}, maps, labels)
  np.testing.assert_allclose(aux['offsets'], 1.0, rtol=1e-6)
  videos = np.array([[numpy_otam(d, 0.1) + numpy_otam(d.T, 0.1) for d in (
      _numpy_cosine(query_actor[0], s) for s in actors)]])
  expected = -config.model.logit_scale * _numpy_class_mean(videos, labels,
                                                            WAY)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
  # In order beats reordered by a wide margin; the whole map barely differs.
  assert int(np.argmax(logits[0])) == 0
  assert logits[0, 0] > logits[0, 1] + 1.0
  unaligned = heads.OTAMHead(way=WAY).apply(
      {}, maps[:6].mean((2, 3)), labels, maps[6:].mean((2, 3)), train=False)
  assert abs(unaligned[0, 0] - unaligned[0, 1]) < 0.1


# ------------------------------------------------------- the *_vim rows


def _first_step_gradients(state, init, train_config):
  """The first SGD step's gradient (zero momentum): (old - new) / lr - wd
  old."""
  return jax.tree.map(
      lambda new, old: (old - new) / train_config.lr
      - train_config.weight_decay * old, state.params, init.params)


@pytest.mark.parametrize('row', ['otam_vim', 'trx_vim', 'hyrsm_vim'])
def test_vim_row_train_and_eval_steps(row):
  config = maps_config(row)
  config.train.episodes_per_step = config.eval.episodes_per_step = 1
  if row == 'trx_vim':
    config.model.head_kwargs = {'hidden': 16}
  devices = jax.devices()[:1]
  experiment = train.Experiment(config, parallel.Runner('shard_map', devices))
  init = _random_state(experiment)
  state, metrics, _ = _train(config, devices, 1, init)
  m = metrics[0]
  for key in ('loss', 'cls_loss', 'intra_loss', 'inter_loss'):
    assert np.isfinite(m[key]), key
  assert m['inter_loss'] > 0 and m['grad_norm_alignment'] > 0
  grads = _first_step_gradients(state, init, config.train)
  # Every parameter of the head (OTAM has none) and of the alignment.
  assert ('head' in grads) == (row != 'otam_vim')
  for name in ('head', 'alignment'):
    for path, g in jax.tree_util.tree_leaves_with_path(grads.get(name, {})):
      assert np.abs(g).max() > 0, (name, jax.tree_util.keystr(path))
  # An eval step on the trained variables.
  model = experiment.model
  episode = dict(random_episode(config, seed=3), index=np.int32(0),
                 classes=np.arange(config.data.way, dtype=np.int32))
  batch = jax.tree.map(lambda x: x[None], episode)
  results = jax.jit(lambda v, b: steps.eval_step(v, b, model=model))(
      {'params': state.params, 'batch_stats': state.batch_stats}, batch)
  assert 0 <= float(results['accuracy'][0]) <= 1
  assert np.isfinite(float(results['alignment_cost'][0]))
  assert 0 <= float(results['unaligned_accuracy'][0]) <= 1

