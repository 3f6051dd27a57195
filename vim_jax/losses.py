"""Training objective L = L_cls + mu1 L_intra + mu2 L_inter (paper Eq. 34).

L_intra is estimated as in variational self-distillation (VSD, Tian et al.
2021), through predictive class distributions over the episode's N classes,
each the softmax of ProtoNet logits (negative frame-wise cosine distances to
the class prototypes). L_inter has two estimators (`INTER_ESTIMATORS`,
`config.train.inter_estimator`): 'features', the authors' released one
(channel distributions of the query's frame features before and after the
alignment), and 'prediction', the same VSD reading through class
distributions.

L_cls is reduced over an episode's queries by `config.train.cls_reduction`
(`CLS_REDUCTIONS`): 'mean', or 'sum' as in the authors' code, where the MI
terms stay means, so that 'sum' weighs L_cls V_q times more against them at
the same mu1, mu2.
"""
import jax
import jax.numpy as jnp
import optax

from vim_jax.ops import vectors

INTER_ESTIMATORS = ('features', 'prediction')
# What L_inter's gradient reaches (`train.inter_grad`; `steps.train_step`).
INTER_GRADS = ('all', 'alignment')
CLS_REDUCTIONS = ('mean', 'sum')
# Which frames' scan features `scan_distillation` pairs with the backbone's
# (`few_shot.FewShotModel.__call__`'s `distill_amplified`).
SCAN_DISTILL_FRAMES = ('selected', 'amplified')


def classification(logits, labels, reduction='mean'):
  """L_cls (Eq. 24), reduced over queries, and the accuracy.

  Args:
    logits: [V_q, N].
    labels: [V_q] int labels.
    reduction: 'mean' or 'sum' over the queries (`CLS_REDUCTIONS`).
  """
  if reduction not in CLS_REDUCTIONS:
    raise ValueError(f'reduction={reduction!r} (config.train.cls_reduction) '
                     f'is not one of {CLS_REDUCTIONS}.')
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  loss = loss.sum() if reduction == 'sum' else loss.mean()
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, accuracy


def kl_divergence(target_logits, logits):
  """Mean over rows of KL(p || q), p = softmax(target_logits), q = softmax(logits).

  optax's KL with log targets, from log-softmaxes, over the terms with p > 0
  (0 log 0 = 0): finite for one-hot-like and uniform distributions.
  """
  log_p = jax.nn.log_softmax(target_logits, -1)
  return jnp.mean(optax.losses.kl_divergence_with_log_targets(
      jax.nn.log_softmax(logits, -1), log_p, where=jnp.exp(log_p) > 0))


def intra_video(dense_logits, selected_logits):
  """L_intra (Eq. 26-28): |I(Y; f_X) - I(Y; f_XD)| as a VSD distillation.

  I(Y; f_X) <= I(Y; f_XD) since X = Sampler(X_D) (data processing), and the
  gap vanishes when the class distribution predicted from the selected
  frames' scan features equals the one predicted from all M dense frames:

    L_intra = mean_q KL( p(y | f_XD(q)) || p(y | f_X(q)) ),

  with p(y | f) the softmax of ProtoNet logits on scan features (prototypes
  from the support's scan features of the same kind). The dense side is the
  target (stop-gradient): the sampler must keep the dense video's class
  information, not the dense prediction move towards the selection.

  Args:
    dense_logits: [V_q, N] from the M dense frames' scan features.
    selected_logits: [V_q, N] from the scan features of the T frames the
      sampler produced (selected, and amplified with SA).
  """
  return kl_divergence(jax.lax.stop_gradient(dense_logits), selected_logits)


def inter_video(aligned_logits, unaligned_logits, labels, kl_weight=1.0):
  """L_inter (Eq. 29-33) = -(I(Y; F~_q) - I(F~_q; F_q)), the 'prediction'
  estimator.

  VSD estimates through the predictive distributions p_a = p(y | F~_q)
  (aligned query, the model's logits) and p_u = p(y | F_q) (unaligned query
  against unaligned prototypes):
    I(Y; F~_q)    ~ -CE(p_a, y) + const   (class information kept),
    I(F~_q; F_q)  ~ -KL(p_u || p_a) + const (the more the aligned prediction
                    merely repeats the unaligned one, the more they share),
  so L_inter = CE(p_a, y) - beta KL(sg(p_u) || p_a), beta = `kl_weight`.
  The unaligned side is a target (stop-gradient): the alignment is rewarded
  for adding information beyond the raw features, not the raw features for
  moving. The KL term is bounded because the logits are bounded
  (-scale * [0, 2T]).

  beta = 1 (`train.inter_kl_weight`'s default) is Eq. 33 as DESIGN.md reads
  it. The KL term then rewards the aligned prediction for differing from the
  unaligned one in any direction, also away from a right answer, and on the
  procedural data it fought L_cls (docs/results.md, Table 4). beta = 0 keeps the
  class-information term alone. beta = -1 is VSD's own use of the KL (Tian
  et al. 2021 minimise KL(p(y | v) || p(y | z)) to drop the information of
  a representation z that is superfluous to y): with Eq. 31's decomposition
  I(F~; F) = I(F~; Y) + I(F~; F | Y), minimising I(F~; F) beyond its class
  part is a distillation of p_a towards sg(p_u).

  Which parameters the term trains is `train.inter_grad`:
  'all' sends its gradient through p_a to the alignment and the backbone
  under it; 'alignment' to the alignment's parameters only (the paper
  introduces L_inter as "an auxiliary loss for the alignment model"), so
  that its CE part does not train the backbone a second time beside L_cls.

  Args:
    aligned_logits: [V_q, N].
    unaligned_logits: [V_q, N].
    labels: [V_q].
    kl_weight: beta, the KL term's weight (any sign).
  """
  ce, _ = classification(aligned_logits, labels)
  return ce - kl_weight * kl_divergence(
      jax.lax.stop_gradient(unaligned_logits), aligned_logits)


def inter_video_features(aligned_query, unaligned_query, temperature=1.0):
  """L_inter's I(F~_q; F_q) term, estimated on features (the authors' code).

  Each query frame's spatially pooled feature is read as a distribution over
  its D channels, p = softmax(f / temperature), before the alignment (F_q,
  a stop-gradient target) and after it against each class (F~_q):

    L_inter = mean_{q, n} sum_t KL( p(F~_q[q, n, t]) || sg p(F_q[q, t]) ).

  Eq. 33 adds +I(F~_q; F_q) to the loss, so this term is minimised. It is
  never negative and is exactly 0 when the aligned features equal the
  unaligned ones, so it holds the alignment near the identity unless L_cls
  pays for moving it, and it cannot push a warp or an offset to its bound.
  The class term I(Y; F~_q) of Eq. 33 adds no gradient in the authors' code
  (its logits are detached); L_cls on the aligned logits carries it.

  Args:
    aligned_query: [V_q, N, T, D] query features after the alignment.
    unaligned_query: [V_q, T, D] the same queries' features before it.
    temperature: of the channel softmaxes.
  """
  log_aligned = jax.nn.log_softmax(
      aligned_query.astype(jnp.float32) / temperature, -1)
  log_unaligned = jax.nn.log_softmax(
      jax.lax.stop_gradient(unaligned_query).astype(jnp.float32)[:, None]
      / temperature, -1)
  kl = optax.losses.kl_divergence_with_log_targets(log_unaligned, log_aligned)
  # KL >= 0; the floor only removes float rounding below 0.
  return jnp.maximum(kl, 0.0).sum(-1).mean()


def _centred_cosines(frames):
  """[V, T, C] -> the [V T, V T] cosines of the frames' features, each
  centred on the mean over all V T frames (guarded norms)."""
  x = frames.reshape(-1, frames.shape[-1]).astype(jnp.float32)
  x = x - x.mean(0, keepdims=True)
  x = vectors.l2_normalise(x)
  return jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)


def scan_distillation(scan_frames, backbone_frames):
  """Relational distillation of the scan net from the backbone (not in the
  paper).

  The paper's scan net starts from ImageNet, so its maps tell the actor from
  the clutter from the first step. Trained from scratch nothing asks it to:
  L_intra's target is its own dense prediction, and its features stayed at
  chance as a ProtoNet in every from-scratch checkpoint, and a class loss on
  them did not move from ln N either (docs/results.md, "What the sampler
  needs").
  Here the scan net learns to see the episode's frames as the backbone,
  trained by L_cls at the same time, sees them:

    L_distill = mean_{i,j} (cos_s(i, j) - sg(cos_b(i, j)))^2

  over every pair of the V T selected frames, cos_s and cos_b the cosines
  of the scan net's and the backbone's pooled features, each centred on
  its mean over the episode's frames. The two widths may differ (no
  projection to learn), and the loss is 0 iff the two centred feature sets
  have the same angles, e.g. when the scan features are a positive
  multiple of the backbone's plus a constant. The backbone side is a
  stop-gradient target: the backbone is not pulled towards the scan net.

  Args:
    scan_frames: [V, T, c] scan features of the selected frames.
    backbone_frames: [V, T, C] backbone features of the same frames.
  """
  target = jax.lax.stop_gradient(_centred_cosines(backbone_frames))
  return jnp.mean(jnp.square(_centred_cosines(scan_frames) - target))


def term_weight(train_config, term):
  """The weight of a metric term of `total_loss` in the loss.

  mu1 and mu2 are in the paper's units (Eq. 34, Table 16) and are
  multiplied by `train.mi_weight_scale`: with `cls_reduction='mean'`,
  1 / (N Q) weighs the MI terms against L_cls as the authors' code
  ('sum') does, at the learning rate set for the mean.
  """
  scale = train_config.get('mi_weight_scale', 1.0)
  return {'cls_loss': 1.0,
          'intra_loss': scale * train_config.mu1,
          'inter_loss': scale * train_config.mu2,
          'distill_loss': train_config.scan_distill_weight}[term]


def total_loss(outputs, episode, train_config):
  """The episode's loss and its scalar metrics.

  Args:
    outputs: the model's dict: 'logits' [V_q, N]; with a sampler
      'intra_logits' = (dense, selected) [V_q, N] each; with an alignment
      'unaligned_logits' [V_q, N], 'aligned_query' [V_q, N, T, D],
      'alignment' (its aux, with 'query_unaligned' [V_q, T, D]) and, with
      `train.inter_grad='alignment'`, 'inter_logits' and 'inter_query'
      (L_inter's aligned side, in place of 'logits' and 'aligned_query').
    episode: one episode; 'query_labels' [V_q].
    train_config: `config.train` (cls_reduction, mu1, mu2, inter_estimator,
      inter_temperature, inter_kl_weight, scan_distill_weight).

  Returns:
    (loss, metrics): scalar 'loss', 'cls_loss', 'accuracy', and
    'intra_loss', 'distill_loss' (with a sampler) and 'inter_loss' (with an
    alignment) whenever their terms exist (they are reported even when
    their weight is 0).
  """
  labels = episode['query_labels']
  cls_loss, accuracy = classification(outputs['logits'], labels,
                                      train_config.cls_reduction)
  loss = cls_loss
  metrics = dict(cls_loss=cls_loss, accuracy=accuracy)
  if 'intra_logits' in outputs:
    metrics['intra_loss'] = intra_video(*outputs['intra_logits'])
    loss += term_weight(train_config, 'intra_loss') * metrics['intra_loss']
  if 'distill_frames' in outputs:
    metrics['distill_loss'] = scan_distillation(*outputs['distill_frames'])
    loss += term_weight(train_config, 'distill_loss') * metrics['distill_loss']
  if 'unaligned_logits' in outputs:
    estimator = train_config.inter_estimator
    if estimator == 'features':
      metrics['inter_loss'] = inter_video_features(
          outputs.get('inter_query', outputs['aligned_query']),
          outputs['alignment']['query_unaligned'],
          train_config.inter_temperature)
    elif estimator == 'prediction':
      metrics['inter_loss'] = inter_video(
          outputs.get('inter_logits', outputs['logits']),
          outputs['unaligned_logits'], labels,
          train_config.inter_kl_weight)
    else:
      raise ValueError(f'config.train.inter_estimator={estimator!r} is not '
                       f'one of {INTER_ESTIMATORS}.')
    loss += term_weight(train_config, 'inter_loss') * metrics['inter_loss']
  metrics['loss'] = loss
  return loss, metrics
