"""Tests for ShuffleNet V2: parameter count, shapes, channel shuffle."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.test_resnet import abstract_variables
from tests.test_resnet import count_params
from tests.test_resnet import random_variables
from vim_jax.models import shufflenet


def _closed_form_count(channels=(24, 48, 96, 192, 1024), repeats=(4, 8, 4),
                       classes=1000):
  """Parameters of torchvision's ShuffleNet V2 with its fc, by hand.

  Convs have no bias, a BatchNorm has 2 parameters per channel, a depthwise
  3x3 conv has 9 per channel.
  """
  n = 3 * channels[0] * 9 + 2 * channels[0]  # stem conv + BN
  c_in = channels[0]
  for c_out, r in zip(channels[1:4], repeats):
    half = c_out // 2
    # Stride-2 unit: branch 1 (dw on c_in, pw c_in -> half) ...
    n += c_in * 9 + 2 * c_in + c_in * half + 2 * half
    # ... and branch 2 (pw c_in -> half, dw, pw half -> half).
    n += c_in * half + 2 * half + half * 9 + 2 * half + half * half + 2 * half
    # Stride-1 units: branch 2 on the second half only.
    n += (r - 1) * (2 * (half * half + 2 * half) + half * 9 + 2 * half)
    c_in = c_out
  n += c_in * channels[4] + 2 * channels[4]  # conv5
  return n + channels[4] * classes + classes  # fc


def test_param_count_matches_torchvision():
  assert _closed_form_count() == 1_366_792  # torchvision shufflenet_v2_x0_5
  module = shufflenet.ShuffleNetV2(include_head=True)
  assert count_params(abstract_variables(module)['params']) == 1_366_792
  # Without the head: the fc layer's parameters are gone.
  no_head = abstract_variables(shufflenet.ShuffleNetV2())
  assert count_params(no_head['params']) == 1_366_792 - 1024 * 1000 - 1000


@pytest.mark.parametrize('mult,total', [
    (1.0, 2_278_604), (1.5, 3_503_624), (2.0, 7_393_996)])  # torchvision's
def test_other_widths(mult, total):
  channels = shufflenet.STAGE_OUT_CHANNELS[mult]
  assert _closed_form_count(channels) == total
  module = shufflenet.shufflenet_v2(mult, include_head=True)
  assert count_params(abstract_variables(module)['params']) == total


def test_shapes_and_run():
  module = shufflenet.build_scan_network('shufflenet_v2_x0_5')
  x = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
  variables = random_variables(module)

  @jax.jit
  def run(variables):
    return (module.apply(variables, x, train=False),
            module.apply(variables, x, train=True, mutable=['batch_stats']))

  out, (out_train, state) = run(variables)
  assert out.shape == (2, 4, 4, 1024) == (2, 4, 4, module.out_features)
  assert np.all(np.isfinite(out)) and np.all(out >= 0)
  assert out_train.shape == (2, 4, 4, 1024)
  assert not np.allclose(state['batch_stats']['bn5']['mean'],
                         variables['batch_stats']['bn5']['mean'])


@pytest.mark.parametrize('kwargs,shape', [
    (dict(features='stage4'), (1, 4, 4, 192)),
    (dict(remove_first_maxpool=False), (1, 2, 2, 1024)),
    (dict(include_head=True), (1, 1000)),
    (dict(include_head=True, num_classes=7), (1, 7)),
])
def test_variants_shapes(kwargs, shape):
  module = shufflenet.ShuffleNetV2(**kwargs)
  variables = abstract_variables(module)
  out = jax.eval_shape(
      lambda v: module.apply(v, jnp.zeros((1, 64, 64, 3)), train=False),
      variables)
  assert out.shape == shape
  if kwargs.get('features') == 'stage4':
    assert 'conv5' not in variables['params']


def test_channel_shuffle_matches_torch_formula():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 12)).astype(np.float32)
  for groups in (2, 3, 4):
    # torchvision, in NCHW: view(B, g, C/g, H, W).transpose(1, 2).reshape.
    nchw = x.transpose(0, 3, 1, 2)
    b, c, h, w = nchw.shape
    ref = nchw.reshape(b, groups, c // groups, h, w).transpose(
        0, 2, 1, 3, 4).reshape(b, c, h, w).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(shufflenet.channel_shuffle(x, groups), ref)
  # By hand for 2 groups: [a0 a1 a2 b0 b1 b2] -> [a0 b0 a1 b1 a2 b2].
  np.testing.assert_array_equal(
      shufflenet.channel_shuffle(np.arange(6.0), 2), [0, 3, 1, 4, 2, 5])
  with pytest.raises(ValueError):
    shufflenet.channel_shuffle(x, 5)


def test_stride1_unit_passes_first_half_through():
  unit = shufflenet.ShuffleUnit(
      features=8, strides=1, conv=functools.partial(nn.Conv, use_bias=False),
      depthwise=shufflenet.DepthwiseConv3x3,
      norm=functools.partial(nn.BatchNorm, use_running_average=True))
  x = jax.random.normal(jax.random.key(0), (1, 5, 5, 8))
  # The rbg key only keeps the compile short.
  variables = jax.jit(unit.init)(jax.random.key(1, impl='rbg'), x)
  assert 'branch1_dw_conv' not in variables['params']
  y = unit.apply(variables, x)
  # After the shuffle the untouched half sits at the even channels.
  np.testing.assert_array_equal(y[..., 0::2], x[..., :4])
  assert np.all(y[..., 1::2] >= 0)  # the branch ends with a ReLU


def test_bad_name():
  with pytest.raises(ValueError, match=r"'shufflenet_v2_x3'.*x0_5"):
    shufflenet.build_scan_network('shufflenet_v2_x3')


@pytest.mark.parametrize('strides', [1, 2])
def test_depthwise_module_equals_grouped_conv(strides):
  """Same parameter tree and output as the grouped nn.Conv it replaces."""
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, 4))
  ours = shufflenet.DepthwiseConv3x3(strides)
  grouped = nn.Conv(4, (3, 3), (strides, strides), padding=((1, 1), (1, 1)),
                    feature_group_count=4, use_bias=False,
                    kernel_init=shufflenet._KERNEL_INIT)
  v_ours = ours.init(jax.random.key(1), x)
  v_grouped = grouped.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_grouped)
  # Same initialiser, same key: the same kernel.
  np.testing.assert_array_equal(v_ours['params']['kernel'],
                                v_grouped['params']['kernel'])
  np.testing.assert_allclose(ours.apply(v_ours, x),
                             grouped.apply(v_grouped, x),
                             rtol=1e-5, atol=1e-6)
