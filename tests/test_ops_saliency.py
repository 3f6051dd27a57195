"""Tests of inverse-transform sampling (vim_jax/ops/saliency.py)."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from vim_jax.ops import resample
from vim_jax.ops import saliency_grid

FLOOR = 0.05  # the default floor of saliency_grid
# Jitted once per shape: op-by-op dispatch of these small graphs is slower.
grid_fn = jax.jit(saliency_grid, static_argnums=1)
resample_fn = jax.jit(resample)


def _pixel_centres(n):
  """Normalised coordinates of the pixel centres of an axis of n pixels."""
  return (2 * np.arange(n) + 1) / n - 1


def _numpy_axis_coords(profile, n_out, floor=FLOOR):
  """Reference inverse CDF (float64): np.interp on the cell boundaries."""
  density = np.maximum(profile, 0) + floor
  cdf = np.concatenate([[0], np.cumsum(density / density.sum())])  # [n + 1]
  boundaries = np.linspace(-1, 1, len(profile) + 1)  # [n + 1]
  return np.interp((np.arange(n_out) + 0.5) / n_out, cdf, boundaries)


def _pixels(coord, n):
  """Normalised coordinates to pixel units (convention of saliency.py)."""
  return (coord + 1) * n / 2 - 0.5


def test_uniform_zero_and_constant_maps_give_identity():
  frame = np.random.default_rng(0).uniform(size=(12, 16, 3)).astype(np.float32)
  yy, xx = np.meshgrid(_pixel_centres(12), _pixel_centres(16), indexing='ij')
  for map_hw in [(8, 8), (12, 16), (3, 4)]:
    for value in [1.0, 0.0, 0.37]:
      saliency = jnp.full(map_hw, value, jnp.float32)
      grid = grid_fn(saliency, (12, 16))
      assert grid.shape == (12, 16, 2)
      np.testing.assert_allclose(grid[..., 0], yy, atol=1e-6)
      np.testing.assert_allclose(grid[..., 1], xx, atol=1e-6)
      out = resample_fn(jnp.asarray(frame), grid)
      assert out.shape == frame.shape
      np.testing.assert_allclose(out, frame, atol=1e-6)


def test_peaked_map_amplifies_its_region():
  # 8x8 map, salient block at rows 2-3 and columns 4-5: in a 32x32 frame that
  # is rows 8-15 (y in [-0.5, 0)) and columns 16-23 (x in [0, 0.5)).
  saliency = np.zeros((8, 8), np.float32)
  saliency[2:4, 4:6] = 1.0
  grid = np.asarray(grid_fn(jnp.asarray(saliency), (32, 32)))
  ys, xs = grid[:, 0, 0], grid[0, :, 1]  # separable grid
  np.testing.assert_allclose(
      ys, _numpy_axis_coords(saliency.max(1), 32), atol=1e-5)
  np.testing.assert_allclose(
      xs, _numpy_axis_coords(saliency.max(0), 32), atol=1e-5)
  # Hand count: the block holds (1 + f) / ((1 + f) + 3 f) = 0.875 of the mass
  # of each profile at f = 0.05, so 28 of 32 output rows (columns) sample it,
  # against its 8 input rows (columns).
  assert np.sum((ys >= -0.5) & (ys < 0.0)) == 28
  assert np.sum((xs >= 0.0) & (xs < 0.5)) == 28
  # Both axes amplified at the block's centre: output pixels per input pixel.
  assert np.all(np.diff(_pixels(xs, 32))[17:25] < 1.0 / 3.0)


def test_grid_is_monotone_separable_and_inside_the_frame():
  saliency = jnp.asarray(
      np.random.default_rng(1).uniform(size=(6, 9)), jnp.float32)
  grid = np.asarray(grid_fn(saliency, (20, 24)))
  np.testing.assert_allclose(
      grid[:, 0, 0], _numpy_axis_coords(np.asarray(saliency).max(1), 20),
      atol=1e-5)
  np.testing.assert_allclose(
      grid[0, :, 1], _numpy_axis_coords(np.asarray(saliency).max(0), 24),
      atol=1e-5)
  assert np.all(np.diff(grid[..., 0], axis=0) >= 0)
  assert np.all(np.diff(grid[..., 1], axis=1) >= 0)
  np.testing.assert_array_equal(grid[..., 0], grid[:, :1, 0].repeat(24, 1))
  np.testing.assert_array_equal(grid[..., 1], grid[:1, :, 1].repeat(20, 0))
  assert np.all(np.abs(grid) <= 1.0)


def test_resample_matches_scipy_bilinear():
  rng = np.random.default_rng(2)
  frame = rng.uniform(size=(9, 11, 2)).astype(np.float32)
  # Random grid reaching outside the frame, to exercise edge clamping.
  grid = rng.uniform(-1.3, 1.3, size=(7, 6, 2)).astype(np.float32)
  out = np.asarray(resample_fn(jnp.asarray(frame), jnp.asarray(grid)))
  coords = np.stack([_pixels(grid[..., 0].astype(np.float64), 9),
                     _pixels(grid[..., 1].astype(np.float64), 11)])
  for c in range(2):
    expected = ndimage.map_coordinates(
        frame[..., c].astype(np.float64), coords, order=1, mode='nearest')
    np.testing.assert_allclose(out[..., c], expected, atol=1e-5)


def test_vmap_over_frames():
  rng = np.random.default_rng(3)
  frames = jnp.asarray(rng.uniform(size=(3, 10, 12, 3)), jnp.float32)
  saliency = jnp.asarray(rng.uniform(size=(3, 4, 4)), jnp.float32)
  amplify = lambda s, f: resample_fn(f, grid_fn(s, (8, 14)))
  batched = jax.jit(jax.vmap(amplify))(saliency, frames)
  assert batched.shape == (3, 8, 14, 3)
  for b in range(3):
    np.testing.assert_allclose(
        batched[b], amplify(saliency[b], frames[b]), atol=1e-6)


def test_gradients_are_finite_and_match_finite_differences():
  rng = np.random.default_rng(4)
  frame = jnp.asarray(rng.uniform(size=(10, 12, 2)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(10, 12, 2)), jnp.float32)

  def loss(saliency, frame):
    return (resample_fn(frame, grid_fn(saliency, (10, 12))) * weights).sum()
  grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
  random_map = rng.uniform(size=(5, 6)).astype(np.float32)
  for saliency in [random_map, np.zeros((5, 6), np.float32),
                   np.ones((5, 6), np.float32)]:
    grad_map, grad_frame = grad_fn(jnp.asarray(saliency), frame)
    assert np.all(np.isfinite(grad_map)) and np.all(np.isfinite(grad_frame))
    assert np.abs(grad_map).max() > 0

  # Directional derivative of the grid w.r.t. the map, central differences
  # (the grid is smooth in the map away from ties of the max and cell
  # changes, which a step of 1e-3 on a random map does not reach).
  direction = rng.normal(size=(5, 6)).astype(np.float32)
  grid = lambda s: grid_fn(s, (10, 12))
  _, tangent = jax.jvp(grid, (jnp.asarray(random_map),),
                       (jnp.asarray(direction),))
  h = 1e-3
  fd = (np.asarray(grid(jnp.asarray(random_map + h * direction)), np.float64)
        - np.asarray(grid(jnp.asarray(random_map - h * direction)))) / (2 * h)
  assert np.abs(fd).max() > 0.05
  np.testing.assert_allclose(tangent, fd, atol=2e-3)

  # resample is linear in the frame: its frame gradient is the adjoint,
  # <grad, delta> = <weights, resample(delta)> for any delta.
  grad_map, grad_frame = grad_fn(jnp.asarray(random_map), frame)
  delta = jnp.asarray(rng.normal(size=(10, 12, 2)), jnp.float32)
  np.testing.assert_allclose(
      (grad_frame * delta).sum(), loss(jnp.asarray(random_map), delta),
      rtol=1e-4)
