"""Affine time warp of a feature sequence (paper 3.4.3, Eq. 16).

The temporal transformation of temporal coordination resamples one video's
frame features at the warped normalised times `a * t + b`, where
`t = linspace(-1, 1, T)` (-1 is the first frame, +1 the last), by linear
interpolation between neighbouring frames. Positions outside [-1, 1] are
clamped to the edge frames, so the output always has the input's length T.

`a = 1, b = 0` is the identity and returns the input bitwise: the source
positions are computed in frame units as `a * (i - c) + b * c + c` with
`c = (T - 1) / 2`, which is exact for the identity, and the interpolation
weights are then exactly 0 and 1 (`(1 - w) * f0 + w * f1`, no matmul, so no
reduced-precision dot on accelerators).

Gradients: w.r.t. `features` the op is linear (a gather, transposed as a
scatter-add). W.r.t. `a` and `b` the output is piecewise linear in the source
position, with kinks where a position lands on a frame (a knot) or on the
clamping edge. There JAX returns a one-sided or averaged sub-gradient; at the
identity, for example, interior frames see the forward difference
`f[i + 1] - f[i]` and the two edge frames half of their one-sided slope.
"""
import jax
import jax.numpy as jnp


def temporal_warp(features: jax.Array, a: jax.Array, b: jax.Array
                  ) -> jax.Array:
  """Resamples one video's features along time at `a * t + b`.

  Args:
    features: [T, ...] features of ONE video, time first, any trailing dims
      (e.g. [T, h, w, C] or [T, C]); floating point. `jax.vmap` over videos.
    a: scalar time scale (1 is the identity; negative reverses time).
    b: scalar time shift in normalised units (the whole clip spans 2).

  Returns:
    [T, ...] warped features, same shape and dtype as `features`. Output frame
    `i` is the linear interpolation of the input at normalised time
    `a * t[i] + b`, `t = linspace(-1, 1, T)`, clamped to [-1, 1].
  """
  t_len = features.shape[0]
  if t_len == 1:
    # Every position clamps to the only frame.
    return features
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  # Positions in at least float32, even for bf16 parameters.
  pos_dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  centre = (t_len - 1) / 2
  frame = jnp.arange(t_len, dtype=pos_dtype)  # [T]
  # Source position in frame units: (a * t + b + 1) * centre, written so that
  # the identity warp gives the integers 0..T-1 exactly.
  src = a.astype(pos_dtype) * (frame - centre) + (
      b.astype(pos_dtype) * centre + centre)  # [T]
  src = jnp.clip(src, 0, t_len - 1)
  lo = jnp.clip(jnp.floor(src), 0, t_len - 2).astype(jnp.int32)  # [T]
  w = src - lo.astype(pos_dtype)  # [T] in [0, 1]; carries the gradient
  w = w.astype(features.dtype).reshape((t_len,) + (1,) * (features.ndim - 1))
  return (1 - w) * features[lo] + w * features[lo + 1]
