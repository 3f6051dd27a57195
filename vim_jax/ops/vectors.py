"""Unit vectors with a guarded norm."""
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
