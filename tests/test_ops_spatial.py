"""Tests of `offset_mask` and `masked_mean` against hand-worked masks."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vim_jax.ops import offset_mask
from vim_jax.ops.spatial import masked_mean


def _mask(dy, dx, size):
  return np.asarray(offset_mask(jnp.array([dy, dx], jnp.float32), size))


@pytest.mark.parametrize('size', [(7, 7), (4, 6), (1, 1)])
def test_zero_offset_is_all_ones(size):
  np.testing.assert_array_equal(_mask(0.0, 0.0, size), np.ones(size))


# Hand-written expected masks on a 3 x 4 map (rows y, columns x).
_O, _I = 0.0, 1.0
_WHOLE_CELL_CASES = [
    # dy = +1: first row uncovered.
    ((1.0, 0.0), [[_O, _O, _O, _O],
                  [_I, _I, _I, _I],
                  [_I, _I, _I, _I]]),
    # dy = -1: last row uncovered.
    ((-1.0, 0.0), [[_I, _I, _I, _I],
                   [_I, _I, _I, _I],
                   [_O, _O, _O, _O]]),
    # dx = +1: first column uncovered.
    ((0.0, 1.0), [[_O, _I, _I, _I],
                  [_O, _I, _I, _I],
                  [_O, _I, _I, _I]]),
    # dx = -1: last column uncovered.
    ((0.0, -1.0), [[_I, _I, _I, _O],
                   [_I, _I, _I, _O],
                   [_I, _I, _I, _O]]),
    # dy = -2, dx = +1: only the top-right 1 x 3 block stays.
    ((-2.0, 1.0), [[_O, _I, _I, _I],
                   [_O, _O, _O, _O],
                   [_O, _O, _O, _O]]),
]


@pytest.mark.parametrize('offset, expected', _WHOLE_CELL_CASES)
def test_whole_cell_offsets(offset, expected):
  np.testing.assert_array_equal(_mask(*offset, (3, 4)), np.array(expected))


def test_fractional_offsets_hand_worked():
  # dy = +0.25: row 0 is covered 3/4.
  np.testing.assert_allclose(
      _mask(0.25, 0.0, (3, 4)),
      np.array([[.75] * 4, [1.] * 4, [1.] * 4]), atol=1e-7)
  # dy = +1.5: row 0 uncovered, row 1 half covered.
  np.testing.assert_allclose(
      _mask(1.5, 0.0, (3, 4)),
      np.array([[0.] * 4, [.5] * 4, [1.] * 4]), atol=1e-7)
  # dy = +0.5, dx = -0.5: corner cell covered a quarter.
  np.testing.assert_allclose(
      _mask(0.5, -0.5, (3, 4)),
      np.array([[.5, .5, .5, .25],
                [1., 1., 1., .5],
                [1., 1., 1., .5]]), atol=1e-7)


def test_random_offsets_range_and_covered_area():
  h, w = 5, 6
  offsets = np.asarray(
      jax.random.uniform(jax.random.key(0), (64, 2), minval=-8, maxval=8))
  masks = np.asarray(jax.vmap(lambda o: offset_mask(o, (h, w)))(offsets))
  assert masks.shape == (64, h, w)
  assert masks.min() >= 0.0 and masks.max() <= 1.0
  # Total weight = area of the intersection of the map with its shifted copy.
  area = (np.maximum(h - np.abs(offsets[:, 0]), 0)
          * np.maximum(w - np.abs(offsets[:, 1]), 0))
  np.testing.assert_allclose(masks.sum(axis=(1, 2)), area,
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('offset', [(0.3, -0.6), (-1.45, 2.2), (3.7, 0.1)])
def test_grad_wrt_offset_matches_finite_differences(offset):
  h, w = 5, 6
  with jax.enable_x64(True):
    probe = jax.random.normal(jax.random.key(1), (h, w), jnp.float64)
    features = jax.random.normal(jax.random.key(2), (h, w, 3), jnp.float64)
    mean_probe = jnp.arange(3.0, dtype=jnp.float64) + 1

    def mask_loss(o):
      return jnp.sum(offset_mask(o, (h, w)) * probe)

    def pooled_loss(o):
      return jnp.sum(masked_mean(features, offset_mask(o, (h, w)))
                     * mean_probe)

    o0 = np.array(offset, np.float64)
    step = 1e-6
    for loss in (mask_loss, pooled_loss):
      grad = np.asarray(jax.grad(loss)(jnp.asarray(o0)))
      fd = np.array([
          (loss(o0 + step * e) - loss(o0 - step * e)) / (2 * step)
          for e in np.eye(2)])
      np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
      assert np.all(np.abs(grad) > 1e-3)


def test_masked_mean_all_ones_is_mean():
  features = jax.random.normal(jax.random.key(3), (4, 5, 6))
  out = masked_mean(features, jnp.ones((4, 5)))
  np.testing.assert_allclose(np.asarray(out),
                             np.asarray(features).mean(axis=(0, 1)),
                             rtol=1e-6, atol=1e-6)


def test_masked_mean_weighted_matches_numpy():
  features = np.asarray(jax.random.normal(jax.random.key(4), (4, 5, 6)))
  mask = np.asarray(jax.random.uniform(jax.random.key(5), (4, 5)))
  expected = np.average(features.reshape(20, 6), axis=0,
                        weights=mask.reshape(20))
  np.testing.assert_allclose(np.asarray(masked_mean(features, mask)),
                             expected, rtol=1e-5, atol=1e-6)


def test_offset_beyond_map_gives_no_nan():
  features = jax.random.normal(jax.random.key(6), (4, 4, 3))

  def pooled(o):
    return masked_mean(features, offset_mask(o, (4, 4)))

  for o in ([100.0, 0.0], [0.0, -1e6], [4.0, 4.0]):
    o = jnp.array(o)
    np.testing.assert_array_equal(np.asarray(offset_mask(o, (4, 4))),
                                  np.zeros((4, 4)))
    np.testing.assert_array_equal(np.asarray(pooled(o)), np.zeros(3))
    grad = jax.jacobian(pooled)(o)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_jit_vmap_over_frames():
  h, w = 3, 4
  offsets = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.5, -0.5], [-2.0, 1.0]])
  masks = jax.jit(jax.vmap(functools.partial(offset_mask, size=(h, w))))(
      offsets)
  static = jax.jit(offset_mask, static_argnames='size')(offsets[2], size=(h, w))
  for k in range(4):
    np.testing.assert_allclose(np.asarray(masks[k]),
                               _mask(*np.asarray(offsets[k]), (h, w)),
                               atol=1e-7)
  np.testing.assert_allclose(np.asarray(static), np.asarray(masks[2]))
  features = jax.random.normal(jax.random.key(7), (4, h, w, 5))
  pooled = jax.jit(jax.vmap(masked_mean))(features, masks)
  assert pooled.shape == (4, 5)
  np.testing.assert_allclose(np.asarray(pooled[0]),
                             np.asarray(features[0]).mean(axis=(0, 1)),
                             rtol=1e-6, atol=1e-6)
  # Row 0 is dropped under dy = +1.
  np.testing.assert_allclose(np.asarray(pooled[1]),
                             np.asarray(features[1])[1:].mean(axis=(0, 1)),
                             rtol=1e-6, atol=1e-6)
