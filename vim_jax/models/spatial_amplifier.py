"""Spatial amplifier SA of the video sampler (paper 3.3.3, Eqs. 7-11).

For each frame TS selected, its scan maps f [h w, c]:

  alpha = f f^T / sqrt(hw); f' = alpha f                           Eq. 7
  M_s = mean_c(w_s[c] f'[c]) ─► min-max to [0, 1]                  Eq. 8
  ─► inverse-CDF sampling grid ─► the frame resampled at the grid  Eq. 9-11

w_s comes from the task-adaptive learner (`vim_jax.models.task_adaptive`).
SA has no parameters of its own.

Choices the paper leaves open (see DESIGN.md 2):

- Eq. 7 has no softmax on alpha and none is added. The saliency map is
  min-max normalised before it is used, and the normalised map does not
  change when the raw map is scaled by a positive factor (nor does its
  gradient with respect to w_s), so the large magnitude of f f^T (a sum over
  h w positions of products of c activations) does no harm. A softmax is not
  scale-free: its sharpness would depend on that magnitude (it would need a
  temperature, and rows over c = 1024 channels can saturate to one-hot).
  Without it the product also reassociates: w_s^T (f f^T) f =
  (w_s^T f)(f^T f), O(c (hw)^2) instead of O(c^2 hw)
  (`channel_attention_saliency`). SA runs in float32.
- The saliency map is min-max normalised per frame with the guarded range
  of `vim_jax.ops.minmax_normalise`: a constant map gives all zeros, i.e.
  the identity grid.
- `saliency_floor`: the sampling density is the saliency plus a uniform
  floor (`vim_jax.ops.saliency_grid`), so no region is squeezed to nothing.
- `spatial_prior`: SA's half of the sampler's uniform prior (see
  `vim_jax.models.sampler`): in training SA amplifies by
  `(1 - lambda) a + lambda` instead of the min-max saliency a; a constant
  map is the identity warp.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.models import temporal_selector
from vim_jax.ops import saliency as saliency_ops
from vim_jax.ops import vectors


def channel_attention_saliency(maps, w_s):
  """Raw saliency of Eq. 7-8 from scan maps: mean_c(w_s[c] (alpha f)[c]).

  With F = f as [c, hw], alpha = F F^T / sqrt(hw), F' = alpha F and
  M_s = (1/c) w_s^T F'. Reassociated as (w_s^T F)(F^T F) / (c sqrt(hw)):
  the same numbers, but never forms the c x c matrix.

  Args:
    maps: [..., h, w, c] scan feature maps.
    w_s: [c] channel weights.

  Returns:
    [..., h, w] float32 saliency, not normalised.
  """
  *lead, h, w, c = maps.shape
  f = maps.astype(jnp.float32).reshape(*lead, h * w, c)  # [..., hw, c]
  hp = jax.lax.Precision.HIGHEST
  u = jnp.einsum('...pc,c->...p', f, w_s.astype(jnp.float32), precision=hp)
  gram = jnp.einsum('...pc,...qc->...pq', f, f, precision=hp)  # [..., hw, hw]
  m = jnp.einsum('...p,...pq->...q', u, gram, precision=hp)
  return (m / (c * np.sqrt(h * w))).reshape(*lead, h, w)


def amplify(frames, saliency, *, floor):
  """Spatial amplification of frames by their saliency (Eq. 9-11).

  Args:
    frames: [..., H, W, C] frames.
    saliency: [..., h, w] saliency in [0, 1], one map per frame (any h, w).
    floor: uniform floor of `saliency_grid`.

  Returns:
    [..., H, W, C] resampled frames; a constant map returns the frames
    (identity grid).
  """
  lead = frames.shape[:-3]
  out_hw = frames.shape[-3:-1]
  f = frames.reshape((-1,) + frames.shape[-3:])
  s = saliency.reshape((-1,) + saliency.shape[-2:])
  grids = jax.vmap(
      lambda m: saliency_ops.saliency_grid(m, out_hw, floor=floor))(s)
  out = jax.vmap(saliency_ops.resample)(f, grids)
  return out.reshape(lead + out.shape[1:])


class SpatialAmplifier(nn.Module):
  """SA (Eq. 7-11) of the frames TS selected.

  Attributes:
    saliency_floor: uniform floor of the sampling density.
    spatial_prior: mixes the uniform prior into the saliency in training.
  """
  saliency_floor: float = 0.05
  spatial_prior: bool = False

  def __call__(self, maps, frames, selection, w_s, *, train, prior):
    """Saliency and amplified frames.

    Args:
      maps: [V, M, h, w, c] scan maps of the dense frames.
      frames: [V, T, H, W, 3] the selected frames.
      selection: `temporal_selector.Selection` that picked them (and picks
        their maps).
      w_s: [c] channel weights.
      train: with `spatial_prior`, mixes the prior into the saliency.
      prior: its weight lambda.

    Returns:
      saliency [V, T, h, w] in [0, 1] and the amplified frames
      [V, T, H, W, 3] float32.
    """
    maps_sel = temporal_selector.select(maps, selection)  # [V, T, h, w, c]
    raw = channel_attention_saliency(maps_sel, w_s)  # [V, T, h, w]
    saliency = vectors.minmax_normalise(raw, axis=(2, 3))
    if train and self.spatial_prior:
      # The prior's spatial half: a constant map is the identity warp.
      saliency = (1.0 - prior) * saliency + prior
    frames = amplify(frames.astype(jnp.float32), saliency,
                     floor=self.saliency_floor)
    return saliency, frames
