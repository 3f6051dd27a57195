"""Metric heads of Table 3: OTAM, TRX and HyRSM over frame features.

Each head maps an episode's frame features to class logits with one call
convention,

  head.apply(variables, support, support_labels, query, train=...)
    support [V_s, T, C], support_labels [V_s] int in 0..way-1,
    query [V_q, T, C]  ->  logits [V_q, way],

where the logits are -logit_scale * distance. Every class must have at least
one support video. `train` is accepted for the shared convention; no head
has dropout or batch statistics, so it changes nothing (and no RNG stream is
needed). Distances are computed in float32 whatever the `dtype` of the
projections.

Behind VIM's alignment (`FewShotModel`, Table 3's "+ VIM") the query is no
longer one video: the alignment moves it onto each class in turn, and moves
the support too. Each head therefore has a per-class form,

  head.apply(variables, support, support_labels, query, train=...,
             method='compare')
    support [V_s, T, C], or [V_q, V_s, T, C]: each support video as placed
      for that query (spatial coordination pools the support per pair),
    query [V_q, N, T, C]: query[:, n] is the query as aligned to class n,
      or [V_q, 1, T, C]: the same query for every class  ->  [V_q, way],

in which the query of class n meets class n's support videos only, through
the head's own metric. The plain call is `compare` with the query
[V_q, 1, T, C]: a head alone is its per-class form with the query the same
for every class, so one implementation serves both (tested).

Parameter counts at the paper's size (ResNet-50 features, C = 2048, T = 8;
`parameter_count`): OTAM 0; TRX 23,606,784; HyRSM 41,957,376. Added to the
23,508,032 parameters of the ResNet-50 trunk (its classifier removed, as in
the TRX and HyRSM code) they give Fig. 22's totals: TRX 47,114,816 (47.1 M);
HyRSM 65,465,408, and 65,596,544 (65.6 M) with the 131,136 of the official
code's auxiliary 64-way classifier of the training classes, a training loss
outside the metric that is left out here.
"""
import itertools
from typing import Any, Sequence

import flax.linen as nn
from flax.linen import dtypes
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.models import protonet
from vim_jax.models import temporal_selector
from vim_jax.ops import otam as otam_ops

Dtype = Any


def cosine_distances(query, support, eps=1e-8):
  """1 - cos between every query frame and every support frame.

  Args:
    query: [..., Tq, C].
    support: [..., Ts, C], leading dims broadcastable against `query`'s.
    eps: guards the norm of an all-zero feature (as `frame_cosine_distance`).

  Returns:
    [..., Tq, Ts] float32 distances in [0, 2].
  """
  query = query.astype(jnp.float32)
  support = support.astype(jnp.float32)
  dot = jnp.einsum('...ic,...jc->...ij', query, support)
  norms = (jnp.linalg.norm(query, axis=-1)[..., :, None]
           * jnp.linalg.norm(support, axis=-1)[..., None, :])
  return 1.0 - dot / jnp.maximum(norms, eps)


def class_mean(distances, labels, way):
  """Mean over each class's support videos: [V_q, V_s] -> [V_q, way]."""
  return protonet.class_prototypes(distances.T, labels, way).T


def per_query(support):
  """[V_s, T, C] -> [1, V_s, T, C]; [V_q, V_s, T, C] as it is."""
  return support if support.ndim == 4 else support[None]


def class_rows(per_class, labels):
  """Each support video's class row: [V_q, N or 1, ...] -> [V_q, V_s, ...].

  With one row (the same query for every class) every video gets that row.
  """
  index = labels if per_class.shape[1] > 1 else jnp.zeros_like(labels)
  return jnp.take(per_class, index, axis=1)


def parameter_count(head, frames, channels, way=5, shot=1, queries=5):
  """Parameters of a head on an episode of the given size, without running it.

  Args:
    head: an unbound head module.
    frames: T.
    channels: C.
    way, shot, queries: episode size (queries per class); the count does not
      depend on them, but tracing needs an episode.

  Returns:
    int, the number of scalars in the head's 'params' (`jax.eval_shape`: no
    array is allocated).
  """
  support = jax.ShapeDtypeStruct((way * shot, frames, channels), jnp.float32)
  labels = jax.ShapeDtypeStruct((way * shot,), jnp.int32)
  query = jax.ShapeDtypeStruct((way * queries, frames, channels), jnp.float32)
  variables = jax.eval_shape(
      lambda s, l, q: head.init(jax.random.key(0), s, l, q, train=False),
      support, labels, query)
  return sum(int(np.prod(x.shape))
             for x in jax.tree.leaves(variables.get('params', {})))


class OTAMHead(nn.Module):
  """OTAM (Cao et al., CVPR 2020): soft-DTW over frame cosine distances.

  Each query is aligned with each support video on its own (`otam_cost`,
  both directions summed), and a class's distance is the mean over its
  support videos (weight 1/shot each, as the OTAM implementation of the TRX
  and HyRSM code does, so the scale is the same at any shot). A prototype
  built first (the mean of the class's frame features) would average videos
  whose actions run at different paces, frame t of one against frame t of
  another: the misalignment that OTAM's per-video alignment exists to
  avoid. No parameters.

  Behind VIM (`compare`; the paper: "replaces the cosine distance metric
  with the DTW metric"): the symmetric OTAM cost between class n's aligned
  query and each of class n's support videos as the alignment placed them,
  then the class mean as above. The alignment is affine in the support, so
  the prototype that VIM's frame-wise cosine compares with is exactly the
  mean of these videos: at 1-shot this is OTAM between the two sequences
  the cosine compared, and at K shots the DTW still runs per video, for
  the reason above, after the query has been aligned to the class as a
  whole.

  Attributes:
    way: N, classes per episode.
    smoothing: soft-min temperature lambda of the alignment (OTAM: 0.1).
    logit_scale: multiplies the negative distance.
  """
  way: int
  smoothing: float = 0.1
  logit_scale: float = 1.0

  def __call__(self, support, support_labels, query, *, train: bool):
    """[V_s, T, C], [V_s], [V_q, T, C] -> [V_q, way] logits."""
    return self.compare(support, support_labels, query[:, None], train=train)

  def compare(self, support, support_labels, query, *, train: bool):
    """Per-class form (module docstring): each support video against the
    query as aligned to that video's class.

    [(V_q,) V_s, T, C], [V_s], [V_q, N or 1, T, C] -> [V_q, way] logits.
    """
    del train  # Nothing differs between training and evaluation.
    frames = cosine_distances(class_rows(query, support_labels),
                              per_query(support))  # [V_q, V_s, T, T]
    videos = otam_ops.otam_cost(frames, self.smoothing)  # [V_q, V_s]
    return -self.logit_scale * class_mean(videos, support_labels, self.way)


def frame_tuples(frames, cardinality):
  """[P, k] int array: every ordered tuple i < j (< k) of `frames` indices."""
  if not 1 <= cardinality <= frames:
    raise ValueError(f'Tuples of {cardinality} from {frames} frames.')
  return np.array(list(itertools.combinations(range(frames), cardinality)),
                  np.int32).reshape(-1, cardinality)


class TupleProjection(nn.Module):
  """A dense layer on the concatenation of each tuple's frame features.

  The parameters are those of `nn.Dense(features)` on [..., P, k C] tuple
  inputs (names, shapes, initialisers): 'kernel' [k C, features], 'bias'.
  The kernel is applied as its k blocks of C rows to every frame first and
  the products are summed per tuple, so a video costs T k products of width
  C instead of P of width k C (8 frames: 56 triples, 7 times fewer) and no
  [..., P, k C] array is built; it matters behind the alignment, where the
  support comes once per query (V_q V_s videos).

  Attributes:
    features: output width.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, frames, tuples):
    """[..., T, C] frames and [P, k] frame indices -> [..., P, features]."""
    k, channels = tuples.shape[1], frames.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k * channels, self.features), self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,),
                      self.param_dtype)
    frames, kernel, bias = dtypes.promote_dtype(frames, kernel, bias,
                                                dtype=self.dtype)
    blocks = kernel.reshape(k, channels, self.features)
    products = jnp.einsum('...tc,jch->...jth', frames, blocks)  # [..., k, T, H]
    out = sum(jnp.take(products[..., j, :, :], tuples[:, j], axis=-2)
              for j in range(k))  # [..., P, H]
    return out + bias


class TupleCrossTransformer(nn.Module):
  """TRX's temporal cross-transformer for one tuple cardinality.

  A tuple's representation is the concatenation of its frames' features
  (position already encoded). Keys and values are linear maps of it
  (`TupleProjection`), keys followed by a layer norm, values too with
  `value_norm`. For every query tuple and class, a softmax of the scaled dot
  products of its key with the keys of all the class's support tuples (over
  every shot jointly) weighs the class's support values into a
  query-specific prototype. The distance is the squared Euclidean distance
  between the query's values and that prototype, averaged over the query's
  tuples (as TRX: pairs and triples then weigh alike though there are
  C(T, 3) triples and C(T, 2) pairs) and, unlike TRX's sum, over the `hidden`
  channels. The mean keeps the distance at the frame-wise cosine's scale
  (about 2 for unrelated layer-normed values, whatever the width), for which
  the shared learning rate and `logit_scale` are set: with the sum, 1152-wide
  values give distances near 2300, the first step's logits saturate (train
  cross-entropy 8.3 on the procedural data) and the head collapses to chance
  (train and validation accuracy 20 % at 5-way after 200 steps).

  Attributes:
    cardinality: frames per tuple.
    hidden: width of keys and values.
    value_norm: layer norm on the values as on the keys. The TRX code
      creates a value norm (its parameters are in Fig. 22's count) but
      compares raw values; False reproduces that.
    dtype: computation dtype of the projections.
    param_dtype: parameter dtype.
  """
  cardinality: int
  hidden: int
  value_norm: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, support, onehot, query):
    """Distances in the per-class form of the module docstring.

    Args:
      support: [(V_q,) V_s, T, C].
      onehot: [V_s, N] one-hot labels.
      query: [V_q, N or 1, T, C]; row n meets class n's support only.

    Returns:
      [V_q, N] distances.
    """
    tuples = frame_tuples(query.shape[-2], self.cardinality)  # [P, k]
    kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    key_map = TupleProjection(self.hidden, name='key', **kwargs)
    value_map = TupleProjection(self.hidden, name='value', **kwargs)
    key_norm = nn.LayerNorm(name='key_norm', **kwargs)
    value_norm = nn.LayerNorm(name='value_norm', **kwargs)

    def embed(videos):  # [..., T, C] -> keys, values [..., P, H] float32
      keys = key_norm(key_map(videos, tuples))
      values = value_map(videos, tuples)
      if self.value_norm:
        values = value_norm(values)
      return keys.astype(jnp.float32), values.astype(jnp.float32)

    support_keys, support_values = embed(per_query(support))  # [., V_s, P, H]
    query_keys, query_values = embed(query)  # [V_q, n, P, H]
    scores = jnp.einsum('...nph,...srh->...npsr', query_keys, support_keys)
    scores = scores / np.sqrt(self.hidden)  # [V_q, n, P, V_s, P]
    # One softmax per (query tuple, class) over that class's support tuples.
    mask = onehot.T.astype(bool)[:, None, :, None]  # [N, 1, V_s, 1]
    scores = jnp.where(mask, scores, -1e30)  # [V_q, N, P, V_s, P]
    weights = jax.nn.softmax(scores, axis=(-2, -1))
    prototypes = jnp.einsum('...npsr,...srh->...nph', weights, support_values)
    diff = query_values - prototypes  # [V_q, N, P, H]
    return jnp.mean(diff**2, axis=(-2, -1))


class TRXHead(nn.Module):
  """TRX (Perrett et al., CVPR 2021): tuple cross-transformers.

  A sinusoidal position encoding times `pe_scale` (TRX: 0.1, no dropout
  here) is added to the frame features; one `TupleCrossTransformer` per
  cardinality gives a distance per query and class, and the distances are
  summed over the cardinalities. (The TRX code combines the per-cardinality
  logits by their L2 norm, HyRSM's copy of it by their mean; the sum keeps
  each cardinality's gradient independent of the others'.)

  Behind VIM (`compare`; the paper: "an exhaustive comparison among videos
  based on frame tuples"): class n's cross-transformer attends from the
  tuples of the query as aligned to class n to the tuples of all of class
  n's support videos as the alignment placed them, every shot jointly as
  above, so TRX keeps its attention over a class's shots at K shots. The
  position encoding is added after the alignment: TR re-orders the query
  onto the class's time axis, and step t of the aligned query is step t of
  the class.

  Attributes:
    way: N, classes per episode.
    cardinalities: tuple sizes (TRX: pairs and triples).
    hidden: width of keys and values (TRX: 1152).
    pe_scale: amplitude of the position encoding.
    value_norm: see `TupleCrossTransformer`.
    logit_scale: multiplies the negative distance.
    dtype: computation dtype of the projections.
    param_dtype: parameter dtype.
  """
  way: int
  cardinalities: Sequence[int] = (2, 3)
  hidden: int = 1152
  pe_scale: float = 0.1
  value_norm: bool = True
  logit_scale: float = 1.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __call__(self, support, support_labels, query, *, train: bool):
    """[V_s, T, C], [V_s], [V_q, T, C] -> [V_q, way] logits."""
    return self.compare(support, support_labels, query[:, None], train=train)

  @nn.compact
  def compare(self, support, support_labels, query, *, train: bool):
    """Per-class form (module docstring): the cross-transformer of class n
    on class n's support videos and the query as aligned to class n.

    [(V_q,) V_s, T, C], [V_s], [V_q, N or 1, T, C] -> [V_q, way] logits.
    """
    del train  # No dropout.
    frames, channels = query.shape[-2:]
    position = self.pe_scale * temporal_selector.position_embedding(
        frames, channels)
    support = support + position.astype(support.dtype)
    query = query + position.astype(query.dtype)
    onehot = jax.nn.one_hot(support_labels, self.way, dtype=jnp.float32)
    distance = 0.0
    for k in self.cardinalities:
      distance = distance + TupleCrossTransformer(
          k, self.hidden, self.value_norm, dtype=self.dtype,
          param_dtype=self.param_dtype, name=f'cardinality_{k}')(
              support, onehot, query)
    return -self.logit_scale * distance


class ResidualAttention(nn.Module):
  """Pre-norm multi-head self-attention with a residual: x + A(LN(x + p)).

  `p` (optional) is added only inside the branch, so a zero output
  projection makes the block the identity. Queries, keys and values come
  from one bias-free projection, the output projection has a bias: the
  layout, and parameter count, of HyRSM's attention blocks.

  Attributes:
    heads: number of heads; must divide the width.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  heads: int = 8
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, position=None):
    """[B, L, C] (and [L, C] or None) -> [B, L, C]."""
    width = x.shape[-1]
    if width % self.heads:
      raise ValueError(f'{self.heads} heads do not divide width {width}.')
    h = x if position is None else x + position
    h = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                     name='norm')(h)
    qkv = nn.DenseGeneral((3, self.heads, width // self.heads), use_bias=False,
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          name='qkv')(h)  # [B, L, 3, heads, D]
    q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
    h = nn.dot_product_attention(q, k, v)  # [B, L, heads, D]
    h = nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype,
                        param_dtype=self.param_dtype, name='out')(h)
    return x + h.astype(x.dtype)


class HyRSMHead(nn.Module):
  """HyRSM (Wang et al., CVPR 2022): hybrid relation module and Bi-MHM.

  1. Intra-relation: each video's T frames attend to each other
     (`ResidualAttention`, position encoding `pe_scale` inside the branch).
  2. Inter-relation, one set per query: the video-level features (frame
     means) of all support videos and of that query attend to each other
     (`ResidualAttention` over V_s + 1 tokens), so a query never sees the
     other queries (no transduction) and the support features it is compared
     with depend on it, as in HyRSM's code.
  3. Fusion: every frame f of a video becomes f + W_f f + W_v z + b, z the
     video's feature from step 2. This is HyRSM's 1x1 convolution of the
     concatenation [f; z] with the identity added to its frame half: the
     same functions and parameter count, written so that zero projections
     leave the frames unchanged.
  4. Bi-MHM of the frame cosine distances between each query and each of
     its (query-specific) support videos; a class's distance is the mean
     over its support videos.

  Simplified from HyRSM: the ReLUs after each relation and HyRSM's input
  scaling x sqrt(C / 10) are left out and both attentions are pre-norm (the
  inter-relation is post-norm there), so that each stage is a residual on
  the backbone's features; and the support videos enter the inter-relation
  one by one at every shot (HyRSM's 1-shot code; its 5-shot code averages
  each class's frames first).

  Behind VIM (`compare`; the paper: attention "over all videos within the
  support set and query set" and Bi-MHM in place of the cosine): steps 1-4
  with the query as aligned to class n and the support videos as the
  alignment placed them for that query. Step 2 then runs once per (query,
  class): the set of class n holds all support videos and the query as
  aligned to class n, and the features a support video of class n is
  compared with come from that set, so every comparison is between
  features of one set, as in HyRSM. (A single set per query would have to
  pick one of its N aligned versions, or mix them.)

  Attributes:
    way: N, classes per episode.
    heads: attention heads of both relations (HyRSM: 8).
    pe_scale: amplitude of the sinusoidal position encoding.
    logit_scale: multiplies the negative distance (HyRSM sums the Bi-MHM
      terms over frames: T times `bi_mhm`'s means).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  way: int
  heads: int = 8
  pe_scale: float = 0.1
  logit_scale: float = 1.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __call__(self, support, support_labels, query, *, train: bool):
    """[V_s, T, C], [V_s], [V_q, T, C] -> [V_q, way] logits."""
    return self.compare(support, support_labels, query[:, None], train=train)

  @nn.compact
  def compare(self, support, support_labels, query, *, train: bool):
    """Per-class form (module and class docstrings): one inter-relation set
    per (query, class), Bi-MHM of the query as aligned to class n against
    class n's support videos.

    [(V_q,) V_s, T, C], [V_s], [V_q, N or 1, T, C] -> [V_q, way] logits.
    """
    del train  # No dropout.
    support = per_query(support)  # [V_q or 1, V_s, T, C]
    num_support = support.shape[1]
    num_query, rows, frames, channels = query.shape
    kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    position = self.pe_scale * temporal_selector.position_embedding(
        frames, channels)
    intra = ResidualAttention(self.heads, name='intra', **kwargs)

    def attend_frames(videos):  # [..., T, C], each video on its own
      flat = videos.reshape((-1, frames, channels))
      return intra(flat, position.astype(flat.dtype)).reshape(videos.shape)

    support, query = attend_frames(support), attend_frames(query)
    tokens = jnp.concatenate([  # [V_q, n, V_s + 1, C]: supports, then query
        jnp.broadcast_to(support.mean(-2)[:, None],
                         (num_query, rows, num_support, channels)),
        query.mean(-2)[:, :, None]], axis=2)
    videos = ResidualAttention(self.heads, name='inter', **kwargs)(
        tokens.reshape((-1, num_support + 1, channels))).reshape(tokens.shape)
    fuse_frames = nn.Dense(channels, name='fuse_frames', **kwargs)
    fuse_video = nn.Dense(channels, use_bias=False, name='fuse_video', **kwargs)
    video_term = fuse_video(videos)  # [V_q, n, V_s + 1, C]
    # Support video s is fused from the set of its own class's query.
    own_set = support_labels if rows > 1 else jnp.zeros_like(support_labels)
    # [V_q, V_s, C]
    support_term = video_term[:, own_set, jnp.arange(num_support)]
    support = support + fuse_frames(support) + support_term[:, :, None]
    query = query + fuse_frames(query) + video_term[:, :, -1:]
    # support [V_q, V_s, T, C], query [V_q, n, T, C]
    distances = otam_ops.bi_mhm(cosine_distances(
        class_rows(query, support_labels), support))  # [V_q, V_s]
    return -self.logit_scale * class_mean(distances, support_labels, self.way)
