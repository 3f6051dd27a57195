"""Saliency-driven resampling of frames by inverse-transform sampling (3.3.3).

The saliency map is reduced to one profile per axis by a max (Eq. 9), each
profile becomes a distribution over its axis and its CDF (Eq. 10), and output
pixel i of an axis with n_out pixels samples the source coordinate
cdf^{-1}((i + 0.5) / n_out) (Eq. 11). Salient regions take a larger share of
the output pixels, so they are amplified; nothing is cropped away.

Coordinate convention (shared by `saliency_grid` and `resample`): normalised
coordinates in [-1, 1] along each axis, -1 and 1 being the outer edges of the
first and last pixels (the "align_corners=False" convention). Pixel p of an
axis of n pixels has its centre at (2p + 1) / n - 1. A grid therefore does not
depend on the resolution of the frame it is applied to, and a saliency map of
any size applies to a frame of any size: the map is read as a piecewise-constant
density over its cells, so no upsampling to the frame size is needed (upsample
it first if a smoother density is wanted).

With this convention the inverse CDF, interpolated linearly between the CDF
values at cell boundaries, maps output pixel centres to input pixel centres
when the map is uniform: a uniform (or all-zero, or constant) map gives the
identity grid, and `resample` then returns the frame unchanged when the output
size equals the frame size (up to float32 rounding of the coordinates: about
1e-7 of the value range for frames of ~16 pixels, 1e-5 at 224 pixels).
"""
import jax.numpy as jnp
import numpy as np


def _inverse_cdf_coords(profile, n_out, floor):
  """Source coordinates of n_out output pixels for a 1-D saliency profile.

  Args:
    profile: [n] saliency along one axis (negative values count as 0).
    n_out: static int, number of output pixels.
    floor: uniform floor added to the profile before normalising.

  Returns:
    [n_out] normalised source coordinates in [-1, 1], non-decreasing.
  """
  n = profile.shape[0]
  density = jnp.maximum(profile, 0.0) + floor  # [n], > 0
  # Work in cell units: cell c spans [c, c + 1]. Cell masses r have mean 1;
  # the mean is taken as min + mean(density - min) so that a constant profile
  # gives r == 1 exactly, the cumulative masses are exact integers and the
  # identity grid comes out to rounding of the output positions alone.
  low = density.min()
  r = density / (low + (density - low).mean())  # [n]
  cum = jnp.concatenate([jnp.zeros((1,), r.dtype), jnp.cumsum(r)])  # [n + 1]
  # Quantile (i + 0.5) / n_out of output pixel i, times the total mass n.
  target = jnp.asarray(
      (2 * np.arange(n_out) + 1) * n / (2 * n_out), r.dtype)  # [n_out]
  cell = jnp.clip(jnp.searchsorted(cum, target, side='right') - 1, 0, n - 1)
  # Linear inverse of the CDF within the cell: position in cell units.
  x = cell + (target - cum[cell]) / r[cell]  # [n_out], in [0, n]
  return jnp.clip(2.0 * x / n - 1.0, -1.0, 1.0)


def saliency_grid(saliency, out_hw, *, floor=0.05):
  """Separable sampling grid that amplifies the salient regions (Eq. 9-11).

  Args:
    saliency: [h, w] non-negative saliency of one frame, at any resolution.
      The floor is absolute, so the map is expected in [0, 1] (the sampler
      min-max normalises it, DESIGN 2); negative values are clipped to 0.
    out_hw: static (H_out, W_out), the size of the resampled frame.
    floor: uniform floor (> 0) added to each axis profile before it is
      normalised. It keeps the density positive (an all-zero or constant map
      gives the identity grid, never NaN) and bounds how much non-salient
      regions are shrunk: with profile values in [0, 1], a region is shrunk
      at most by a factor (mean(profile) + floor) / floor.

  Returns:
    [H_out, W_out, 2] grid of (y, x) normalised source coordinates in
    [-1, 1] (see the module docstring); y depends only on the row and x only
    on the column, each non-decreasing.
  """
  if floor <= 0:
    raise ValueError(f'floor must be > 0, got {floor}.')
  out_h, out_w = out_hw
  profile_x = saliency.max(axis=0)  # [w], max over rows for each column
  profile_y = saliency.max(axis=1)  # [h], max over columns for each row
  xs = _inverse_cdf_coords(profile_x, out_w, floor)  # [W_out]
  ys = _inverse_cdf_coords(profile_y, out_h, floor)  # [H_out]
  grid_y = jnp.broadcast_to(ys[:, None], (out_h, out_w))
  grid_x = jnp.broadcast_to(xs[None, :], (out_h, out_w))
  return jnp.stack([grid_y, grid_x], axis=-1)  # [H_out, W_out, 2]


def _to_pixel(coord, n):
  """Normalised coordinates to pixel units, clamped to the pixel centres."""
  p = (coord + 1.0) * (n / 2) - 0.5
  # jnp.where rather than jnp.clip: gradient 1 up to and at the end points
  # (jnp.clip would halve it at the identity grid's first and last pixels).
  return jnp.where(p < 0.0, 0.0, jnp.where(p > n - 1.0, n - 1.0, p))


def _bilinear_taps(p, n):
  """Left tap, right tap and right weight of linear interpolation at p."""
  # The left tap stops at n - 2 so that p = n - 1 interpolates from the left
  # (weight 1 on the last pixel, finite one-sided gradient).
  i0 = jnp.clip(jnp.floor(p), 0, max(n - 2, 0)).astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, n - 1)
  return i0, i1, (p - i0)[..., None]


def resample(frame, grid):
  """Bilinear sampling of a frame at a grid, with edge clamping.

  Points outside the frame take the value of the nearest edge (coordinates
  clamped to the outer pixel centres). Differentiable with respect to `frame`
  and `grid`; the gradient with respect to a clamped coordinate is zero.

  Args:
    frame: [H, W, C] image.
    grid: [H_out, W_out, 2] (y, x) source coordinates, normalised to [-1, 1]
      as in the module docstring (e.g. from `saliency_grid`).

  Returns:
    [H_out, W_out, C] resampled frame, in the dtype of `frame` if it is a
    float type, else float32.
  """
  if not jnp.issubdtype(frame.dtype, jnp.floating):
    frame = frame.astype(jnp.float32)
  h, w = frame.shape[:2]
  py = _to_pixel(grid[..., 0].astype(frame.dtype), h)  # [H_out, W_out]
  px = _to_pixel(grid[..., 1].astype(frame.dtype), w)
  y0, y1, wy = _bilinear_taps(py, h)  # wy [H_out, W_out, 1]
  x0, x1, wx = _bilinear_taps(px, w)
  top = frame[y0, x0] * (1.0 - wx) + frame[y0, x1] * wx  # [H_out, W_out, C]
  bottom = frame[y1, x0] * (1.0 - wx) + frame[y1, x1] * wx
  return top * (1.0 - wy) + bottom * wy
