"""ResNet backbones (He et al., 2016) that return the stage-4 feature maps.

The feature extractor F of the few-shot learner (paper 3.4.2, 4.2): the maps
before the last average pool of an ImageNet ResNet-50 form the frame-level
input to the alignment. No pooling and no classifier head here.

Two variants of the bottleneck block matter for loading pretrained weights:

* torchvision ("v1.5"): the stride of a downsampling bottleneck sits on the
  3x3 conv (`stride_in_1x1=False`, the default);
* Keras `keras.applications.ResNet50` (the original "v1"): the stride sits on
  the first 1x1 conv (`stride_in_1x1=True`) and BatchNorm uses eps 1.001e-5.

Paddings are explicit and symmetric (stem conv 3, 3x3 convs 1, max pool 1),
the same as torchvision and Keras; 'SAME' would pad asymmetrically for stride
2 and break weight compatibility.

Parameter tree (names chosen so that converters map one to one):

  conv_init, bn_init                  stem 7x7/2 conv and its BN
  stage{1..4}_block{j}/conv{k},bn{k}  k = 1, 2 (basic) or 1, 2, 3 (bottleneck)
  stage{1..4}_block{j}/proj_conv,proj_bn
                                      1x1 projection of the shortcut, in the
                                      first block of a stage when the shape
                                      changes
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

# depth -> (blocks per stage, block type); the standard ImageNet ResNets.
DEPTHS = {
    18: ((2, 2, 2, 2), 'basic'),
    34: ((3, 4, 6, 3), 'basic'),
    50: ((3, 4, 6, 3), 'bottleneck'),
}
BLOCK_TYPES = ('basic', 'bottleneck')
# torchvision's initialisation: kaiming normal, fan_out, ReLU gain.
_KERNEL_INIT = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def _pad(p):
  return ((p, p), (p, p))


class BasicBlock(nn.Module):
  """Two 3x3 convs with a residual connection (ResNet-18/34).

  Attributes:
    features: output channels.
    strides: stride of the first 3x3 conv and of the projection.
    conv: partially applied `nn.Conv`.
    norm: partially applied `nn.BatchNorm`.
    stride_in_1x1: unused (no 1x1 conv on the main path); kept so that both
      block types take the same arguments.
  """
  features: int
  strides: int
  conv: Any
  norm: Any
  stride_in_1x1: bool = False

  @nn.compact
  def __call__(self, x):  # [B, H, W, C_in] -> [B, H/s, W/s, features]
    s = (self.strides, self.strides)
    y = self.conv(self.features, (3, 3), s, padding=_pad(1), name='conv1')(x)
    y = nn.relu(self.norm(name='bn1')(y))
    y = self.conv(self.features, (3, 3), padding=_pad(1), name='conv2')(y)
    y = self.norm(name='bn2')(y)
    if x.shape[-1] != self.features or self.strides != 1:
      x = self.conv(self.features, (1, 1), s, padding='VALID',
                    name='proj_conv')(x)
      x = self.norm(name='proj_bn')(x)
    return nn.relu(x + y)


class BottleneckBlock(nn.Module):
  """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection (ResNet-50).

  Attributes:
    features: channels of the 3x3 conv; the block outputs 4 * features.
    strides: stride of the block (on the 3x3 conv, or on the first 1x1 conv
      when `stride_in_1x1`), and of the projection.
    conv: partially applied `nn.Conv`.
    norm: partially applied `nn.BatchNorm`.
    stride_in_1x1: Keras / original v1 placement of the stride.
  """
  features: int
  strides: int
  conv: Any
  norm: Any
  stride_in_1x1: bool = False

  @nn.compact
  def __call__(self, x):  # [B, H, W, C_in] -> [B, H/s, W/s, 4 * features]
    s = (self.strides, self.strides)
    s1, s3 = (s, (1, 1)) if self.stride_in_1x1 else ((1, 1), s)
    out = 4 * self.features
    y = self.conv(self.features, (1, 1), s1, padding='VALID', name='conv1')(x)
    y = nn.relu(self.norm(name='bn1')(y))
    y = self.conv(self.features, (3, 3), s3, padding=_pad(1), name='conv2')(y)
    y = nn.relu(self.norm(name='bn2')(y))
    y = self.conv(out, (1, 1), padding='VALID', name='conv3')(y)
    y = self.norm(name='bn3')(y)
    if x.shape[-1] != out or self.strides != 1:
      x = self.conv(out, (1, 1), s, padding='VALID', name='proj_conv')(x)
      x = self.norm(name='proj_bn')(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet feature extractor: images -> stage-4 feature maps.

  Attributes:
    stage_sizes: number of blocks in each of the four stages.
    block: 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50 and deeper).
    width: channels of the stem and of the first stage (64 is standard).
    stride_in_1x1: put a bottleneck's stride on its first 1x1 conv (Keras
      ResNet50, original v1) instead of on the 3x3 conv (torchvision v1.5).
    bn_epsilon: BatchNorm epsilon (1e-5 torchvision, 1.001e-5 Keras).
    bn_momentum: BatchNorm running-average decay (flax convention: 0.9 keeps
      90% of the old value, i.e. torch momentum 0.1).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  stage_sizes: Sequence[int]
  block: str
  width: int = 64
  stride_in_1x1: bool = False
  bn_epsilon: float = 1e-5
  bn_momentum: float = 0.9
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def out_features(self) -> int:
    """Channels C of the stage-4 maps."""
    return self.width * 8 * (4 if self.block == 'bottleneck' else 1)

  @nn.compact
  def __call__(self, x, *, train: bool):
    """Computes the stage-4 feature maps.

    Args:
      x: [B, H, W, 3] float images (already normalised).
      train: BatchNorm uses batch statistics and updates `batch_stats` when
        True, the running averages when False.

    Returns:
      [B, ceil(H / 32), ceil(W / 32), out_features] feature maps.
    """
    if self.block not in BLOCK_TYPES:
      raise ValueError(
          f'block must be one of {BLOCK_TYPES}, got {self.block!r}')
    block_cls = BasicBlock if self.block == 'basic' else BottleneckBlock
    conv = functools.partial(
        nn.Conv, use_bias=False, kernel_init=_KERNEL_INIT, dtype=self.dtype,
        param_dtype=self.param_dtype)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=not train,
        momentum=self.bn_momentum, epsilon=self.bn_epsilon, dtype=self.dtype,
        param_dtype=self.param_dtype)

    x = jnp.asarray(x, self.dtype)
    x = conv(self.width, (7, 7), (2, 2), padding=_pad(3), name='conv_init')(x)
    x = nn.relu(norm(name='bn_init')(x))  # [B, H/2, W/2, width]
    # Inputs are >= 0 after the ReLU, so flax's -inf padding equals the zero
    # padding Keras uses before its max pool.
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=_pad(1))  # [B, H/4, ..]
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = block_cls(
            features=self.width * 2**i, strides=strides, conv=conv, norm=norm,
            stride_in_1x1=self.stride_in_1x1,
            name=f'stage{i + 1}_block{j}')(x)
    return x  # [B, H/32, W/32, out_features]


def resnet(depth, **kwargs) -> ResNet:
  """A standard ResNet feature extractor.

  Args:
    depth: 18, 34, 50, or 'tiny' (one basic block per stage, width 8; for
      tests).
    **kwargs: further `ResNet` fields (width, stride_in_1x1, dtype, ...).

  Returns:
    The (unbound) module.
  """
  if depth == 'tiny':
    return ResNetTiny(**kwargs)
  if depth not in DEPTHS:
    raise ValueError(
        f'Unknown ResNet depth {depth!r}; valid: {sorted(DEPTHS)} or "tiny".')
  stage_sizes, block = DEPTHS[depth]
  return ResNet(stage_sizes=stage_sizes, block=block, **kwargs)


ResNet18 = functools.partial(ResNet, stage_sizes=DEPTHS[18][0], block='basic')
ResNet34 = functools.partial(ResNet, stage_sizes=DEPTHS[34][0], block='basic')
ResNet50 = functools.partial(
    ResNet, stage_sizes=DEPTHS[50][0], block='bottleneck')
ResNetTiny = functools.partial(
    ResNet, stage_sizes=(1, 1, 1, 1), block='basic', width=8)

BACKBONES = {
    'resnet18': ResNet18,
    'resnet34': ResNet34,
    'resnet50': ResNet50,
    'resnet_tiny': ResNetTiny,
}


def build_backbone(name: str, **kwargs) -> ResNet:
  """Builds a backbone by name.

  Args:
    name: one of `BACKBONES` ('resnet18', 'resnet34', 'resnet50',
      'resnet_tiny').
    **kwargs: `ResNet` fields overriding the defaults of that name (e.g.
      `width`, `dtype`, and `stride_in_1x1`, `bn_epsilon` for Keras weights).

  Returns:
    The (unbound) module.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in BACKBONES:
    raise ValueError(
        f'Unknown backbone {name!r}; valid names: {sorted(BACKBONES)}.')
  return BACKBONES[name](**kwargs)
