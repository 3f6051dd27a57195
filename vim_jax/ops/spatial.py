"""Smooth offset masks and masked pooling for spatial coordination (3.4.4).

Spatial coordination compares a support and a query frame only where they
overlap once one is displaced by a predicted offset (Eqs. 19-20). Both ops
here are pure `jnp` functions of ONE frame; `jax.vmap` them over frames,
pairs and perturbations.

Units and sign convention. `offset_mask` takes the offset `(dy, dx)` in
feature-map CELLS. Cell `(i, j)` is the unit square `[i, i+1) x [j, j+1)` of
an `h x w` map; the map shifted by `(dy, dx)` covers
`[dy, dy + h) x [dx, dx + w)`, and `mask[i, j]` is the area of cell `(i, j)`
that the shifted map covers. So the mask is 1 on the intersection of the map
with its shifted copy and falls linearly to 0 over one cell outside it:

- `dy = +1` zeroes the FIRST row (row 0), `dy = -1` the LAST row;
- `dx = +1` zeroes the FIRST column, `dx = -1` the LAST column;
- `dy = +0.25` gives row 0 the value 0.75; a corner cell gets the product of
  its row and column values; `sum(mask) = max(h - |dy|, 0) * max(w - |dx|, 0)`.

With the support pooled under `offset_mask(+o)` and the query under
`offset_mask(-o)` (DESIGN.md), both masks select windows of the same size and
support cell `(i + dy, j + dx)` faces query cell `(i, j)`: `o` is the
displacement of the support's content relative to the query's.

From the predictor to cells. The offset predictor ends in `tanh`, so its raw
output `o_raw` lies in [-1, 1]. The caller converts it with a configured
maximum shift in cells, `offsets = max_shift * o_raw` (for a 7 x 7 ResNet-50
stage-4 map, `max_shift = 3.5` lets the window shrink to half the map), adds
the training perturbations in cells as well, and only then calls
`offset_mask`, which is defined for any real offset.

Gradients. The mask is piecewise linear in the offset: for a fractional
offset the boundary row/column has slope -1 or +1 in `dy`/`dx`; at whole-cell
offsets JAX returns an averaged sub-gradient (`jnp.clip` splits ties); once
`|dy| >= h` (or `|dx| >= w`) the mask and its gradient are zero.
"""
from typing import Tuple

import jax
import jax.numpy as jnp


def _axis_mask(shift: jax.Array, n: int) -> jax.Array:
  """[n] covered length of cells `[i, i+1)` by the interval `[shift, shift+n)`."""
  i = jnp.arange(n, dtype=shift.dtype)  # [n]
  # min(i + 1, shift + n) - max(i, shift), clipped to [0, 1]; for n >= 1 this
  # reduces to the two distances below (the other two terms are >= 1).
  return jnp.clip(jnp.minimum(i + 1 - shift, shift + n - i), 0, 1)


def offset_mask(offsets: jax.Array, size: Tuple[int, int]) -> jax.Array:
  """Smooth mask of the intersection of an h x w map with its shifted copy.

  Args:
    offsets: [2] `(dy, dx)` in feature-map cells (see the module docstring for
      the sign convention and for how the caller maps `tanh` outputs to
      cells). Any real values; floating point.
    size: `(h, w)` of the feature map; static Python ints (close over it or
      mark it static under `jax.jit`).

  Returns:
    [h, w] mask in [0, 1], in the dtype of `offsets` (at least float32):
    `mask[i, j]` is the area of cell `(i, j)` covered by the map shifted by
    `(dy, dx)`. Zero offset gives all ones.
  """
  h, w = size
  offsets = jnp.asarray(offsets)
  offsets = offsets.astype(jnp.promote_types(offsets.dtype, jnp.float32))
  mask_y = _axis_mask(offsets[0], h)  # [h]
  mask_x = _axis_mask(offsets[1], w)  # [w]
  return mask_y[:, None] * mask_x[None, :]  # [h, w]


def masked_mean(features: jax.Array, mask: jax.Array,
                eps: float = 1e-6) -> jax.Array:
  """Mask-weighted spatial mean, Eq. 20: `sum(mask * f) / sum(mask)`.

  The denominator is floored, `max(sum(mask), eps)`, rather than offset by
  `eps`: any mask with `sum(mask) >= eps` gives the exact weighted mean (an
  all-ones mask gives `mean` over h, w), and an all-zero mask (an offset
  beyond the map) gives a zero vector with finite, zero gradients instead of
  NaN.

  Args:
    features: [h, w, C] features of one frame.
    mask: [h, w] non-negative weights, e.g. from `offset_mask`.
    eps: floor of the mask's total weight.

  Returns:
    [C] pooled features.
  """
  # Elementwise product and sum, not a matmul: full precision on every backend.
  weighted = jnp.sum(mask[:, :, None] * features, axis=(0, 1))  # [C]
  return weighted / jnp.maximum(jnp.sum(mask), eps)
