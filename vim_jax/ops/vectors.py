"""Guarded normalisations: unit vectors and min-max scaling to [0, 1]."""
import jax.numpy as jnp


def l2_normalise(x, axis: int = -1, eps: float = 1e-6):
  """x / max(|x|, eps) along `axis` (jax.nn and optax offer no L2
  normalisation): an all-zero vector stays zero instead of NaN.

  The gradient is finite wherever x != 0 (below eps it is 1 / eps); at an
  exactly zero vector `jnp.linalg.norm`'s own gradient is NaN. A guard on the
  squared norm would avoid that but changes the rounding of every normalised
  vector, and with it the trained models; no feature here is exactly zero.
  """
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def minmax_normalise(x, axis):
  """Min-max normalisation of `x` to [0, 1] over `axis`, guarded.

  A constant input gives zeros (never NaN); the range is floored at
  1e-6 max|x| + 1e-12 so a near-constant input is not blown up from rounding.
  """
  low = x.min(axis=axis, keepdims=True)
  high = x.max(axis=axis, keepdims=True)
  guard = 1e-6 * jnp.abs(x).max(axis=axis, keepdims=True) + 1e-12
  return (x - low) / jnp.maximum(high - low, guard)
