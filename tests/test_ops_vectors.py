"""vim_jax.ops.l2_normalise and minmax_normalise against numpy."""
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


def test_minmax_normalise_matches_numpy_and_guards_constant_inputs():
  x = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
  x[1] = 2.5  # constant over both axes below
  for axis in (1, (1, 2)):
    low = x.min(axis=axis, keepdims=True)
    high = x.max(axis=axis, keepdims=True)
    guard = 1e-6 * np.abs(x).max(axis=axis, keepdims=True) + 1e-12
    want = (x - low) / np.maximum(high - low, guard)
    out = np.asarray(ops.minmax_normalise(x, axis=axis))
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
    assert np.all(out[1] == 0.0)  # constant: zeros, not NaN
    assert out[[0, 2]].min() == 0.0 and out[[0, 2]].max() == 1.0
  # A range below the guard is divided by the guard, not stretched to 1.
  near = np.array([[1.0, 1.0 + 1e-6]], np.float32)
  span = float(near[0, 1] - near[0, 0])  # ~9.5e-7 in float32
  guard = 1e-6 * float(near[0, 1]) + 1e-12
  assert span < guard
  np.testing.assert_allclose(np.asarray(ops.minmax_normalise(near, axis=1)),
                             [[0.0, span / guard]], rtol=1e-5)
