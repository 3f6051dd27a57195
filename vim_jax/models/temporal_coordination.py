"""Temporal coordination (paper 3.4): temporal transform TT and rearrangement TR.

  TT (Eq. 16): per video, localisation net on G(maps) [T, D] ─► (a, b)
      ─► temporal_warp of the video's features at a * t + b
  TR (Eq. 17-18), per (query, class prototype) pair:
      M_e = softmax_s((W_k G(P))[t] . (W_q G(F_q))[s] / sqrt(D))   [T, T]
      F~_q = M_e (W_v F_q),  F~_s = W_v P        (W_v a 1x1 conv: keeps h, w)

`vim_jax.models.alignment.ActionAlignment` chains them with spatial
coordination (`vim_jax.models.spatial_coordination`) in either order.

Choices the paper leaves open (see DESIGN.md 2):

- TT: the localisation net is a temporal conv (kernel 3) on the pooled
  features, ReLU, mean over time, Dense(2); the Dense is zero-initialised, so
  TT starts as the exact identity warp. The warp is bounded (see
  `TemporalLocaliser`); `temporal_warp` clamps positions to the clip. The
  warp is linear in the features and commutes with the spatial mean, so the
  maps are warped only when SC needs them (`transform`).
- M_e (Eq. 17-18). Rows index the prototype's time steps, columns the query's,
  and the softmax normalises each ROW (over the query's steps): row t of
  `M_e (W_v F_q)` is a convex mix of the query's steps, the query re-ordered
  onto the prototype's time axis. `dim` is D, the width of the projections.
- Initialisation. W_k, W_q and W_v start as the identity (no bias on W_k, W_q;
  W_v's bias zero). W_v = I keeps the pretrained feature space (and the
  cosine geometry the metric relies on) untouched at the start, so TR at
  initialisation only re-mixes the query's own frames; W_k = W_q = I make M_e
  a parameter-free content alignment,
  `softmax_s(<G(P)[t], G(F_q)[s]> / sqrt(D))`: each prototype step gathers
  the query steps most similar to it. M_e cannot be the identity from content
  alone (it does not know the time index), and a random W_k, W_q would start
  from a random, often near-hard, shuffle of the query's frames; an identity
  start is the closest thing to identity-preserving.
- Locality prior (`locality`, default 1). With features of one video much
  alike (random-init or from-scratch backbones, and backgrounds that do not
  change), the content scores of Eq. 17 hardly depend on the prototype's
  step: every row of M_e is the same distribution over the query's steps
  (measured at initialisation on the procedural data: rows equal within
  0.03, mean diagonal 0.13 against 1/T = 0.125), so TR replaces the query by
  one weighted mean and throws its frame order away; trained that way TR
  alone and TC scored below ProtoNet (TC + SC: 36.4 % without the prior,
  42.0 % with it; docs/results.md). The scores therefore get
  `- beta (t - s)^2` with a learned beta = exp(log_locality) starting at
  `locality`: M_e starts near the diagonal (with beta = 1, a step away has
  weight e^-1 of the diagonal's before content) and content moves it from
  there; beta can learn to vanish. 0 gives Eq. 17 as printed.
- TR off: M_e = I and no W_v either, so with TT, TR and SC all off the
  alignment's outputs are exactly ProtoNet's pooled features (tested).
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vim_jax.ops import temporal

Dtype = Any


def _identity_init(key, shape, dtype=jnp.float32):
  """Initialiser of a [in, out] kernel to the identity (eye for non-square)."""
  del key
  return jnp.eye(*shape, dtype=dtype)


class TemporalLocaliser(nn.Module):
  """Localisation net L of the temporal transformation (Eq. 16).

  The warp is bounded: a = 1 + r tanh(u), b = r tanh(v), r = `max_warp`, with
  (u, v) from a zero-initialised head (so the identity warp at the start).
  Unbounded, the SGD of the synthetic config drove a to about -12 within a
  few hundred steps: every sample clamped to one edge frame, each video
  became a single frame and training stalled at chance.

  Attributes:
    hidden: channels of the temporal conv.
    max_warp: r, the largest change of scale |a - 1| and shift |b|.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  hidden: int = 64
  max_warp: float = 0.5
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, pooled: jax.Array) -> jax.Array:
    """[V, T, D] pooled features -> [V, 2] float32 warps (a, b)."""
    x = nn.Conv(self.hidden, (3,), padding='SAME', dtype=self.dtype,
                param_dtype=self.param_dtype, name='conv')(pooled)
    x = nn.relu(x).mean(axis=1)  # [V, hidden]
    raw = nn.Dense(2, kernel_init=nn.initializers.zeros, dtype=self.dtype,
                   param_dtype=self.param_dtype, name='head')(x)
    bounded = self.max_warp * jnp.tanh(raw.astype(jnp.float32))  # [V, 2]
    return bounded + jnp.array([1.0, 0.0], jnp.float32)


class TemporalRearrangement(nn.Module):
  """W_k, W_q, W_v of the temporal rearrangement (Eqs. 17-18).

  Attributes:
    features: D, the width of all three projections.
    locality: initial beta of the learned locality prior (see `attention`);
      0 leaves it out (Eq. 17 as printed).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  features: int
  locality: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def setup(self):
    dense = functools.partial(
        nn.Dense, self.features, kernel_init=_identity_init, dtype=self.dtype,
        param_dtype=self.param_dtype)
    self.key = dense(use_bias=False)
    self.query = dense(use_bias=False)
    self.value = dense()  # on maps [..., h, w, D] it is a 1x1 conv
    if self.locality > 0:
      self.log_locality = self.param(
          'log_locality', nn.initializers.constant(math.log(self.locality)),
          (), jnp.float32)

  def attention(self, support: jax.Array, query: jax.Array) -> jax.Array:
    """M_e of Eq. 17 for broadcastable leading dims.

    With a locality prior the scores get `- beta (t - s)^2` (t, s in frame
    steps), beta = exp(`log_locality`) learned, before the softmax.

    Args:
      support: [..., T, D] pooled prototype (the rows).
      query: [..., T, D] pooled query (the columns).

    Returns:
      [..., T, T] float32; row t (a prototype step) is a distribution over the
      query's steps.
    """
    scores = jnp.einsum('...td,...sd->...ts', self.key(support),
                        self.query(query))
    scores = scores.astype(jnp.float32) / math.sqrt(self.features)
    if self.locality > 0:
      steps = jnp.arange(scores.shape[-1], dtype=jnp.float32)
      gap = (steps[:, None] - steps[None, :]) ** 2  # [T, T]
      scores = scores - jnp.exp(self.log_locality) * gap
    return jax.nn.softmax(scores, axis=-1)

  def __call__(self, x: jax.Array) -> jax.Array:
    """W_v x for x [..., D] (pooled features or maps)."""
    return self.value(x)


def transform(localiser, pooled, maps=None):
  """TT (Eq. 16): each video's warp, applied to its features.

  Args:
    localiser: `TemporalLocaliser`; None: TT off (the identity warp).
    pooled: [V, T, D] pooled features.
    maps: [V, T, h, w, D] maps, or None (not needed: the warp commutes with
      the spatial mean).

  Returns:
    warp [V, 2] (a, b) float32, and pooled and maps warped.
  """
  warp = jnp.tile(jnp.array([[1.0, 0.0]], jnp.float32), (pooled.shape[0], 1))
  if localiser is None:
    return warp, pooled, maps
  warp = localiser(pooled)  # [V, 2]
  warp_all = jax.vmap(temporal.temporal_warp)
  pooled = warp_all(pooled, warp[:, 0], warp[:, 1])
  if maps is not None:
    maps = warp_all(maps, warp[:, 0], warp[:, 1])
  return warp, pooled, maps
