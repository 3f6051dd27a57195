"""Tests for the ResNet backbones: shapes, parameter counts, BatchNorm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vim_jax.models import resnet


def abstract_variables(module, size=64):
  return jax.eval_shape(lambda: module.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))


def count_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _closed_form_count(depth):
  """Parameters of torchvision's resnet{depth} without fc, by hand.

  Convs have no bias; a BatchNorm has 2 parameters per channel.
  """
  blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
  bottleneck = depth >= 50
  n = 3 * 64 * 7 * 7 + 2 * 64  # stem
  c_in = 64
  for stage, repeats in enumerate(blocks):
    w = 64 * 2**stage
    c_out = 4 * w if bottleneck else w
    for b in range(repeats):
      if bottleneck:
        n += c_in * w + 2 * w + w * w * 9 + 2 * w + w * c_out + 2 * c_out
      else:
        n += c_in * w * 9 + 2 * w + w * w * 9 + 2 * w
      if b == 0 and (c_in != c_out or stage > 0):
        n += c_in * c_out + 2 * c_out
      c_in = c_out
  return n


@pytest.mark.parametrize('depth,total,fc', [
    (18, 11_689_512, 512 * 1000 + 1000),
    (34, 21_797_672, 512 * 1000 + 1000),
    (50, 25_557_032, 2048 * 1000 + 1000),
])
def test_param_count_matches_torchvision(depth, total, fc):
  # The closed form reproduces torchvision's published totals ...
  assert _closed_form_count(depth) + fc == total
  # ... and the Flax model has exactly as many (BN running stats aside).
  variables = abstract_variables(resnet.resnet(depth))
  assert count_params(variables['params']) == total - fc
  # Running mean and variance: 2 per BN channel, i.e. as many as scale+bias.
  bn_params = sum(count_params(v) for k, v in
                  jax.tree_util.tree_leaves_with_path(variables['params'])
                  if 'bn' in jax.tree_util.keystr(k))
  assert count_params(variables['batch_stats']) == bn_params


@pytest.mark.parametrize('name,channels', [
    ('resnet18', 512), ('resnet34', 512), ('resnet50', 2048)])
def test_output_shapes(name, channels):
  module = resnet.build_backbone(name)
  assert module.out_features == channels
  variables = abstract_variables(module)
  out = jax.eval_shape(
      lambda v: module.apply(v, jnp.zeros((2, 64, 64, 3)), train=False),
      variables)
  assert out.shape == (2, 2, 2, channels)


def test_param_names():
  names = set(abstract_variables(resnet.build_backbone('resnet50'))['params'])
  assert {'conv_init', 'bn_init', 'stage1_block0', 'stage4_block2'} <= names
  block = abstract_variables(resnet.build_backbone('resnet50'))['params']
  assert set(block['stage1_block0']) == {
      'conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3', 'proj_conv', 'proj_bn'}
  assert set(block['stage1_block1']) == {
      'conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3'}
  assert block['conv_init']['kernel'].shape == (7, 7, 3, 64)


def random_variables(module, size=32, seed=0):
  """Random weights and BN statistics, without running `init` (fast)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if 'scale' in name or 'var' in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    return (0.1 * rng.normal(size=leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(
      draw, abstract_variables(module, size))


@pytest.fixture(scope='module')
def tiny():
  module = resnet.build_backbone('resnet_tiny')
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  return module, random_variables(module), x


def test_init_follows_torchvision():
  module = resnet.build_backbone('resnet_tiny')
  # The rbg key only keeps the compile short; flax does not care.
  variables = jax.jit(lambda k: module.init(
      k, jnp.zeros((1, 32, 32, 3)), train=False))(
          jax.random.key(0, impl='rbg'))
  assert jax.tree.map(np.shape, variables) == jax.tree.map(
      np.shape, abstract_variables(module))
  bn = variables['params']['stage4_block0']['bn2']
  np.testing.assert_array_equal(bn['scale'], 1)
  np.testing.assert_array_equal(bn['bias'], 0)
  np.testing.assert_array_equal(
      variables['batch_stats']['stage4_block0']['bn2']['var'], 1)
  # Kaiming normal, fan_out mode: std = sqrt(2 / (3 * 3 * 64)).
  kernel = variables['params']['stage4_block0']['conv2']['kernel']
  assert kernel.shape == (3, 3, 64, 64)
  np.testing.assert_allclose(np.std(kernel), np.sqrt(2 / 576), rtol=0.05)


def test_tiny_runs_and_strides(tiny):
  module, variables, x = tiny
  out = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x)
  assert out.shape == (2, 1, 1, 64)
  assert np.all(np.isfinite(out)) and np.all(out >= 0)  # after the last ReLU
  # Odd sizes round up at every stride-2 layer: 40 -> 20 -> 10 -> 5 -> 3 -> 2.
  out = jax.eval_shape(
      lambda v: module.apply(v, jnp.zeros((1, 40, 40, 3)), train=False),
      variables)
  assert out.shape == (1, 2, 2, 64)


def test_train_mode_updates_batch_stats(tiny):
  module, variables, x = tiny

  @jax.jit
  def run(variables, x):
    out, state = module.apply(variables, x, train=True,
                              mutable=['batch_stats', 'intermediates'],
                              capture_intermediates=True)
    eval_full = module.apply(variables, x, train=False)
    eval_one = module.apply(variables, x[:1], train=False)
    return out, state, eval_full, eval_one

  _, state, full, one = run(variables, x)
  stem = np.asarray(state['intermediates']['conv_init']['__call__'][0])
  old = variables['batch_stats']['bn_init']
  # flax momentum 0.9: new = 0.9 * old + 0.1 * batch statistic.
  np.testing.assert_allclose(
      state['batch_stats']['bn_init']['mean'],
      0.9 * old['mean'] + 0.1 * stem.mean(axis=(0, 1, 2)), atol=1e-5)
  np.testing.assert_allclose(
      state['batch_stats']['bn_init']['var'],
      0.9 * old['var'] + 0.1 * stem.var(axis=(0, 1, 2)), rtol=1e-4)
  # Eval mode is per example: the rest of the batch does not matter.
  np.testing.assert_allclose(full[:1], one, atol=1e-5)


def test_stride_in_1x1_same_params_different_function():
  x = jax.random.normal(jax.random.key(2), (1, 32, 32, 3))
  kw = dict(stage_sizes=(1, 1, 1, 1), block='bottleneck', width=4)
  a = resnet.ResNet(**kw)
  b = resnet.ResNet(**kw, stride_in_1x1=True, bn_epsilon=1.001e-5)
  variables = random_variables(a)
  assert jax.tree.map(np.shape, variables) == jax.tree.map(
      np.shape, abstract_variables(b, 32))
  ya, yb = jax.jit(lambda v: (a.apply(v, x, train=False),
                              b.apply(v, x, train=False)))(variables)
  assert ya.shape == yb.shape == (1, 1, 1, 128)
  assert not np.allclose(ya, yb)


def test_dtype_and_width_override():
  module = resnet.build_backbone('resnet_tiny', width=4, dtype=jnp.bfloat16)
  variables = random_variables(module)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  out = jax.eval_shape(
      lambda v: module.apply(v, jnp.ones((1, 32, 32, 3)), train=False),
      variables)
  assert out.dtype == jnp.bfloat16 and out.shape == (1, 1, 1, 32)


def test_bad_name():
  with pytest.raises(ValueError, match=r"'resnet99'.*resnet18.*resnet_tiny"):
    resnet.build_backbone('resnet99')
  with pytest.raises(ValueError, match='101'):
    resnet.resnet(101)
