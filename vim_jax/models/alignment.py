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

Readings of the paper (the choices it leaves open):

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
- TR off: M_e = I and no W_v either, so with TT, TR and SC all off the outputs
  are exactly ProtoNet's pooled features (prototype = class mean of the
  spatially pooled support; tested).
- TT (Eq. 16): the localisation net is a temporal conv (kernel 3) on the pooled
  features, ReLU, mean over time, Dense(2); the Dense is zero-initialised with
  bias (1, 0), so TT starts as the exact identity warp. (a, b) are
  unconstrained; `temporal_warp` clamps positions to the clip.
- SC (Eq. 19). The predictor is a 3x3 conv on Cat(F~_s, F~_q), ReLU, mean over
  h, w, Dense(2) (zero-initialised: zero offsets, i.e. plain average pooling,
  at the start), tanh. A conv of a channel concatenation is the sum of two
  convs, one per half of the kernel; the query half is linear, so it commutes
  with the time mixing of TR: `conv_q(M_e V) = M_e conv_q(V)`. The offset is
  `(dy, dx)` in cells (`vim_jax.ops.spatial` has the sign convention): tanh
  output times `max_shift` (units of the map side) times `(h, w)`.
- SC perturbations (training only): the pooled features are averaged over the
  unperturbed offset AND `perturbations` Gaussian perturbations of it (std
  `perturbation_scale` map sides); the unperturbed term keeps the training
  target tied to what evaluation uses. At evaluation: no perturbation, no rng.
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
import functools
import math
from typing import Any, NamedTuple, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vim_jax.models import protonet
from vim_jax.models import switches
from vim_jax.ops import spatial
from vim_jax.ops import temporal

Dtype = Any
# A bounded output counts as at its bound from this fraction of the bound
# on (aux 'warps_at_bound', 'offsets_at_bound'): the runaway L_inter drives
# TT and SC there (docs/results.md, Table 4).
AT_BOUND = 0.99
# The two chains of TR and SC (`config.model.alignment.order`, Table 14).
ORDERS = ('temporal_first', 'spatial_first')


def _identity_init(key, shape, dtype=jnp.float32):
  """Initialiser of a [in, out] kernel to the identity (eye for non-square)."""
  del key
  return jnp.eye(*shape, dtype=dtype)


def _frobenius(x: jax.Array) -> jax.Array:
  """[..., m, n] -> [...] Frobenius norms; 0 with a zero gradient at 0."""
  squares = jnp.sum(x ** 2, axis=(-2, -1))
  positive = squares > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)


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


def _pool(weights, maps, spec):
  """Pools maps with `pooling_weights` by the einsum `spec`."""
  return jnp.einsum(spec, weights.astype(maps.dtype), maps)


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

  Temporal coordination is `_temporal_transform` (TT) and
  `_temporal_rearrangement` (TR), spatial coordination
  `_spatial_coordination` (SC); `_temporal_first` and `_spatial_first` chain
  TR and SC in either order, and `_diagnostics` has the cost (Eq. 35).

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

  def _pool_pairs(self, raw_offsets, size, train, rng):
    """Pooling weights of the support (+o) and query (-o) for every pair.

    Args:
      raw_offsets: [V_q, N, T, 2] tanh outputs.
      size: (h, w).
      train: adds the perturbations.
      rng: their key; None draws one from the 'sampler' stream.

    Returns:
      offsets [V_q, N, T, 2] in cells, weights_s and weights_q
      [V_q, N, T, h, w] (means over the unperturbed and perturbed offsets).
    """
    side = jnp.array(size, jnp.float32)  # [2] cells per map side (h, w)
    offsets = raw_offsets * (self.max_shift * side)  # [V_q, N, T, 2] cells
    every = offsets[None]  # [1 + P, V_q, N, T, 2]
    if self.perturbs(train):
      if rng is None:
        rng = self.make_rng('sampler')
      noise = jax.random.normal(rng, (self.perturbations,) + offsets.shape)
      every = jnp.concatenate(
          [every, offsets + noise * (self.perturbation_scale * side)])
    weights_s = pooling_weights(every, size).mean(0)
    weights_q = pooling_weights(-every, size).mean(0)
    return offsets, weights_s, weights_q

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
    units = (
        TemporalLocaliser(self.localisation_hidden, max_warp=self.max_warp,
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          name='localiser'),
        TemporalRearrangement(maps.shape[-1], locality=self.locality,
                              dtype=self.dtype, param_dtype=self.param_dtype,
                              name='rearrange'),
        OffsetPredictor(self.offset_hidden, dtype=self.dtype,
                        param_dtype=self.param_dtype, name='offsets'))
    if self.is_initializing():
      self._init_other_mode(units, (transform, rearrange, coordinate),
                            needed, pooled, maps)
    localiser, rearranger, predictor = units

    warp, pooled, maps = self._temporal_transform(
        localiser if transform else None, pooled, maps if coordinate else None)
    pooled = self._episode(pooled, support_labels, v_s, support_videos)
    if coordinate:
      maps = self._episode(maps, support_labels, v_s, support_videos)
    order = (self._temporal_first if self.order == 'temporal_first'
             else self._spatial_first)
    aligned, attention, raw_offsets, offsets = order(
        rearranger if rearrange else None, predictor if coordinate else None,
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

  def _init_other_mode(self, units, in_force, needed, pooled, maps):
    """Creates the parameters of the units used only in the other mode."""
    localiser, rearranger, predictor = units
    if needed[0] and not in_force[0]:
      localiser(pooled)
    if needed[1] and not in_force[1]:
      rearranger.attention(pooled[:1], pooled[:1])
      rearranger(pooled[:1])
    if needed[2] and not in_force[2]:
      predictor(maps[:1], maps[:1])

  def _temporal_transform(self, localiser, pooled, maps):
    """Temporal coordination (TC), TT (Eq. 16): each video's warp.

    The warp is linear in the features and commutes with the spatial mean,
    so the maps are warped only when SC needs them.

    Args:
      localiser: `TemporalLocaliser`; None: TT off (the identity warp).
      pooled: [V, T, D] pooled features.
      maps: [V, T, h, w, D] maps, or None (not needed).

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

  def _spatial_coordination(self, predictor, maps, support_labels, mixing,
                            train, rng):
    """Spatial coordination (SC, Eqs. 19-21) of every pair.

    Args:
      predictor: `OffsetPredictor`.
      maps: `_Episode` of maps: support [V_s, T, h, w, D] (or None), proto
        [N, T, h, w, D], query [V_q, T, h, w, D].
      support_labels: [V_s].
      mixing: M_e [V_q, N, T, T] of the query maps (TR came first), folded
        into the query's pooling; None: no time mixing.
      train: adds the perturbations.
      rng: their key (`_pool_pairs`).

    Returns:
      `_Episode` of the pooled pairs (support [V_q, V_s, T, D] or None,
      proto and query [V_q, N, T, D]); raw offsets [V_q, N, T, 2] (tanh
      outputs) and offsets (cells).
    """
    raw_offsets = predictor(maps.proto, maps.query, mixing)
    offsets, weights_s, weights_q = self._pool_pairs(
        raw_offsets, maps.proto.shape[-3:-1], train, rng)
    proto = _pool(weights_s, maps.proto, 'qnthw,nthwd->qntd')
    support = None
    if maps.support is not None:
      support = _pool(weights_s[:, support_labels], maps.support,
                      'qsthw,sthwd->qstd')
    if mixing is None:
      query = _pool(weights_q, maps.query, 'qnthw,qthwd->qntd')
    else:
      # Fold the query's masks into its time mixing: [V_q, N, T, T, h, w].
      mixing = jnp.einsum('qnthw,qnts->qntshw', weights_q, mixing)
      query = _pool(mixing, maps.query, 'qntshw,qshwd->qntd')
    return _Episode(support, proto, query), raw_offsets, offsets

  def _pairs(self, pooled):
    """Per-video pooled features as pairs, with no pair dependence: proto
    and query [V_q, N, T, D]; the support stays [V_s, T, D]."""
    pair = (pooled.query.shape[0], self.way) + pooled.proto.shape[1:]
    return _Episode(support=pooled.support,
                    proto=jnp.broadcast_to(pooled.proto[None], pair),
                    query=jnp.broadcast_to(pooled.query[:, None], pair))

  def _temporal_first(self, rearranger, predictor, pooled, maps,
                      support_labels, *, train, rng):
    """order='temporal_first': TR on the warped videos, then SC.

    Args:
      rearranger: `TemporalRearrangement`, or None (TR off).
      predictor: `OffsetPredictor`, or None (SC off).
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
    if predictor is not None:
      aligned, raw_offsets, offsets = self._spatial_coordination(
          predictor, maps, support_labels, attention, train, rng)
    else:
      aligned = self._pairs(pooled)
      if attention is not None:
        aligned = aligned._replace(query=jnp.einsum(
            'qnts,qsd->qntd', attention.astype(pooled.query.dtype),
            pooled.query))
    return aligned, attention, raw_offsets, offsets

  def _spatial_first(self, rearranger, predictor, pooled, maps,
                     support_labels, *, train, rng):
    """order='spatial_first' (Table 14): SC on the warped maps, then TR on
    each pair's SC-pooled features. Arguments and returns as
    `_temporal_first`."""
    attention = raw_offsets = offsets = None
    if predictor is not None:
      aligned, raw_offsets, offsets = self._spatial_coordination(
          predictor, maps, support_labels, None, train, rng)
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
