"""vim_jax.ops.l2_normalise against numpy."""
import jax
import numpy as np

from vim_jax import ops


def test_l2_normalise_matches_numpy_and_guards_zero_vectors():
  x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
  x[1, 2] = 0.0
  for axis in (-1, 0):
    want = x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-6)
    np.testing.assert_allclose(ops.l2_normalise(x, axis=axis), want,
                               rtol=1e-6, atol=1e-7)
  out = np.asarray(ops.l2_normalise(x))
  np.testing.assert_allclose(np.linalg.norm(out, axis=-1)[[0, 2]], 1.0,
                             rtol=1e-6)
  assert np.all(out[1, 2] == 0.0)
  # Below eps (but not zero) the vector is divided by eps: gradient 1 / eps.
  small = np.full((2, 3), 1e-5, np.float32)
  grad = jax.grad(lambda v: ops.l2_normalise(v, eps=1e-3).sum())(small)
  np.testing.assert_allclose(grad, 1e3, rtol=1e-6)
