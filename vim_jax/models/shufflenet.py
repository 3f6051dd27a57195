"""ShuffleNet V2 (Ma et al., 2018): the scan network f of the video sampler.

Paper 4.2: an ImageNet-pretrained ShuffleNet-V2 0.5x scans every dense frame
at 64x64, with its first max pool removed to improve the saliency maps.

The layout follows the paper's Fig. 3 and torchvision's `shufflenet_v2_x*`:
stem 3x3/2 conv + BN + ReLU (+ 3x3/2 max pool), stages 2-4 of shuffle units,
conv5 1x1 + BN + ReLU, (global pool + fc). A unit of stride 1 splits the
channels in two halves, keeps the first and transforms the second (1x1 conv,
BN, ReLU, 3x3 depthwise conv, BN, 1x1 conv, BN, ReLU); a unit of stride 2
feeds the whole input to two branches (branch 1: depthwise 3x3/2, BN, 1x1,
BN, ReLU; branch 2 as above with the depthwise conv strided). Both
concatenate their halves and shuffle the channels with 2 groups.

Which maps the sampler gets: by default the output of conv5 (1024 channels,
after its ReLU), i.e. the maps right before the global pool, the counterpart
of ResNet-50's stage-4 maps that the paper feeds to the few-shot learner, and
the most semantic maps the ImageNet-pretrained network has. The paper calls
them "the output feature maps f(X)" of the scan network. Computed naively,
the c x c channel self-attention of the spatial amplifier costs 2 c^2 h w =
34M multiply-adds per 64x64 frame (c = 1024, h = w = 4), more than the scan
network itself (~11M); since the saliency only needs w_s^T alpha f, the
products can be reassociated to O(c h w). `features='stage4'` returns the
192-channel maps of the last stage instead (no conv5 parameters are created
then).

Parameter tree:

  conv_init, bn_init                        stem conv and BN
  stage{2,3,4}_block{j}/
    branch1_dw_conv, branch1_dw_bn,         stride-2 units only
    branch1_pw_conv, branch1_pw_bn,
    branch2_pw1_conv, branch2_pw1_bn,
    branch2_dw_conv, branch2_dw_bn,
    branch2_pw2_conv, branch2_pw2_bn
  conv5, bn5                                unless features == 'stage4'
  head                                      only with include_head
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vim_jax.ops import depthwise as depthwise_ops

Dtype = Any

# Stage output channels per width multiplier (paper Table 5, torchvision).
STAGE_OUT_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
FEATURE_LAYERS = ('conv5', 'stage4')
_KERNEL_INIT = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')


def channel_shuffle(x, groups: int):
  """Shuffles the channels (last axis) of `x` across `groups` groups.

  Channel `g * (C / groups) + i` moves to position `i * groups + g`, as
  torchvision's NCHW `view(B, groups, C/groups, H, W).transpose(1, 2)`.

  Args:
    x: [..., C] with C divisible by `groups`.
    groups: number of groups.

  Returns:
    [..., C], shuffled.
  """
  *lead, c = x.shape
  if c % groups:
    raise ValueError(f'{c} channels do not split into {groups} groups')
  x = x.reshape(*lead, groups, c // groups)
  return jnp.swapaxes(x, -1, -2).reshape(*lead, c)


class DepthwiseConv3x3(nn.Module):
  """3x3 depthwise convolution, padding 1, no bias (`ops.depthwise`).

  Its 'kernel' has the [3, 3, 1, C] shape and the initialiser of the grouped
  `nn.Conv(C, (3, 3), feature_group_count=C, use_bias=False)` it replaces, so
  parameter trees and converted torchvision weights are unchanged; it is
  several times faster on XLA CPU.

  Attributes:
    strides: spatial stride (1 or 2).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  strides: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):  # [B, H, W, C] -> [B, H/s, W/s, C]
    kernel = self.param('kernel', _KERNEL_INIT, (3, 3, 1, x.shape[-1]),
                        self.param_dtype)
    return depthwise_ops.depthwise_conv3x3(
        jnp.asarray(x, self.dtype), jnp.asarray(kernel[:, :, 0], self.dtype),
        self.strides)


class ShuffleUnit(nn.Module):
  """One ShuffleNet V2 unit (torchvision's `InvertedResidual`).

  Attributes:
    features: output channels (even); each branch gives half of them.
    strides: 1 (channel split) or 2 (two branches, spatial downsampling).
    conv: partially applied `nn.Conv` (the 1x1 convolutions).
    depthwise: partially applied `DepthwiseConv3x3`, called with the stride.
    norm: partially applied `nn.BatchNorm`.
  """
  features: int
  strides: int
  conv: Any
  depthwise: Any
  norm: Any

  @nn.compact
  def __call__(self, x):  # [B, H, W, C_in] -> [B, H/s, W/s, features]
    half = self.features // 2
    if self.strides == 1:
      if x.shape[-1] != self.features:
        raise ValueError('a stride-1 unit keeps the channel count, got '
                         f'{x.shape[-1]} -> {self.features}')
      x1, x2 = jnp.split(x, 2, axis=-1)
    else:
      c_in = x.shape[-1]
      x1 = self.depthwise(self.strides, name='branch1_dw_conv')(x)
      x1 = self.norm(name='branch1_dw_bn')(x1)
      x1 = self.conv(half, (1, 1), padding='VALID', name='branch1_pw_conv')(x1)
      x1 = nn.relu(self.norm(name='branch1_pw_bn')(x1))
      x2 = x
    y = self.conv(half, (1, 1), padding='VALID', name='branch2_pw1_conv')(x2)
    y = nn.relu(self.norm(name='branch2_pw1_bn')(y))
    y = self.depthwise(self.strides, name='branch2_dw_conv')(y)
    y = self.norm(name='branch2_dw_bn')(y)
    y = self.conv(half, (1, 1), padding='VALID', name='branch2_pw2_conv')(y)
    y = nn.relu(self.norm(name='branch2_pw2_bn')(y))
    return channel_shuffle(jnp.concatenate([x1, y], axis=-1), 2)


class ShuffleNetV2(nn.Module):
  """ShuffleNet V2 feature extractor (optionally with its ImageNet head).

  Attributes:
    stages_repeats: units in stages 2, 3, 4.
    stages_out_channels: output channels of the stem, stages 2-4 and conv5.
      The default is the 0.5x network.
    remove_first_maxpool: drop the stem's 3x3/2 max pool (paper 4.2); then a
      64x64 input gives 4x4 maps.
    features: which maps to return without the head: 'conv5' (default, after
      conv5's BN and ReLU) or 'stage4' (the last shuffle unit's output).
    include_head: add conv5, global average pool and a `num_classes` fc layer
      and return logits (the ImageNet classifier; for parameter checks).
    num_classes: classes of the head.
    bn_epsilon: BatchNorm epsilon.
    bn_momentum: BatchNorm running-average decay (flax convention).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  stages_repeats: Sequence[int] = (4, 8, 4)
  stages_out_channels: Sequence[int] = STAGE_OUT_CHANNELS[0.5]
  remove_first_maxpool: bool = True
  features: str = 'conv5'
  include_head: bool = False
  num_classes: int = 1000
  bn_epsilon: float = 1e-5
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def out_features(self) -> int:
    """Channels c of the returned maps (without the head)."""
    if self.features == 'stage4':
      return self.stages_out_channels[-2]
    return self.stages_out_channels[-1]

  @nn.compact
  def __call__(self, x, *, train: bool):
    """Computes frame feature maps (or logits with `include_head`).

    Args:
      x: [B, H, W, 3] float images (already normalised).
      train: BatchNorm in training mode (batch statistics, updates
        `batch_stats`) when True.

    Returns:
      [B, H/16, W/16, out_features] maps without the first max pool
      ([B, 4, 4, c] at 64x64; H/32 with it), or [B, num_classes] logits when
      `include_head`.
    """
    if self.features not in FEATURE_LAYERS:
      raise ValueError(
          f'features must be one of {FEATURE_LAYERS}, got {self.features!r}')
    if len(self.stages_out_channels) != len(self.stages_repeats) + 2:
      raise ValueError('stages_out_channels needs stem, stages and conv5 '
                       f'channels, got {self.stages_out_channels}')
    conv = functools.partial(
        nn.Conv, use_bias=False, kernel_init=_KERNEL_INIT, dtype=self.dtype,
        param_dtype=self.param_dtype)
    depthwise = functools.partial(
        DepthwiseConv3x3, dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train,
        momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype,
        param_dtype=self.param_dtype)

    x = jnp.asarray(x, self.dtype)
    x = conv(self.stages_out_channels[0], (3, 3), (2, 2),
             padding=((1, 1), (1, 1)), name='conv_init')(x)
    x = nn.relu(norm(name='bn_init')(x))  # [B, H/2, W/2, 24]
    if not self.remove_first_maxpool:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, repeats in enumerate(self.stages_repeats):
      for j in range(repeats):
        x = ShuffleUnit(
            features=self.stages_out_channels[i + 1],
            strides=2 if j == 0 else 1, conv=conv, depthwise=depthwise,
            norm=norm,
            name=f'stage{i + 2}_block{j}')(x)
    if self.features == 'stage4' and not self.include_head:
      return x  # [B, h, w, stages_out_channels[-2]]
    x = conv(self.stages_out_channels[-1], (1, 1), padding='VALID',
             name='conv5')(x)
    x = nn.relu(norm(name='bn5')(x))  # [B, h, w, stages_out_channels[-1]]
    if not self.include_head:
      return x
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    param_dtype=self.param_dtype, name='head')(x)


def shufflenet_v2(width_multiplier: float = 0.5, **kwargs) -> ShuffleNetV2:
  """ShuffleNet V2 with a standard width multiplier (0.5, 1.0, 1.5, 2.0).

  `kwargs` are module fields; a `stages_out_channels` among them overrides
  the multiplier's channels (a narrow scan net, `sampler.scan_kwargs`).
  """
  if width_multiplier not in STAGE_OUT_CHANNELS:
    raise ValueError(f'Unknown width multiplier {width_multiplier!r}; valid: '
                     f'{sorted(STAGE_OUT_CHANNELS)}.')
  kwargs.setdefault('stages_out_channels',
                    STAGE_OUT_CHANNELS[width_multiplier])
  return ShuffleNetV2(**kwargs)


SCAN_NETWORKS = {
    'shufflenet_v2_x0_5': 0.5,
    'shufflenet_v2_x1_0': 1.0,
    'shufflenet_v2_x1_5': 1.5,
    'shufflenet_v2_x2_0': 2.0,
}


def build_scan_network(name: str, **kwargs) -> ShuffleNetV2:
  """Builds a scan network by torchvision name, e.g. 'shufflenet_v2_x0_5'.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in SCAN_NETWORKS:
    raise ValueError(
        f'Unknown scan network {name!r}; valid names: {sorted(SCAN_NETWORKS)}.')
  return shufflenet_v2(SCAN_NETWORKS[name], **kwargs)
