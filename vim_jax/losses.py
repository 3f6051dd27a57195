"""Training objective L = L_cls + mu1 L_intra + mu2 L_inter (paper Eq. 34)."""
import jax.numpy as jnp
import optax


def classification(logits, labels):
  """L_cls (Eq. 24), averaged over queries, and the accuracy.

  Args:
    logits: [V_q, N].
    labels: [V_q] int labels.
  """
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, accuracy


def total_loss(outputs, episode, train_config):
  """The episode's loss and its scalar metrics.

  Args:
    outputs: the model's dict; 'logits' [V_q, N] always.
    episode: one episode; 'query_labels' [V_q].
    train_config: `config.train` (the loss weights mu1, mu2).

  Returns:
    (loss, metrics) with scalar metrics 'loss', 'cls_loss', 'accuracy'.
  """
  del train_config  # mu1, mu2 weigh terms that modules add to `outputs`
  cls_loss, accuracy = classification(outputs['logits'], episode['query_labels'])
  loss = cls_loss
  return loss, dict(loss=loss, cls_loss=cls_loss, accuracy=accuracy)
