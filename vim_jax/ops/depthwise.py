"""3x3 depthwise convolution as nine shifted multiply-adds, with its own VJP.

The scan network of the video sampler (ShuffleNet V2, paper 3.3.1) runs on
all M dense frames of every video, and most of its units are depthwise 3x3
convolutions. XLA on CPU lowers a grouped convolution
(`feature_group_count = C`) to a slow generic loop, forward and, worse,
backward; on this project's 2-core CPU it made a sampler train step 6.8x a
ProtoNet step. The same convolution written as a sum over the nine taps of
`shifted input * kernel[i, j]` is elementwise work that XLA fuses and
vectorises: forward + backward 5-13x faster per layer at the synthetic
config's scan-net shapes, 3.4x for the whole scan network
(`benchmarks/depthwise.py`).

Autodiff of the shifted-slice form is correct but slow (the transpose of each
strided slice is a scatter into a padded buffer). The custom VJP computes the
two cotangents directly:

  y[b, p, q, c]  = sum_{i,j} xp[b, s p + i, s q + j, c] k[i, j, c]
  dk[i, j, c]    = sum_{b,p,q} xp[b, s p + i, s q + j, c] g[b, p, q, c]
  dxp[b, u, v, c] = sum_{i,j} gd[b, u - i, v - j, c] k[i, j, c]

with `xp` the input zero-padded by one pixel, `s` the stride and `gd` the
cotangent `g` dilated by `s` (g[p] at position s p, zeros between). The VJP's
own ops are plain jnp, so higher-order reverse-mode derivatives still work;
forward mode (`jax.jvp`) does not, as for any `custom_vjp`.

Numerically it is the convolution that `nn.Conv(..., feature_group_count=C,
padding=((1, 1), (1, 1)))` computes, summed in another order (float32
differences ~1e-6 relative); tests compare both, and their gradients.
"""
import functools

import jax
import jax.numpy as jnp


def _output_size(n: int, stride: int) -> int:
  return (n - 1) // stride + 1  # kernel 3, padding 1 on each side


def _taps(xp, stride, ho, wo):
  """The nine strided windows of the padded input: (i, j, [B, ho, wo, C])."""
  span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
  for i in range(3):
    for j in range(3):
      yield i, j, xp[:, i:i + span_h:stride, j:j + span_w:stride, :]


def _pad(x):
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _forward(x, kernel, stride):
  ho, wo = _output_size(x.shape[1], stride), _output_size(x.shape[2], stride)
  return sum(window * kernel[i, j]
             for i, j, window in _taps(_pad(x), stride, ho, wo))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv3x3(x: jax.Array, kernel: jax.Array, stride: int
                      ) -> jax.Array:
  """Depthwise 3x3 convolution, zero padding 1, NHWC.

  Args:
    x: [B, H, W, C] input.
    kernel: [3, 3, C] one 3x3 filter per channel (the [3, 3, 1, C] kernel of
      a grouped `nn.Conv`, without its singleton axis).
    stride: static spatial stride (1 or 2).

  Returns:
    [B, (H - 1) // stride + 1, (W - 1) // stride + 1, C], in the dtype that
    `x * kernel` promotes to.
  """
  return _forward(x, kernel, stride)


def _vjp_forward(x, kernel, stride):
  return _forward(x, kernel, stride), (x, kernel)


def _vjp_backward(stride, residuals, g):
  x, kernel = residuals
  _, h, w, _ = x.shape
  ho, wo = g.shape[1:3]
  xp = _pad(x)
  dk = jnp.stack([(window * g).sum((0, 1, 2))
                  for _, _, window in _taps(xp, stride, ho, wo)])  # [9, C]
  # gd[:, 2 + u] is the dilated cotangent at padded position u (2 leading
  # zeros so that every shift u - i, i in 0..2, is a plain slice).
  hp, wp = h + 2, w + 2
  zero = jnp.zeros((), g.dtype)
  gd = jax.lax.pad(g, zero, ((0, 0, 0),
                             (2, hp - (stride * (ho - 1) + 1), stride - 1),
                             (2, wp - (stride * (wo - 1) + 1), stride - 1),
                             (0, 0, 0)))
  dxp = sum(gd[:, 2 - i:2 - i + hp, 2 - j:2 - j + wp, :] * kernel[i, j]
            for i in range(3) for j in range(3))
  return (dxp[:, 1:h + 1, 1:w + 1, :].astype(x.dtype),
          dk.reshape(kernel.shape).astype(kernel.dtype))


depthwise_conv3x3.defvjp(_vjp_forward, _vjp_backward)
