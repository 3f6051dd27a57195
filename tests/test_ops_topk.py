"""Tests of the perturbed top-k selection (vim_jax/ops/topk.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vim_jax.ops import perturbed_topk
from vim_jax.ops import straight_through_topk
from vim_jax.ops.topk import hard_topk


def _numpy_hard_topk(scores, k):
  """Reference: one-hot of the k largest scores, indices ascending."""
  idx = np.sort(np.argsort(-scores, kind='stable')[:k])
  return np.eye(scores.shape[-1])[idx]  # [k, M]


def _smoothed_argmax(scores, sigma):
  """Exact E_Z[one-hot argmax(scores + sigma Z)] by quadrature, float64.

  P(i is the argmax) = int phi(z) prod_{j != i} Phi((s_i - s_j) / sigma + z) dz.
  """
  z = np.linspace(-10.0, 10.0, 4001)
  probs = []
  for i in range(len(scores)):
    others = np.delete(scores, i)
    integrand = stats.norm.pdf(z) * np.prod(
        stats.norm.cdf((scores[i] - others[:, None]) / sigma + z[None]), axis=0)
    probs.append(np.trapezoid(integrand, z))
  return np.array(probs)  # [M]


def test_hard_topk_matches_numpy():
  scores = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
  got = np.asarray(hard_topk(jnp.asarray(scores), 3))  # [5, 3, 7]
  for v in range(5):
    np.testing.assert_array_equal(got[v], _numpy_hard_topk(scores[v], 3))
    # One frame per row, in strictly increasing temporal order.
    assert np.all(np.diff(got[v].argmax(-1)) > 0)


def test_sigma_to_zero_gives_hard_topk():
  # Distinct scores with gaps of 1/7: noise of scale 1e-4 never swaps them.
  scores = np.random.default_rng(1).permutation(np.arange(8) / 7.0)
  scores = jnp.asarray(scores, jnp.float32)
  expected = _numpy_hard_topk(np.asarray(scores), 3)
  key = jax.random.key(0)
  small = perturbed_topk(scores, 3, num_samples=64, sigma=1e-4, rng=key)
  np.testing.assert_allclose(small, expected, atol=1e-6)
  static_zero = perturbed_topk(scores, 3, num_samples=64, sigma=0.0, rng=key)
  np.testing.assert_array_equal(static_zero, expected)
  # A traced sigma of 0 (end of the schedule) also gives the hard forward and
  # a zero gradient, not NaN.
  def loss(s, sigma):
    ind = perturbed_topk(s, 3, num_samples=64, sigma=sigma, rng=key)
    return (ind * jnp.arange(24.0).reshape(3, 8)).sum(), ind
  (_, traced_zero), grad = jax.jit(
      jax.value_and_grad(loss, has_aux=True))(scores, 0.0)
  np.testing.assert_array_equal(traced_zero, expected)
  np.testing.assert_array_equal(grad, np.zeros(8))
  with pytest.raises(ValueError):
    perturbed_topk(scores, 3, num_samples=4, sigma=-1.0, rng=key)


def test_soft_rows_are_distributions_in_temporal_order():
  scores = jnp.asarray(
      np.random.default_rng(2).uniform(size=8), jnp.float32)
  ind = np.asarray(perturbed_topk(
      scores, 4, num_samples=2000, sigma=0.3, rng=jax.random.key(1)))
  assert ind.shape == (4, 8)
  assert np.all(ind >= 0)
  np.testing.assert_allclose(ind.sum(-1), 1.0, atol=1e-5)
  # Column m is P(frame m selected): at most 1, and k frames in total.
  assert np.all(ind.sum(0) <= 1.0 + 1e-5)
  np.testing.assert_allclose(ind.sum(), 4.0, atol=1e-4)
  # The noise is strong enough that the selection is genuinely soft ...
  assert ind.max() < 0.999
  # ... and the expected position of slot j increases strictly with j.
  assert np.all(np.diff(ind @ np.arange(8)) > 0)


def test_k1_forward_and_gradient_match_quadrature():
  """k = 1: the smoothed argmax and its gradient have a 1-D integral form.

  Tolerances: the forward is a mean of n = 100k Bernoullis, standard error
  <= 0.5 / sqrt(n) = 0.0016; we allow 0.008 (5 s.e.). The custom gradient is
  a mean of n terms (g . I_n) Z_n / sigma with |g . I_n| <= 1, standard error
  <= 1 / (sigma sqrt(n)) = 0.0063; we allow 0.03 (~5 s.e.). The gradients
  are of order 0.1-1, so a wrong 1/sigma factor (x2), sign or normalisation
  fails the test.
  """
  sigma, n = 0.5, 100_000
  scores = np.array([0.1, 0.7, 0.4, 0.55])
  g = np.array([0.8, -0.6, 0.3, -0.9])  # cotangent of the single row

  def value(s):
    ind = perturbed_topk(s, 1, num_samples=n, sigma=sigma,
                         rng=jax.random.key(3))
    return (ind[0] * g).sum(), ind[0]
  (_, forward), grad = jax.jit(jax.value_and_grad(value, has_aux=True))(
      jnp.asarray(scores, jnp.float32))

  np.testing.assert_allclose(
      forward, _smoothed_argmax(scores, sigma), atol=0.008)
  h = 1e-5
  exact_grad = np.array([
      g @ (_smoothed_argmax(scores + h * e, sigma)
           - _smoothed_argmax(scores - h * e, sigma)) / (2 * h)
      for e in np.eye(4)])
  assert np.abs(exact_grad).max() > 0.2  # a non-trivial reference
  np.testing.assert_allclose(grad, exact_grad, atol=0.03)


def test_gradient_matches_finite_differences_of_smoothed_forward():
  """k = 2 of 5: custom VJP vs central differences of the MC forward.

  With common random numbers (one key for all evaluations) and a step h that
  is not tiny, the difference quotient of the Monte-Carlo forward estimates
  the derivative of the smoothed map I_sigma with bias O(h^2 / sigma^2) and
  standard error ~ sqrt(1 / (h n)) (a sample contributes +-1 / (2h) only if
  its top-k set changes within [s - h, s + h], probability O(h)); the custom
  VJP is an unbiased estimate with standard error <= |g|_max / (sigma
  sqrt(n)). With sigma = 0.5, h = 0.1, n = 200k, both are below 0.01 for
  |g| <= 1; we allow 0.05, against gradients of order 0.5.
  """
  sigma, n, h, k = 0.5, 200_000, 0.1, 2
  scores = jnp.asarray([0.2, 0.8, 0.5, 0.1, 0.6], jnp.float32)
  g = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, size=(k, 5)),
                  jnp.float32)
  key = jax.random.key(5)

  def value(s):
    return (perturbed_topk(s, k, num_samples=n, sigma=sigma, rng=key)
            * g).sum()

  @jax.jit
  def both(s):
    steps = h * jnp.concatenate([jnp.eye(5), -jnp.eye(5)])  # [10, 5]
    values = jax.vmap(value)(s + steps)  # [10]
    return jax.grad(value)(s), (values[:5] - values[5:]) / (2 * h)
  grad, fd = both(scores)
  assert np.abs(fd).max() > 0.3  # a non-trivial reference
  np.testing.assert_allclose(grad, fd, atol=0.05)


def test_jit_vmap_grad_over_videos():
  """Gradient flows from `indicators @ frames` to the scores of each video."""
  num_videos, m, k, d = 3, 6, 3, 4
  rng = np.random.default_rng(6)
  scores = jnp.asarray(rng.uniform(size=(num_videos, m)), jnp.float32)
  frames = jnp.asarray(rng.normal(size=(num_videos, m, d)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(num_videos, k, d)), jnp.float32)
  keys = jax.random.split(jax.random.key(7), num_videos)

  def video_loss(s, x, y, key, sigma):
    ind = perturbed_topk(s, k, num_samples=500, sigma=sigma, rng=key)
    return ((ind @ x - y) ** 2).sum(), ind  # ind @ x: [k, d], Eq. 3

  @jax.jit
  def batched(s, sigma):
    def total(s):
      losses, ind = jax.vmap(video_loss, in_axes=(0, 0, 0, 0, None))(
          s, frames, target, keys, sigma)
      return losses.sum(), ind
    return jax.grad(total, has_aux=True)(s)
  grads, ind = batched(scores, 0.2)  # sigma traced, as under a schedule

  single = jax.jit(jax.grad(video_loss, has_aux=True))
  for v in range(num_videos):
    grad_v, ind_v = single(scores[v], frames[v], target[v], keys[v], 0.2)
    np.testing.assert_allclose(ind[v], ind_v, atol=1e-6)
    np.testing.assert_allclose(grads[v], grad_v, rtol=1e-4, atol=1e-5)
  assert np.all(np.isfinite(grads)) and np.abs(grads).min() > 0
  # Hard mode (static sigma 0) under vmap: exact selection, zero gradient.
  hard = jax.vmap(lambda s, key: perturbed_topk(
      s, k, num_samples=500, sigma=0, rng=key))
  hard_ind = hard(scores, keys)
  for v in range(num_videos):
    np.testing.assert_array_equal(
        hard_ind[v], _numpy_hard_topk(np.asarray(scores[v]), k))
  hard_grad = jax.grad(lambda s: (hard(s, keys) @ frames).sum())(scores)
  np.testing.assert_array_equal(hard_grad, np.zeros_like(scores))


def test_straight_through_is_hard_forward_with_the_perturbed_gradient():
  scores = jnp.asarray(np.random.default_rng(3).uniform(size=12), jnp.float32)
  key = jax.random.PRNGKey(7)
  kwargs = dict(num_samples=200, sigma=0.1, rng=key)
  st = straight_through_topk(scores, 4, **kwargs)
  # Forward: exactly the numpy one-hot of the top 4 (no blend of frames).
  np.testing.assert_array_equal(np.asarray(st),
                                _numpy_hard_topk(np.asarray(scores), 4))
  # Backward: the perturbed estimate's, draw for draw.
  weights = jnp.asarray(np.random.default_rng(4).normal(size=(4, 12)),
                        jnp.float32)
  loss = lambda fn: lambda s: jnp.sum(weights * fn(s, 4, **kwargs))
  g_st = jax.grad(loss(straight_through_topk))(scores)
  g_soft = jax.grad(loss(perturbed_topk))(scores)
  np.testing.assert_allclose(g_st, g_soft, rtol=1e-6, atol=1e-7)
  assert np.abs(np.asarray(g_st)).max() > 0
