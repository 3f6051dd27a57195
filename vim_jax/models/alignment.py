"""Spatial-temporal action alignment (paper 3.4, Eqs. 15-21), cost (Eq. 35).

One episode's backbone maps go in; for every (query, class) pair the module
returns the query's and the class prototype's aligned frame features, ready for
the frame-wise cosine metric (Eq. 23):

  maps [V, T, h, w, C] ─► (1x1 reduction to D = `channels`, shared)
    TT  (Eq. 16): per video, localisation net on G(maps) [T, D] ─► (a, b)
        ─► temporal_warp of the video's features at a * t + b
    prototypes: class_prototypes of the warped support ─► P [N, T, h, w, D]
    TR  (Eq. 17-18), per pair:
        M_e = softmax_s((W_k G(P))[t] . (W_q G(F_q))[s] / sqrt(D))   [T, T]
        F~_q = M_e (W_v F_q),  F~_s = W_v P        (W_v a 1x1 conv: keeps h, w)
    SC  (Eq. 19-21), per pair and frame:
        o = tanh(S(Cat(F~_s, F~_q))) * max_shift * (h, w)      [T, 2] cells
        F_s = masked_mean(F~_s, mask(+o)),  F_q = masked_mean(F~_q, mask(-o))
  ─► query_aligned, prototype_aligned [V_q, N, T, D]

Temporal coordination (TT, TR) is `vim_jax.models.temporal_coordination`,
spatial coordination (SC) `vim_jax.models.spatial_coordination`;
`ActionAlignment` chains them. Its parts share its parameter scope
(`flax.linen.share_scope`), so the parameter tree is 'reduce', 'localiser',
'rearrange' and 'offsets' whatever module holds a parameter.

Readings of the paper (the choices it leaves open). TT's and TR's are in
`vim_jax.models.temporal_coordination`, SC's in
`vim_jax.models.spatial_coordination`; those of the chain:

- order='spatial_first' (Table 14): SC runs on the warped but not yet
  rearranged maps (offsets from Cat(P, F_q), no W_v), then TR runs on the
  pair's SC-pooled features: M_e from W_k, W_q of those [T, D] features, and
  `query_aligned = M_e W_v pooled_q`, `prototype_aligned = W_v pooled_s`.
- Support videos (`support_videos`; for the metric heads of Table 3, which
  compare a query with each support video, not with a prototype): each
  support video goes through what its class prototype goes through, its
  own TT warp, W_v, and SC's window (+o) of the (query, class) pair, so the
  prototype is the mean of its class's videos so aligned, and at 1-shot
  the video is the prototype. Offsets and M_e stay those of the pair.
- Alignment cost (Eq. 35), per (query, class) pair [V_q, N]:
  `|1 - a_q| + |b_q| + ||M_e - I||_F + ||o||_F`, with (a_q, b_q) the QUERY's
  warp (the paper computes the cost "for each input video"; the support
  videos' warps are in aux['warp']), ||.||_2 of the T x T matrix read as the
  Frobenius norm, and o [T, 2] the unperturbed tanh output (the paper
  normalises O to [-1, 1]). Zero for a module that is off.

Memory. No pairwise map tensor [V_q, N, T, h, w, D] is ever built. masked_mean
is linear in the features, so the SC masks become pooling weights
[V_q, N, T, h, w] (averaged over perturbations), and with TR they are folded
into the time mixing, [V_q, N, T, T, h, w], before one contraction with the
per-query maps [V_q, T, h, w, D]. The pairwise tensors left are the offset
predictor's hidden maps [V_q, N, T, h, w, k] (k = `offset_hidden`, 64) and
those weights. For one 5-way 5-shot episode with 5 queries per class at
224 x 224 on ResNet-50 (V_q = 25, N = 5, T = 8, h = w = 7), naive pairwise
maps would hold 25 * 5 * 8 * 49 * D = 49,000 D numbers: 401 MB in float32 for
D = 2048 (201 MB for 1024, 100 MB for 512), twice that for the SC input
Cat(F~_s, F~_q), times (1 + perturbations) if pooled per perturbation, and
all of it kept for the backward pass. Here the pairwise tensors take 12.5 MB
(hidden maps) + 1.6 MB (mixing weights) whatever D is; what grows with D are
the per-video maps (80 MB for the episode's 50 videos at D = 2048; TT, W_v
and their gradients each hold a copy) and the D x D projections W_k, W_q, W_v
(16.8 MB each at D = 2048). Measured, XLA CPU `compile().memory_analysis()`
of the jitted value-and-gradient (params and input maps) of a cosine loss,
all modules on, 4 perturbations, float32, for that episode:

  channels        params    temp bytes
  0 (D = 2048)    15.3 M    1047 MB   (all off: 164 MB, the concat + grad)
  1024             6.6 M     673 MB
  512              2.5 M     440 MB

next to ResNet-50's own training activations for the episode's 400 frames
(several GB). So `channels = 0` (keep 2048, as the paper) is affordable;
`channels = 1024` saves ~0.4 GB per episode and 9 M parameters if memory is
tight.
"""
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vim_jax.models import protonet
from vim_jax.models import spatial_coordination
from vim_jax.models import switches
from vim_jax.models import temporal_coordination

Dtype = Any
# A bounded output counts as at its bound from this fraction of the bound
# on (aux 'warps_at_bound', 'offsets_at_bound'): the runaway L_inter drives
# TT and SC there (docs/results.md, Table 4).
AT_BOUND = 0.99
# The two chains of TR and SC (`config.model.alignment.order`, Table 14).
ORDERS = ('temporal_first', 'spatial_first')


def _frobenius(x: jax.Array) -> jax.Array:
  """[..., m, n] -> [...] Frobenius norms; 0 with a zero gradient at 0."""
  squares = jnp.sum(x ** 2, axis=(-2, -1))
  positive = squares > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)


class _Episode(NamedTuple):
  """One episode's features at one stage of the alignment.

  Per video ([.., T, D] pooled or [.., T, h, w, D] maps) before the pairs
  are formed; [V_q, N, T, D] per (query, class) pair after (the support
  [V_q, V_s, T, D], or [V_s, T, D] where it has no pair dependence).

  Attributes:
    support: the support videos, or None (not asked for).
    proto: the class prototypes.
    query: the queries.
  """
  support: Optional[jax.Array]
  proto: jax.Array
  query: jax.Array

  def map(self, fn) -> '_Episode':
    """fn applied to every feature (None stays None)."""
    return _Episode(*(None if x is None else fn(x) for x in self))


class ActionAlignment(nn.Module):
  """Spatial-temporal action alignment of one episode (paper 3.4).

  See the module docstring for the equations and the choices made. The
  fields are `config.model.alignment`'s of the same names (documented in
  configs/default.py; `vim_jax.models.build.alignment` makes one from it):
  transform (TT), rearrange (TR), spatial (SC), order, test_transform /
  test_rearrange / test_spatial (None: as in training), channels,
  max_shift, perturbations, perturbation_scale, locality, max_warp,
  localisation_hidden and offset_hidden.

  Parameters exist for every module that is on in training OR at test time,
  whatever mode `init` runs in, so test-time isolation (Table 17) can switch a
  module on or off at evaluation. Training with SC perturbations needs a
  'sampler' rng; evaluation needs none.

  Memory: see the module docstring (about 1 GB of temporaries for a 5-way
  5-shot episode with 25 queries at D = 2048, forward and backward).

  TT runs first (`temporal_coordination.transform`); `_temporal_first` and
  `_spatial_first` then chain TR (`_temporal_rearrangement`) and SC
  (`_spatial_coordination`, a `SpatialCoordination`) in either order, and
  `_diagnostics` has the cost (Eq. 35).

  Attributes:
    way: N.
    dtype: computation dtype (outputs are float32).
    param_dtype: parameter dtype.
  """
  way: int
  transform: bool = False
  rearrange: bool = False
  spatial: bool = False
  order: str = 'temporal_first'
  test_transform: Optional[bool] = None
  test_rearrange: Optional[bool] = None
  test_spatial: Optional[bool] = None
  channels: int = 0
  max_shift: float = 0.5
  perturbations: int = 4
  perturbation_scale: float = 0.1
  locality: float = 1.0
  max_warp: float = 0.5
  localisation_hidden: int = 64
  offset_hidden: int = 64
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __post_init__(self):
    if self.order not in ORDERS:
      raise ValueError(f'config.model.alignment.order={self.order!r} is not '
                       f'one of {ORDERS}.')
    super().__post_init__()

  def switches(self, train: bool):
    """((transform, rearrange, spatial) in force, (...) that need params)."""
    names = ('transform', 'rearrange', 'spatial')
    return (tuple(switches.in_force(self, n, train) for n in names),
            tuple(switches.ever_on(self, n) for n in names))

  def perturbs(self, train: bool) -> bool:
    """Whether SC's offsets are perturbed (needs a key) in this mode."""
    return bool(train and switches.in_force(self, 'spatial', train)
                and self.perturbations > 0 and self.perturbation_scale > 0)

  @nn.compact
  def __call__(self, support, support_labels, query, *, train: bool,
               rng=None, support_videos: bool = False):
    """Aligns every (query, class prototype) pair of one episode.

    Args:
      support: [V_s, T, h, w, C] support maps, in any class order.
      support_labels: [V_s] int labels in 0..way-1.
      query: [V_q, T, h, w, C] query maps.
      train: training mode (SC perturbations, `test_*` switches ignored).
      rng: key of the SC perturbations in training; None draws one from
        the 'sampler' stream. Two calls with one key perturb alike.
      support_videos: also return each support video as aligned, in aux
        'support_aligned' (for the metric heads, which compare videos).

    Returns:
      query_aligned [V_q, N, T, D] and prototype_aligned [V_q, N, T, D]
      (float32), and aux: 'warp' [V_s + V_q, 2] (a, b), support first;
      'attention' [V_q, N, T, T] (M_e; identity without TR); 'offsets'
      [V_q, N, T, 2] (cells, unperturbed; zeros without SC); 'cost' [V_q, N]
      (Eq. 35); 'warps_at_bound' [V] and 'offsets_at_bound' [V_q, N, T]
      (bool: |a - 1| or |b| within 1 % of max_warp; a tanh offset component
      at |o| >= 0.99; False for a module that is off); 'query_unaligned'
      [V_q, T, D] and 'prototype_unaligned' [N, T, D] (pooled after the
      channel reduction only: no TT, TR or SC). With `support_videos`,
      'support_aligned': every support video through what its class's
      prototype went through (its own TT warp, W_v, and SC's +o window of
      the (query, class) pair), [V_q, V_s, T, D] with SC in force and
      [V_s, T, D] (the same for every query) without. The alignment is
      affine in the support maps with weights summing to 1, so the class
      mean of these is `prototype_aligned` (exactly, up to rounding).
    """
    (transform, rearrange, coordinate), needed = self.switches(train)
    v_s = support.shape[0]
    maps = jnp.concatenate([support, query]).astype(self.dtype)  # [V,T,h,w,C]
    if self.channels:
      maps = nn.Dense(self.channels, dtype=self.dtype,
                      param_dtype=self.param_dtype, name='reduce')(maps)
    pooled = maps.mean(axis=(2, 3))  # [V, T, D]
    unaligned = self._episode(pooled, support_labels, v_s, False)
    units = self._parts(maps.shape[-1])
    if self.is_initializing():
      self._init_other_mode(units, (transform, rearrange, coordinate),
                            needed, pooled, maps)
    localiser, rearranger, coordinator = units

    warp, pooled, maps = temporal_coordination.transform(
        localiser if transform else None, pooled, maps if coordinate else None)
    pooled = self._episode(pooled, support_labels, v_s, support_videos)
    if coordinate:
      maps = self._episode(maps, support_labels, v_s, support_videos)
    order = (self._temporal_first if self.order == 'temporal_first'
             else self._spatial_first)
    aligned, attention, raw_offsets, offsets = order(
        rearranger if rearrange else None, coordinator if coordinate else None,
        pooled, maps, support_labels, train=train, rng=rng)

    aux = self._diagnostics(warp, attention, raw_offsets, offsets,
                            aligned.query.shape[:3])
    aux.update(query_unaligned=unaligned.query.astype(jnp.float32),
               prototype_unaligned=unaligned.proto.astype(jnp.float32))
    if support_videos:
      aux['support_aligned'] = aligned.support.astype(jnp.float32)
    return (aligned.query.astype(jnp.float32),
            aligned.proto.astype(jnp.float32), aux)

  def _episode(self, x, support_labels, num_support, support_videos):
    """An episode's per-video features [V, T, ...] (support first) as
    `_Episode`; the prototypes are grouped by label, so the support may come
    in any order."""
    return _Episode(
        support=x[:num_support] if support_videos else None,
        proto=protonet.class_prototypes(x[:num_support], support_labels,
                                        self.way),
        query=x[num_support:])

  def _parts(self, features):
    """TT's localiser, TR's projections and SC, in this module's scope.

    Args:
      features: D, the width of the (reduced) maps.
    """
    parts = (
        temporal_coordination.TemporalLocaliser(
            self.localisation_hidden, max_warp=self.max_warp,
            dtype=self.dtype, param_dtype=self.param_dtype, name='localiser'),
        temporal_coordination.TemporalRearrangement(
            features, locality=self.locality, dtype=self.dtype,
            param_dtype=self.param_dtype, name='rearrange'),
        spatial_coordination.SpatialCoordination(
            self.offset_hidden, max_shift=self.max_shift,
            perturbations=self.perturbations,
            perturbation_scale=self.perturbation_scale, dtype=self.dtype,
            param_dtype=self.param_dtype, name='spatial_coordination'))
    nn.share_scope(self, parts[2])
    return parts

  def _init_other_mode(self, units, in_force, needed, pooled, maps):
    """Creates the parameters of the units used only in the other mode."""
    localiser, rearranger, coordinator = units
    if needed[0] and not in_force[0]:
      localiser(pooled)
    if needed[1] and not in_force[1]:
      rearranger.attention(pooled[:1], pooled[:1])
      rearranger(pooled[:1])
    if needed[2] and not in_force[2]:
      coordinator(maps[:1], maps[:1], perturb=False)

  def _temporal_rearrangement(self, rearranger, pooled, maps):
    """Temporal coordination (TC), TR (Eqs. 17-18) on the videos.

    Args:
      rearranger: `TemporalRearrangement`.
      pooled: `_Episode` of [.., T, D] pooled features.
      maps: `_Episode` of [.., T, h, w, D] maps, or None.

    Returns:
      M_e [V_q, N, T, T] (rows the prototype's steps, columns the query's),
      and W_v of every feature of pooled and maps; M_e itself is applied by
      the caller (folded into SC's pooling where SC follows).
    """
    attention = rearranger.attention(pooled.proto[None], pooled.query[:, None])
    if maps is not None:
      maps = maps.map(rearranger)
    return attention, pooled.map(rearranger), maps

  def _spatial_coordination(self, coordinator, maps, support_labels, mixing,
                            train, rng):
    """SC (Eqs. 19-21) of every pair, on an `_Episode` of maps.

    Args:
      coordinator: `SpatialCoordination`.
      maps: `_Episode` of maps: support [V_s, T, h, w, D] (or None), proto
        [N, T, h, w, D], query [V_q, T, h, w, D].
      support_labels: [V_s].
      mixing: M_e [V_q, N, T, T] of the query maps (TR came first); None:
        no time mixing.
      train: adds the perturbations (where the module perturbs).
      rng: their key.

    Returns:
      `_Episode` of the pooled pairs (support [V_q, V_s, T, D] or None,
      proto and query [V_q, N, T, D]); raw offsets [V_q, N, T, 2] (tanh
      outputs) and offsets (cells).
    """
    pooled, raw_offsets, offsets = coordinator(
        maps.proto, maps.query, maps.support, support_labels, mixing,
        perturb=self.perturbs(train), rng=rng)
    return _Episode(*pooled), raw_offsets, offsets

  def _pairs(self, pooled):
    """Per-video pooled features as pairs, with no pair dependence: proto
    and query [V_q, N, T, D]; the support stays [V_s, T, D]."""
    pair = (pooled.query.shape[0], self.way) + pooled.proto.shape[1:]
    return _Episode(support=pooled.support,
                    proto=jnp.broadcast_to(pooled.proto[None], pair),
                    query=jnp.broadcast_to(pooled.query[:, None], pair))

  def _temporal_first(self, rearranger, coordinator, pooled, maps,
                      support_labels, *, train, rng):
    """order='temporal_first': TR on the warped videos, then SC.

    Args:
      rearranger: `TemporalRearrangement`, or None (TR off).
      coordinator: `SpatialCoordination`, or None (SC off).
      pooled: `_Episode` of pooled features after TT.
      maps: `_Episode` of maps after TT (None without SC).
      support_labels: [V_s].
      train: training mode.
      rng: the SC perturbations' key.

    Returns:
      the aligned `_Episode`, M_e, raw offsets and offsets (None: off).
    """
    attention = raw_offsets = offsets = None
    if rearranger is not None:
      attention, pooled, maps = self._temporal_rearrangement(
          rearranger, pooled, maps)
    if coordinator is not None:
      aligned, raw_offsets, offsets = self._spatial_coordination(
          coordinator, maps, support_labels, attention, train, rng)
    else:
      aligned = self._pairs(pooled)
      if attention is not None:
        aligned = aligned._replace(query=jnp.einsum(
            'qnts,qsd->qntd', attention.astype(pooled.query.dtype),
            pooled.query))
    return aligned, attention, raw_offsets, offsets

  def _spatial_first(self, rearranger, coordinator, pooled, maps,
                     support_labels, *, train, rng):
    """order='spatial_first' (Table 14): SC on the warped maps, then TR on
    each pair's SC-pooled features. Arguments and returns as
    `_temporal_first`."""
    attention = raw_offsets = offsets = None
    if coordinator is not None:
      aligned, raw_offsets, offsets = self._spatial_coordination(
          coordinator, maps, support_labels, None, train, rng)
    else:
      aligned = self._pairs(pooled)
    if rearranger is not None:
      # Temporal coordination, TR (Eqs. 17-18), on the pairs.
      attention = rearranger.attention(aligned.proto, aligned.query)
      aligned = _Episode(
          support=(None if aligned.support is None
                   else rearranger(aligned.support)),
          proto=rearranger(aligned.proto),
          query=jnp.einsum('qnts,qnsd->qntd',
                           attention.astype(aligned.query.dtype),
                           rearranger(aligned.query)))
    return aligned, attention, raw_offsets, offsets

  def _diagnostics(self, warp, attention, raw_offsets, offsets, pair):
    """aux 'warp', 'attention', 'offsets', 'cost' and the '*_at_bound' flags.

    Args:
      warp: [V, 2] (a, b), support first.
      attention: [V_q, N, T, T] M_e, or None (TR off: the identity).
      raw_offsets: [V_q, N, T, 2] tanh outputs, or None (SC off: zeros).
      offsets: [V_q, N, T, 2] offsets in cells, or None (SC off).
      pair: (V_q, N, T).
    """
    t_len = pair[-1]
    eye = jnp.eye(t_len, dtype=jnp.float32)
    if attention is None:
      attention = jnp.broadcast_to(eye, pair + (t_len,))
    if raw_offsets is None:
      raw_offsets = offsets = jnp.zeros(pair + (2,), jnp.float32)
    # Eq. 35 with the query's own warp (see the module docstring).
    query_warp = warp[warp.shape[0] - pair[0]:]  # [V_q, 2]
    warp_cost = jnp.abs(1 - query_warp[:, 0]) + jnp.abs(query_warp[:, 1])
    cost = (warp_cost[:, None] + _frobenius(attention - eye)
            + _frobenius(raw_offsets))  # [V_q, N]
    # Which bounded outputs sit at their bound (within 1 %).
    warps_at_bound = jnp.any(
        jnp.abs(warp - jnp.array([1.0, 0.0], jnp.float32))
        >= AT_BOUND * self.max_warp, -1)  # [V]
    offsets_at_bound = jnp.any(jnp.abs(raw_offsets) >= AT_BOUND, -1)
    return dict(
        warp=warp, attention=attention, offsets=offsets, cost=cost,
        warps_at_bound=warps_at_bound, offsets_at_bound=offsets_at_bound)
