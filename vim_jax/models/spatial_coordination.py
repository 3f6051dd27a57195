"""Spatial coordination SC (paper 3.4, Eqs. 19-21).

Per (query, class prototype) pair and frame:

  o = tanh(S(Cat(F~_s, F~_q))) * max_shift * (h, w)      [T, 2] cells  Eq. 19
  F_s = masked_mean(F~_s, mask(+o)),  F_q = masked_mean(F~_q, mask(-o))  Eq. 20-21

Choices the paper leaves open (see DESIGN.md 2):

- The predictor S is a 3x3 conv on Cat(F~_s, F~_q), ReLU, mean over h, w,
  Dense(2) (zero-initialised: zero offsets, i.e. plain average pooling, at
  the start), tanh. A conv of a channel concatenation is the sum of two
  convs, one per half of the kernel; the query half is linear, so it commutes
  with the time mixing of TR: `conv_q(M_e V) = M_e conv_q(V)`. The offset is
  `(dy, dx)` in cells (`vim_jax.ops.spatial` has the sign convention): tanh
  output times `max_shift` (units of the map side) times `(h, w)`.
- Perturbations (training only): the pooled features are averaged over the
  unperturbed offset AND `perturbations` Gaussian perturbations of it (std
  `perturbation_scale` map sides); the unperturbed term keeps the training
  target tied to what evaluation uses. At evaluation: no perturbation, no rng.
- No pairwise map tensor is built: masked_mean is linear in the features, so
  the masks become pooling weights [V_q, N, T, h, w] (averaged over the
  perturbations), folded into TR's time mixing where TR came first, before
  one contraction with the per-video maps (memory: see
  `vim_jax.models.alignment`).
"""
import functools
from typing import Any, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vim_jax.ops import spatial

Dtype = Any


def pooling_weights(offsets: jax.Array, size: Tuple[int, int]) -> jax.Array:
  """Weights of `spatial.masked_mean` under `spatial.offset_mask(offsets)`.

  `masked_mean(f, mask) = sum_hw weights * f` with these weights, so pooling
  can be a contraction with the features, done after (or folded into) other
  linear maps. They are computed by pooling the one-hot basis of the h * w
  cells with `masked_mean` itself, so the two stay one implementation.

  Args:
    offsets: [..., 2] (dy, dx) in cells.
    size: (h, w), static.

  Returns:
    [..., h, w] float32 weights, summing to 1 (0 for a mask outside the map).
  """
  h, w = size
  basis = jnp.eye(h * w, dtype=jnp.float32).reshape(h, w, h * w)

  def one(offset):  # [2] -> [h, w]
    mask = spatial.offset_mask(offset, size)
    return spatial.masked_mean(basis, mask).reshape(h, w)

  flat = jax.vmap(one)(offsets.reshape(-1, 2).astype(jnp.float32))
  return flat.reshape(offsets.shape[:-1] + (h, w))


class OffsetPredictor(nn.Module):
  """Offset predictor S of spatial coordination (Eq. 19), for all pairs.

  Attributes:
    hidden: channels of the 3x3 conv.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  hidden: int = 64
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, support, query, mixing=None):
    """tanh(S(Cat(support_n, mixing_qn query_q))) for every pair (q, n).

    Args:
      support: [N, T, h, w, D] prototype maps.
      query: [V_q, T, h, w, D] query maps.
      mixing: optional [V_q, N, T, T] time mixing (M_e) of the query maps.

    Returns:
      [V_q, N, T, 2] float32 offsets (dy, dx) in [-1, 1] (units of max shift).
    """
    conv = functools.partial(nn.Conv, self.hidden, (3, 3), padding='SAME',
                             dtype=self.dtype, param_dtype=self.param_dtype)
    # Cat then conv == conv_support + conv_query (the kernel split by halves).
    hid_s = conv(name='conv_support')(support)  # [N, T, h, w, k]
    hid_q = conv(use_bias=False, name='conv_query')(query)  # [V_q, T, h, w, k]
    if mixing is None:
      hid_q = hid_q[:, None]  # [V_q, 1, T, h, w, k]
    else:
      hid_q = jnp.einsum('qnts,qshwk->qnthwk', mixing.astype(hid_q.dtype),
                         hid_q)
    hid = nn.relu(hid_s[None] + hid_q).mean(axis=(-3, -2))  # [V_q, N, T, k]
    raw = nn.Dense(2, kernel_init=nn.initializers.zeros,
                   bias_init=nn.initializers.zeros, dtype=self.dtype,
                   param_dtype=self.param_dtype, name='head')(hid)
    return jnp.tanh(raw.astype(jnp.float32))


def _pool(weights, maps, spec):
  """Pools maps with `pooling_weights` by the einsum `spec`."""
  return jnp.einsum(spec, weights.astype(maps.dtype), maps)


class SpatialCoordination(nn.Module):
  """SC of every (query, class) pair: offsets, then the shifted pooling.

  Its parameters are the predictor's, 'offsets' (`OffsetPredictor`), in the
  scope of the alignment that shares its scope.

  Attributes:
    hidden: channels of the predictor's 3x3 conv.
    max_shift: largest offset, in units of the map side.
    perturbations: perturbed offsets added in training.
    perturbation_scale: their std, in units of the map side.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  hidden: int = 64
  max_shift: float = 0.5
  perturbations: int = 4
  perturbation_scale: float = 0.1
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, proto, query, support=None, support_labels=None,
               mixing=None, *, perturb: bool, rng=None):
    """The pooled pairs.

    Args:
      proto: [N, T, h, w, D] prototype maps.
      query: [V_q, T, h, w, D] query maps.
      support: [V_s, T, h, w, D] support maps, or None (not asked for).
      support_labels: [V_s] (with `support`).
      mixing: M_e [V_q, N, T, T] of the query maps (TR came first), folded
        into the query's pooling; None: no time mixing.
      perturb: adds the perturbations (training with `perturbations`).
      rng: their key; None draws one from the 'sampler' stream.

    Returns:
      (support [V_q, V_s, T, D] or None, proto and query [V_q, N, T, D])
      pooled, the raw offsets [V_q, N, T, 2] (tanh outputs) and the offsets
      (cells).
    """
    predictor = OffsetPredictor(self.hidden, dtype=self.dtype,
                                param_dtype=self.param_dtype, name='offsets')
    raw_offsets = predictor(proto, query, mixing)
    offsets, weights_s, weights_q = self._weights(
        raw_offsets, proto.shape[-3:-1], perturb, rng)
    proto_pooled = _pool(weights_s, proto, 'qnthw,nthwd->qntd')
    support_pooled = None
    if support is not None:
      support_pooled = _pool(weights_s[:, support_labels], support,
                             'qsthw,sthwd->qstd')
    if mixing is None:
      query_pooled = _pool(weights_q, query, 'qnthw,qthwd->qntd')
    else:
      # Fold the query's masks into its time mixing: [V_q, N, T, T, h, w].
      mixing = jnp.einsum('qnthw,qnts->qntshw', weights_q, mixing)
      query_pooled = _pool(mixing, query, 'qntshw,qshwd->qntd')
    return ((support_pooled, proto_pooled, query_pooled), raw_offsets,
            offsets)

  def _weights(self, raw_offsets, size, perturb, rng):
    """Pooling weights of the support (+o) and query (-o) for every pair.

    Returns:
      offsets [V_q, N, T, 2] in cells, weights_s and weights_q
      [V_q, N, T, h, w] (means over the unperturbed and perturbed offsets).
    """
    side = jnp.array(size, jnp.float32)  # [2] cells per map side (h, w)
    offsets = raw_offsets * (self.max_shift * side)  # [V_q, N, T, 2] cells
    every = offsets[None]  # [1 + P, V_q, N, T, 2]
    if perturb:
      if rng is None:
        rng = self.make_rng('sampler')
      noise = jax.random.normal(rng, (self.perturbations,) + offsets.shape)
      every = jnp.concatenate(
          [every, offsets + noise * (self.perturbation_scale * side)])
    weights_s = pooling_weights(every, size).mean(0)
    weights_q = pooling_weights(-every, size).mean(0)
    return offsets, weights_s, weights_q
