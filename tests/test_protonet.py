"""The frame-wise cosine ProtoNet head (Eq. 22-24) against numpy loops."""
import jax.numpy as jnp
import numpy as np

from vim_jax import losses
from vim_jax.models import protonet


def _numpy_logits(support, labels, query, way):
  logits = np.zeros((len(query), way))
  for c in range(way):
    proto = support[labels == c].mean(0)  # [T, C]
    for q in range(len(query)):
      d = 0.0
      for t in range(query.shape[1]):
        a, b = query[q, t], proto[t]
        d += 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
      logits[q, c] = -d
  return logits


def test_logits_match_numpy_and_ignore_support_order():
  rng = np.random.default_rng(0)
  way, shot, t, c = 4, 3, 5, 7
  labels = np.repeat(np.arange(way), shot)
  support = rng.normal(size=(way * shot, t, c)).astype(np.float32)
  query = rng.normal(size=(6, t, c)).astype(np.float32)
  expected = _numpy_logits(support, labels, query, way)
  got = protonet.protonet_logits(support, labels, query, way)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  perm = rng.permutation(len(labels))
  np.testing.assert_allclose(
      protonet.protonet_logits(support[perm], labels[perm], query, way),
      expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      protonet.protonet_logits(support, labels, query, way, scale=3.0),
      3 * expected, rtol=1e-5, atol=1e-5)


def test_distance_closed_forms():
  x = jnp.ones((4, 3))
  assert float(protonet.frame_cosine_distance(x, x)) == 0.0
  assert np.isclose(float(protonet.frame_cosine_distance(x, -x)), 8.0)
  e0, e1 = jnp.eye(2)[0], jnp.eye(2)[1]
  assert np.isclose(float(protonet.frame_cosine_distance(e0[None], e1[None])), 1.0)
  assert np.isfinite(float(protonet.frame_cosine_distance(jnp.zeros((2, 3)), x[:2])))


def test_classification_loss_is_cross_entropy():
  logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
  labels = jnp.array([0, 2])
  loss, accuracy = losses.classification(logits, labels)
  p = np.exp(np.asarray(logits))
  p /= p.sum(1, keepdims=True)
  np.testing.assert_allclose(loss, -np.mean(np.log(p[[0, 1], [0, 2]])), rtol=1e-6)
  assert float(accuracy) == 0.5
