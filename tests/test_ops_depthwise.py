"""Tests for the 3x3 depthwise convolution against XLA's grouped convolution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vim_jax.ops import depthwise


def _reference(x, kernel, stride):
  """lax's grouped convolution (feature_group_count = C), padding 1."""
  c = x.shape[-1]
  return jax.lax.conv_general_dilated(
      x, kernel[:, :, None, :], (stride, stride), ((1, 1), (1, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=c,
      precision=jax.lax.Precision.HIGHEST)


# Odd and even sizes: with stride 2 the last padded row/column is used or not.
SHAPES = [((2, 6, 6, 3), 1), ((2, 6, 6, 3), 2), ((3, 7, 5, 4), 2),
          ((1, 5, 8, 2), 1), ((1, 1, 1, 2), 2)]


def _inputs(shape, seed=0):
  kx, kk = jax.random.split(jax.random.key(seed))
  x = jax.random.normal(kx, shape, jnp.float32)
  kernel = jax.random.normal(kk, (3, 3, shape[-1]), jnp.float32)
  return x, kernel


@pytest.mark.parametrize('shape,stride', SHAPES)
def test_forward_matches_grouped_conv(shape, stride):
  x, kernel = _inputs(shape)
  ours = depthwise.depthwise_conv3x3(x, kernel, stride)
  np.testing.assert_allclose(ours, _reference(x, kernel, stride),
                             rtol=1e-5, atol=1e-5)


def test_hand_worked_example():
  # One channel, all-ones 3x3 input, kernel = 1 at its centre and 10 at its
  # top-left tap: out[p, q] = x[p, q] + 10 x[p - 1, q - 1] (zero padded).
  x = jnp.ones((1, 3, 3, 1))
  kernel = jnp.zeros((3, 3, 1)).at[1, 1, 0].set(1.0).at[0, 0, 0].set(10.0)
  out = depthwise.depthwise_conv3x3(x, kernel, 1)[0, :, :, 0]
  np.testing.assert_array_equal(out, [[1, 1, 1], [1, 11, 11], [1, 11, 11]])
  # Stride 2 keeps the outputs at rows and columns 0 and 2.
  out2 = depthwise.depthwise_conv3x3(x, kernel, 2)[0, :, :, 0]
  np.testing.assert_array_equal(out2, [[1, 1], [1, 11]])


@pytest.mark.parametrize('shape,stride', SHAPES)
def test_custom_vjp_matches_autodiff_of_grouped_conv(shape, stride):
  x, kernel = _inputs(shape, seed=1)
  weights = jax.random.normal(
      jax.random.key(2), _reference(x, kernel, stride).shape)
  loss = lambda f: lambda x, k: (jnp.sin(f(x, k, stride)) * weights).sum()
  ours = jax.grad(loss(depthwise.depthwise_conv3x3), argnums=(0, 1))(
      x, kernel)
  ref = jax.grad(loss(_reference), argnums=(0, 1))(x, kernel)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_gradient_matches_finite_difference():
  x, kernel = _inputs((1, 4, 5, 2), seed=3)
  k64 = np.asarray(kernel, np.float64)
  f = lambda k: float(jnp.sum(depthwise.depthwise_conv3x3(
      x, jnp.asarray(k, jnp.float32), 2) ** 2))
  grad = jax.grad(lambda k: jnp.sum(
      depthwise.depthwise_conv3x3(x, k, 2) ** 2))(kernel)
  eps = 1e-2
  for index in [(0, 0, 0), (1, 1, 1), (2, 1, 0)]:
    step = np.zeros_like(k64)
    step[index] = eps
    fd = (f(k64 + step) - f(k64 - step)) / (2 * eps)  # exact: f is quadratic
    np.testing.assert_allclose(grad[index], fd, rtol=1e-3)


def test_jit_vmap_and_second_order():
  x, kernel = _inputs((2, 5, 5, 3), seed=4)
  jitted = jax.jit(depthwise.depthwise_conv3x3, static_argnums=2)
  np.testing.assert_allclose(jitted(x, kernel, 2),
                             depthwise.depthwise_conv3x3(x, kernel, 2),
                             rtol=1e-6, atol=1e-6)
  batched = jax.vmap(lambda k: depthwise.depthwise_conv3x3(x, k, 1))(
      jnp.stack([kernel, 2 * kernel]))
  np.testing.assert_allclose(batched[1], 2 * batched[0], rtol=1e-5, atol=1e-5)
  # The backward pass is plain jnp, so it is differentiable again: the
  # Hessian-vector product of the grouped conv's loss is the reference.
  hvp = lambda f: jax.grad(lambda k: jnp.vdot(
      jax.grad(lambda k: jnp.sum(jnp.tanh(f(x, k, 1))))(k), kernel))(kernel)
  np.testing.assert_allclose(hvp(depthwise.depthwise_conv3x3),
                             hvp(_reference), rtol=1e-4, atol=1e-5)
