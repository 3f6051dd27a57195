"""Metric heads of Table 3: OTAM, TRX and HyRSM over frame features.

Each head maps an episode's frame features to class logits with one call
convention,

  head.apply(variables, support, support_labels, query, train=...)
    support [V_s, T, C], support_labels [V_s] int in 0..way-1,
    query [V_q, T, C]  ->  logits [V_q, way],

where the logits are -logit_scale * distance. Every class must have at least
one support video. `train` is accepted for the shared convention; no head has
dropout or batch statistics, so it changes nothing (and no RNG stream is
needed). Distances are computed in float32 whatever the `dtype` of the
projections.

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
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.models import protonet
from vim_jax.models import sampler
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
    del train  # Nothing differs between training and evaluation.
    frames = cosine_distances(query[:, None], support[None])  # [V_q, V_s, T, T]
    videos = otam_ops.otam_cost(frames, self.smoothing)  # [V_q, V_s]
    return -self.logit_scale * class_mean(videos, support_labels, self.way)


def frame_tuples(frames, cardinality):
  """[P, k] int array: every ordered tuple i < j (< k) of `frames` indices."""
  if not 1 <= cardinality <= frames:
    raise ValueError(f'Tuples of {cardinality} from {frames} frames.')
  return np.array(list(itertools.combinations(range(frames), cardinality)),
                  np.int32).reshape(-1, cardinality)


class TupleCrossTransformer(nn.Module):
  """TRX's temporal cross-transformer for one tuple cardinality.

  A tuple's representation is the concatenation of its frames' features
  (position already encoded). Keys and values are linear maps of it, keys
  followed by a layer norm, values too with `value_norm`. For every query
  tuple and class, a softmax of the scaled dot products of its key with the
  keys of all the class's support tuples (over every shot jointly) weighs
  the class's support values into a query-specific prototype. The distance
  is the squared Euclidean distance between the query's values and that
  prototype, averaged over the query's tuples (as TRX: pairs and triples
  then weigh alike though there are C(T, 3) triples and C(T, 2) pairs).

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
    """[V_s, T, C], [V_s, N] one-hot labels, [V_q, T, C] -> [V_q, N]."""
    tuples = frame_tuples(support.shape[1], self.cardinality)  # [P, k]
    dense = lambda name: nn.Dense(self.hidden, dtype=self.dtype,
                                  param_dtype=self.param_dtype, name=name)
    norm = lambda name: nn.LayerNorm(dtype=self.dtype,
                                     param_dtype=self.param_dtype, name=name)
    key_map, value_map = dense('key'), dense('value')
    key_norm, value_norm = norm('key_norm'), norm('value_norm')

    def embed(videos):  # [V, T, C] -> keys, values [V, P, hidden] float32
      x = videos[:, tuples].reshape(videos.shape[0], len(tuples), -1)
      keys, values = key_norm(key_map(x)), value_map(x)
      if self.value_norm:
        values = value_norm(values)
      return keys.astype(jnp.float32), values.astype(jnp.float32)

    support_keys, support_values = embed(support)  # [V_s, P, H]
    query_keys, query_values = embed(query)  # [V_q, P, H]
    scores = jnp.einsum('qph,srh->qpsr', query_keys, support_keys)
    scores = scores / np.sqrt(self.hidden)  # [V_q, P, V_s, P]
    # One softmax per (query tuple, class) over that class's support tuples.
    mask = onehot.T.astype(bool)[None, :, None, :, None]  # [1, N, 1, V_s, 1]
    scores = jnp.where(mask, scores[:, None], -1e30)  # [V_q, N, P, V_s, P]
    weights = jax.nn.softmax(scores, axis=(-2, -1))
    prototypes = jnp.einsum('qnpsr,srh->qnph', weights, support_values)
    diff = query_values[:, None] - prototypes  # [V_q, N, P, H]
    return jnp.mean(jnp.sum(diff**2, axis=-1), axis=-1)


class TRXHead(nn.Module):
  """TRX (Perrett et al., CVPR 2021): tuple cross-transformers.

  A sinusoidal position encoding times `pe_scale` (TRX: 0.1, no dropout
  here) is added to the frame features; one `TupleCrossTransformer` per
  cardinality gives a distance per query and class, and the distances are
  summed over the cardinalities. (The TRX code combines the per-cardinality
  logits by their L2 norm, HyRSM's copy of it by their mean; the sum keeps
  each cardinality's gradient independent of the others'.)

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

  @nn.compact
  def __call__(self, support, support_labels, query, *, train: bool):
    """[V_s, T, C], [V_s], [V_q, T, C] -> [V_q, way] logits."""
    del train  # No dropout.
    frames, channels = support.shape[1:]
    position = self.pe_scale * sampler.position_embedding(frames, channels)
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

  @nn.compact
  def __call__(self, support, support_labels, query, *, train: bool):
    """[V_s, T, C], [V_s], [V_q, T, C] -> [V_q, way] logits."""
    del train  # No dropout.
    num_support, frames, channels = support.shape
    kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    position = self.pe_scale * sampler.position_embedding(frames, channels)
    intra = ResidualAttention(self.heads, name='intra', **kwargs)
    support = intra(support, position.astype(support.dtype))
    query = intra(query, position.astype(query.dtype))

    tokens = jnp.concatenate([  # [V_q, V_s + 1, C]: supports, then the query
        jnp.broadcast_to(support.mean(1), (len(query), num_support, channels)),
        query.mean(1)[:, None]], axis=1)
    videos = ResidualAttention(self.heads, name='inter', **kwargs)(tokens)
    fuse_frames = nn.Dense(channels, name='fuse_frames', **kwargs)
    fuse_video = nn.Dense(channels, use_bias=False, name='fuse_video', **kwargs)
    video_term = fuse_video(videos)[:, :, None]  # [V_q, V_s + 1, 1, C]
    support = (support + fuse_frames(support))[None] + video_term[:, :-1]
    query = query + fuse_frames(query) + video_term[:, -1]
    # support [V_q, V_s, T, C], query [V_q, T, C]
    distances = otam_ops.bi_mhm(cosine_distances(query[:, None], support))
    return -self.logit_scale * class_mean(distances, support_labels, self.way)
