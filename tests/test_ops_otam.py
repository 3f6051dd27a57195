"""Tests of `otam_distance`, `otam_cost` and `bi_mhm` against numpy loops."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vim_jax.ops import bi_mhm
from vim_jax.ops import otam_cost
from vim_jax.ops import otam_distance


def numpy_otam(distances, smoothing=0.1, hard=False):
  """Independent reference: the recurrence as a double loop, in float64.

  Args:
    distances: [Tq, Ts] frame distances of one pair of videos.
    smoothing: soft-min temperature.
    hard: use min instead of the soft-min (plain DTW over the same paths).

  Returns:
    The cost of the padded matrix's bottom-right cell.
  """
  d = np.pad(np.asarray(distances, np.float64), [(0, 0), (1, 1)])
  t_q, width = d.shape

  def softmin(*xs):
    if hard:
      return min(xs)
    xs = -np.array(xs) / smoothing
    top = xs.max()
    return -smoothing * (top + math.log(np.exp(xs - top).sum()))

  cum = np.zeros_like(d)
  for j in range(1, width):
    cum[0, j] = cum[0, j - 1] + d[0, j]
  for i in range(1, t_q):
    for j in range(1, width):
      if j in (1, width - 1):
        prior = softmin(cum[i - 1, j - 1], cum[i - 1, j], cum[i, j - 1])
      else:
        prior = softmin(cum[i - 1, j - 1], cum[i, j - 1])
      cum[i, j] = d[i, j] + prior
  return cum[-1, -1]


def numpy_bi_mhm(distances):
  d = np.asarray(distances, np.float64)
  return d.min(1).mean() + d.min(0).mean()


def _random_distances(seed, shape):
  # Cosine distances lie in [0, 2].
  return np.random.default_rng(seed).uniform(0, 2, shape).astype(np.float32)


def _loop(fn, distances):
  """fn over the trailing [Tq, Ts] matrices of a batch, numpy float64."""
  flat = distances.reshape((-1,) + distances.shape[-2:])
  return np.array([fn(m) for m in flat]).reshape(distances.shape[:-2])


@pytest.mark.parametrize('shape', [
    (8, 8), (1, 5), (5, 1), (3, 6), (7, 4), (2, 3, 5, 6), (4, 1, 2)])
@pytest.mark.parametrize('smoothing', [0.1, 0.5])
def test_matches_numpy_loop(shape, smoothing):
  d = _random_distances(sum(shape), shape)
  got = otam_distance(jnp.asarray(d), smoothing)
  assert got.shape == shape[:-2]
  expected = _loop(lambda m: numpy_otam(m, smoothing), d)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_cost_is_sum_of_both_directions():
  d = _random_distances(0, (3, 5, 7))
  expected = _loop(numpy_otam, d) + _loop(
      numpy_otam, np.swapaxes(d, -1, -2))
  np.testing.assert_allclose(np.asarray(otam_cost(jnp.asarray(d))), expected,
                             rtol=1e-5, atol=1e-5)


def test_hand_worked_two_by_two():
  a, b, c, e = 0.2, 0.5, 0.4, 0.1
  lam = 0.1

  def sm(*xs):
    return -lam * math.log(sum(math.exp(-x / lam) for x in xs))

  # Padded rows [0, a, b, 0] and [0, c, e, 0]; the first row is a running sum.
  row0 = [0.0, a, a + b, a + b]
  c1 = c + sm(0.0, row0[1], 0.0)       # three predecessors, C[1, 0] = 0
  c2 = e + sm(row0[1], c1)             # two: diagonal and left
  c3 = 0.0 + sm(row0[2], row0[3], c2)  # three, in the padded last column
  got = float(otam_distance(jnp.array([[a, b], [c, e]]), lam))
  np.testing.assert_allclose(got, c3, rtol=1e-6)
  # The hard path: a, then diagonally e, then out through the padding.
  hard = float(otam_distance(jnp.array([[a, b], [c, e]]), 1e-4))
  np.testing.assert_allclose(hard, a + e, atol=1e-3)


def test_jit_and_vmap_agree_with_eager():
  d = jnp.asarray(_random_distances(1, (4, 6, 5)))
  eager = otam_distance(d)
  np.testing.assert_allclose(np.asarray(jax.jit(otam_distance)(d)),
                             np.asarray(eager), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.vmap(otam_distance)(d)),
                             np.asarray(eager), rtol=1e-6)
  # A traced smoothing, one per matrix.
  lams = jnp.array([0.05, 0.1, 0.2, 0.4])
  got = jax.jit(jax.vmap(otam_distance))(d, lams)
  for k in range(4):
    np.testing.assert_allclose(
        float(got[k]), numpy_otam(np.asarray(d[k]), float(lams[k])),
        rtol=1e-5, atol=1e-5)


def test_gradient_matches_central_differences():
  d = _random_distances(2, (5, 6)).astype(np.float64)
  grad = np.asarray(jax.grad(lambda x: otam_distance(x, 0.3))(
      jnp.asarray(d, jnp.float32)))
  assert np.all(np.isfinite(grad))
  # Every cell's weight is the share of the soft paths through it, in [0, 1].
  assert grad.min() >= -1e-6 and grad.max() <= 1 + 1e-6
  step = 1e-5
  for (i, j) in [(0, 0), (1, 2), (2, 3), (4, 5), (3, 0)]:
    up, down = d.copy(), d.copy()
    up[i, j] += step
    down[i, j] -= step
    fd = (numpy_otam(up, 0.3) - numpy_otam(down, 0.3)) / (2 * step)
    np.testing.assert_allclose(grad[i, j], fd, rtol=1e-3, atol=1e-4)


def test_gradient_of_batched_cost_is_finite_at_small_smoothing():
  d = jnp.asarray(_random_distances(3, (2, 3, 8, 8)))
  grad = jax.jit(jax.grad(lambda x: otam_cost(x, 1e-3).sum()))(d)
  assert grad.shape == d.shape
  assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize('shape', [(8, 8), (4, 7), (6, 3)])
def test_small_smoothing_approaches_hard_dtw(shape):
  d = _random_distances(4, shape)
  hard = numpy_otam(d, hard=True)
  lam = 1e-3
  soft = float(otam_distance(jnp.asarray(d), lam))
  # Each soft-min is below its hard min by at most lam * log 3, and errors
  # add along the rows and columns.
  bound = shape[0] * (shape[1] + 2) * lam * math.log(3)
  assert soft <= hard + 1e-5
  assert hard - soft <= bound


@pytest.mark.parametrize('shape', [(8, 8), (3, 5), (2, 4, 6)])
def test_bi_mhm_matches_numpy(shape):
  d = _random_distances(5, shape)
  got = bi_mhm(jnp.asarray(d))
  assert got.shape == shape[:-2]
  np.testing.assert_allclose(np.asarray(got), _loop(numpy_bi_mhm, d),
                             rtol=1e-6)
  # Set-based: shuffling either video's frames does not change it.
  perm = np.random.default_rng(0).permutation(shape[-1])
  np.testing.assert_allclose(np.asarray(bi_mhm(jnp.asarray(d[..., perm]))),
                             np.asarray(got), rtol=1e-6)
