"""Input conventions of the networks: how uint8 RGB frames become their input.

`config.model.normalisation` names one of `KINDS`:

* 'imagenet': RGB minus the ImageNet mean over its std. torchvision/timm
  weights expect it (their `backbone.json` says 'torch'), and it is what
  `FewShotModel` feeds its modules: the frames are normalised once, this way,
  because the scan network (torchvision weights) and the sampler's spatial
  amplifier work on it.
* 'caffe': BGR in 0-255 minus the per-channel mean, no scaling; Keras
  ResNet50 weights expect it. Such a backbone is wrapped in `BackboneInput`,
  which converts its ImageNet-normalised input exactly (an affine map per
  channel) and leaves the parameter tree unchanged.
"""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

KINDS = ('imagenet', 'caffe')
# Per-channel RGB mean and std, in 0-255.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
# keras.applications.imagenet_utils 'caffe' mode, in BGR order.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def caffe_input(rgb):
  """[..., 3] RGB floats in 0-255 -> Keras 'caffe' input (BGR minus mean)."""
  return rgb[..., ::-1] - CAFFE_MEAN_BGR


def normalise(frames, dtype=jnp.float32, kind='imagenet'):
  """uint8 RGB frames -> floats in an input convention.

  Args:
    frames: [..., 3] RGB, uint8 or floats in 0-255.
    dtype: of the output.
    kind: one of `KINDS`: 'imagenet' (what the model feeds its modules) or
      'caffe'.
  """
  x = frames.astype(jnp.float32)
  if kind == 'imagenet':
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)
  if kind == 'caffe':
    return caffe_input(x).astype(dtype)
  raise ValueError(f'config.model.normalisation={kind!r} is not one of '
                   f'{KINDS}.')


class BackboneInput(nn.Module):
  """Runs a backbone whose weights expect Keras 'caffe' input.

  Takes ImageNet-normalised frames (the model's convention), maps them back to
  0-255 RGB and on to BGR minus the caffe mean. The wrapped module shares this
  module's scope, so its parameters sit directly under this module's name, as
  if it were not wrapped.

  Attributes:
    net: the backbone (built with `parent=None`).
    imagenet_mean: per-channel RGB mean (0-255) of the incoming frames.
    imagenet_std: per-channel RGB std (0-255) of the incoming frames.
  """
  net: nn.Module
  imagenet_mean: tuple[float, float, float] = tuple(IMAGENET_MEAN.tolist())
  imagenet_std: tuple[float, float, float] = tuple(IMAGENET_STD.tolist())

  def setup(self):
    nn.share_scope(self, self.net)

  def __call__(self, x, *, train: bool):  # [B, H, W, 3] -> backbone maps
    rgb = (x.astype(jnp.float32) * jnp.asarray(self.imagenet_std, jnp.float32)
           + jnp.asarray(self.imagenet_mean, jnp.float32))
    return self.net(caffe_input(rgb).astype(x.dtype), train=train)
