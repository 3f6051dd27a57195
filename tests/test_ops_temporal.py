"""Tests of `temporal_warp` against np.interp and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vim_jax.ops import temporal_warp


def _np_warp(features, a, b):
  """Independent reference: np.interp per channel (clamps at the edges)."""
  t_len = features.shape[0]
  t = np.linspace(-1, 1, t_len)
  flat = features.reshape(t_len, -1)  # [T, D]
  out = np.stack(
      [np.interp(a * t + b, t, flat[:, d]) for d in range(flat.shape[1])],
      axis=1)
  return out.reshape(features.shape)


def _min_knot_distance(t_len, a, b):
  """Distance in frames of the nearest sample to a knot or clamping edge."""
  t = np.linspace(-1, 1, t_len)
  src = (a * t + b + 1) * (t_len - 1) / 2
  return np.min(np.abs(src - np.round(src)))


@pytest.mark.parametrize('shape', [(8, 3, 4, 5), (5, 6), (2, 3), (1, 4)])
def test_identity_is_exact(shape):
  features = jax.random.normal(jax.random.key(0), shape)
  out = temporal_warp(features, 1.0, 0.0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(features))
  out_jit = jax.jit(temporal_warp)(features, jnp.float32(1), jnp.float32(0))
  np.testing.assert_array_equal(np.asarray(out_jit), np.asarray(features))
  assert out.dtype == features.dtype


def test_identity_is_exact_bfloat16():
  features = jax.random.normal(jax.random.key(1), (6, 4), jnp.bfloat16)
  out = temporal_warp(features, 1.0, 0.0)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_array_equal(
      np.asarray(out, np.float32), np.asarray(features, np.float32))


@pytest.mark.parametrize('a, b', [
    (0.5, 0.2),      # zoom into the middle, no clamping
    (1.3, -0.4),     # stretch: both ends clamp
    (-1.0, 0.0),     # time reversal
    (0.8, 0.9),      # shifted past the last frame
    (0.0, 0.37),     # every output frame is the same position
])
def test_matches_np_interp(a, b):
  features = np.asarray(
      jax.random.normal(jax.random.key(2), (7, 2, 3, 4)), np.float64)
  out = temporal_warp(jnp.asarray(features, jnp.float32), a, b)
  np.testing.assert_allclose(
      np.asarray(out), _np_warp(features, a, b), rtol=1e-5, atol=1e-5)


def test_reversal_is_exact_flip():
  features = jax.random.normal(jax.random.key(3), (6, 5))
  out = temporal_warp(features, -1.0, 0.0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(features)[::-1])


def test_grad_wrt_a_b_matches_finite_differences():
  t_len = 8
  a0, b0 = 0.66, 0.17
  # Precondition: the derivative is well defined (no sample on a kink).
  assert _min_knot_distance(t_len, a0, b0) > 1e-2
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(4), 2)
    features = jax.random.normal(keys[0], (t_len, 3, 2), jnp.float64)
    probe = jax.random.normal(keys[1], (t_len, 3, 2), jnp.float64)

    def loss(a, b):
      return jnp.sum(temporal_warp(features, a, b) * probe)

    grad_a, grad_b = jax.grad(loss, argnums=(0, 1))(
        jnp.float64(a0), jnp.float64(b0))
    step = 1e-6
    fd_a = (loss(a0 + step, b0) - loss(a0 - step, b0)) / (2 * step)
    fd_b = (loss(a0, b0 + step) - loss(a0, b0 - step)) / (2 * step)
    np.testing.assert_allclose(float(grad_a), float(fd_a), rtol=1e-6)
    np.testing.assert_allclose(float(grad_b), float(fd_b), rtol=1e-6)
    assert abs(float(grad_a)) > 1e-3 and abs(float(grad_b)) > 1e-3


def test_grad_clamped_samples_do_not_depend_on_b():
  # With b far past the end every sample clamps to the last frame.
  features = jax.random.normal(jax.random.key(5), (5, 3))
  grad_b = jax.grad(lambda b: jnp.sum(temporal_warp(features, 0.5, b)))(5.0)
  assert float(grad_b) == 0.0
  np.testing.assert_allclose(
      np.asarray(temporal_warp(features, 0.5, 5.0)),
      np.broadcast_to(np.asarray(features)[-1], (5, 3)))


def test_grad_wrt_features_is_transposed_interpolation():
  # The op is linear in the features: out = M @ f with M from np.interp.
  t_len, a, b = 6, 0.6, -0.25
  matrix = _np_warp(np.eye(t_len), a, b)  # column k: warp of unit impulse k
  probe = np.asarray(jax.random.normal(jax.random.key(6), (t_len, 4)))
  grad = jax.grad(lambda f: jnp.sum(temporal_warp(f, a, b) * probe))(
      jnp.zeros((t_len, 4)))
  np.testing.assert_allclose(np.asarray(grad), matrix.T @ probe,
                             rtol=1e-5, atol=1e-6)


def test_jit_vmap_over_videos():
  videos = np.asarray(jax.random.normal(jax.random.key(7), (3, 6, 2, 2, 3)))
  a = np.array([1.0, 0.5, -0.7], np.float32)
  b = np.array([0.0, 0.2, 0.35], np.float32)
  out = jax.jit(jax.vmap(temporal_warp))(videos, a, b)
  assert out.shape == videos.shape
  for v in range(3):
    np.testing.assert_allclose(
        np.asarray(out[v]), _np_warp(videos[v].astype(np.float64), a[v], b[v]),
        rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(out[0]), videos[0])
  # Gradients under jit(vmap): finite and matching the per-video gradient.
  grads = jax.jit(jax.vmap(jax.grad(
      lambda f, a, b: jnp.sum(temporal_warp(f, a, b) ** 2), argnums=(1, 2))))(
          videos, a, b)
  single = jax.grad(lambda a_, b_: jnp.sum(temporal_warp(videos[1], a_, b_)
                                           ** 2), argnums=(0, 1))(a[1], b[1])
  np.testing.assert_allclose(float(grads[0][1]), float(single[0]), rtol=1e-5)
  np.testing.assert_allclose(float(grads[1][1]), float(single[1]), rtol=1e-5)
