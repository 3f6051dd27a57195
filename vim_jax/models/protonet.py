"""ProtoNet with the frame-wise cosine metric (paper Eq. 22-24)."""
import jax
import jax.numpy as jnp


def class_prototypes(features, labels, way):
  """Mean of each class's support features, grouped by label.

  Args:
    features: [V_s, ...] support features, in any order.
    labels: [V_s] int labels in 0..way-1.
    way: N.

  Returns:
    [N, ...] prototypes; prototype c is the mean over the videos labelled c.
  """
  onehot = jax.nn.one_hot(labels, way, dtype=features.dtype)  # [V_s, N]
  weights = onehot / jnp.maximum(onehot.sum(0, keepdims=True), 1.0)
  return jnp.tensordot(weights, features, axes=([0], [0]))


def frame_cosine_distance(query, prototype, eps=1e-8):
  """d(F, P) = sum_t 1 - cos(F[t], P[t]) (Eq. 23), over matching leading dims.

  Args:
    query: [..., T, C].
    prototype: [..., T, C], broadcastable against `query`.
    eps: guards the norm of an all-zero feature.

  Returns:
    [...] distances in [0, 2T].
  """
  dot = jnp.sum(query * prototype, axis=-1)
  norms = jnp.linalg.norm(query, axis=-1) * jnp.linalg.norm(prototype, axis=-1)
  return jnp.sum(1.0 - dot / jnp.maximum(norms, eps), axis=-1)


def protonet_logits(support, support_labels, query, way, scale=1.0):
  """Logits -scale * d(query, prototype_c) (Eq. 22) for every query and class.

  Args:
    support: [V_s, T, C] frame features of the support videos.
    support_labels: [V_s] labels in 0..way-1.
    query: [V_q, T, C] frame features of the query videos.
    way: N.
    scale: multiplies the distance; 1.0 is the paper's Eq. 22.

  Returns:
    [V_q, N] logits.
  """
  prototypes = class_prototypes(support, support_labels, way)  # [N, T, C]
  return -scale * frame_cosine_distance(query[:, None], prototypes[None])
