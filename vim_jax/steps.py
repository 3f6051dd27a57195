"""Pure per-device train and eval steps, and the training state."""
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util
from flax.training import train_state

from vim_jax import losses
from vim_jax import parallel
from vim_jax.ops import frames as frames_ops


class TrainState(train_state.TrainState):
  """flax's TrainState with the batch-norm statistics and the base key.

  Everything a resumed run needs; its leaves are arrays (orbax saves them by
  field name: step, params, opt_state, batch_stats, rng). `tx` is static and
  `apply_fn` is None: the steps take the model as an argument.
  """
  batch_stats: Any
  rng: jax.Array  # uint32 [2]: the base key; step keys are folded from it


def lr_schedule(train_config):
  """The paper's step decay: lr * decay ** (step // every)."""
  return optax.exponential_decay(
      train_config.lr, transition_steps=train_config.lr_decay_every,
      decay_rate=train_config.lr_decay, staircase=True)


def sigma_schedule(train_config, step):
  """Perturbed top-k noise: sigma * decay ** (step // every), floored."""
  sigma = train_config.sigma * train_config.sigma_decay ** (
      step // train_config.sigma_decay_every)
  return jnp.maximum(sigma, train_config.sigma_min)


def prior_schedule(train_config, step):
  """Weight of TS's uniform prior: 1 at step 0, falling linearly to 0.

  Reaches 0 at `train.uniform_prior_steps` (0: no prior). See
  `VideoSampler.__call__`.
  """
  steps = train_config.uniform_prior_steps
  if not steps:
    return 0.0
  return jnp.clip(1.0 - step / steps, 0.0, 1.0)


def parse_lr_scales(text: str) -> dict[str, float]:
  """`train.lr_scales`, 'PATH=SCALE,...', as {PATH: SCALE}.

  PATH is a parameter path joined by '/' ('sampler/evaluator_w1'): every
  parameter at or under it.

  Raises:
    ValueError: naming the item that is not PATH=SCALE with a number
      SCALE >= 0.
  """
  scales = {}
  for item in filter(None, (part.strip() for part in text.split(','))):
    path, sep, value = item.partition('=')
    try:
      scale = float(value) if sep and path.strip() else -1.0
    except ValueError:
      scale = -1.0
    if scale < 0:
      raise ValueError(f'config.train.lr_scales: {item!r} is not '
                       'PATH=SCALE with SCALE >= 0.')
    scales[path.strip().strip('/')] = scale
  return scales


def scale_by_path(scales: dict[str, float]) -> optax.GradientTransformation:
  """Multiplies the updates of the parameters at or under each path by its
  scale (the longest matching path wins): a per-module learning rate.

  `init` raises a ValueError naming a path that matches no parameter.
  """
  def matches(name):
    return [p for p in scales if name == p or name.startswith(p + '/')]

  def init(params):
    names = traverse_util.flatten_dict(params, sep='/')
    for p in scales:
      if not any(p in matches(name) for name in names):
        raise ValueError(f'config.train.lr_scales: {p!r} is no parameter '
                         "path of the model (e.g. 'sampler/evaluator_w1').")
    return optax.EmptyState()

  def update(updates, state, params=None):
    del params
    def scale(path, update):
      found = max(matches('/'.join(path)), key=len, default=None)
      return update if found is None else update * scales[found]
    return traverse_util.path_aware_map(scale, updates), state
  return optax.GradientTransformation(init, update)


def make_optimizer(train_config) -> optax.GradientTransformation:
  """SGD with momentum, weight decay and optional global-norm clipping,
  and per-module learning-rate scales (`train.lr_scales`)."""
  clip = ([optax.clip_by_global_norm(train_config.grad_clip_norm)]
          if train_config.grad_clip_norm > 0 else [])
  scales = parse_lr_scales(train_config.get('lr_scales', ''))
  return optax.chain(
      *clip, optax.add_decayed_weights(train_config.weight_decay),
      optax.sgd(lr_schedule(train_config), momentum=train_config.momentum),
      *([scale_by_path(scales)] if scales else []))


def init_state(model, tx, example_episode, seed: int) -> TrainState:
  """Initial parameters from one (unbatched) episode's shapes."""
  init_key, state_key = jax.random.split(jax.random.PRNGKey(seed))
  params_key, sampler_key = jax.random.split(init_key)
  variables = jax.jit(lambda ep: model.init(
      {'params': params_key, 'sampler': sampler_key}, ep, train=False))(
          example_episode)
  params = variables['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), apply_fn=None, params=params, tx=tx,
      opt_state=tx.init(params), batch_stats=variables.get('batch_stats', {}),
      rng=state_key)


def episode_keys(base, index):
  """One key per episode from its global index: the same for any layout."""
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(index)


# The weighted terms of `losses.total_loss` (`losses.term_weight`).
TERMS = ('cls_loss', 'intra_loss', 'inter_loss', 'distill_loss')


def module_norms(grads, prefix):
  """{prefix_MODULE: global norm} over the top-level modules of `grads`
  (the sampler split into its scan net and the rest)."""
  parts = dict(grads)
  if 'sampler' in parts:
    sampler = dict(parts.pop('sampler'))
    parts['scan'] = sampler.pop('scan', {})
    parts['sampler'] = sampler
  return {f'{prefix}_{name}': optax.tree.norm(tree)
          for name, tree in parts.items()}


def routed_inter_outputs(model, variables, outputs, episode):
  """L_inter's aligned side from a pass that trains the alignment only.

  `train.inter_grad='alignment'`: the alignment and the metric run again
  on the training pass's backbone maps behind a stop-gradient, with the
  same SC perturbations ('alignment_key') and a head's parameters held
  fixed, so that L_inter's gradient reaches the alignment's parameters
  only. The values equal the first pass's 'logits' and 'aligned_query'.

  Args:
    model: the `FewShotModel`.
    variables: its variables.
    outputs: its training outputs on `episode` (with 'alignment_input').
    episode: one episode.

  Returns:
    {'inter_logits': [V_q, N], 'inter_query': [V_q, N, T, D]}, which
    `losses.total_loss` reads in place of 'logits' and 'aligned_query'.
  """
  logits, query, _ = model.apply(
      variables, jax.lax.stop_gradient(outputs['alignment_input']),
      episode['support_labels'], episode['support'].shape[0], train=True,
      rng=outputs.get('alignment_key'), fixed_head=True,
      method='aligned_logits')
  return {'inter_logits': logits, 'inter_query': query}


def train_step(state: TrainState, batch, *, model, train_config):
  """One update on this device's episodes [E, ...]; gradients mean over 'data'.

  Every episode is run on its own (vmap), batch-norm statistics included, so
  that E episodes on one device and one episode on each of E devices compute
  the same thing. The metrics hold the gradient's norm in each module
  ('grad_norm_backbone', ...) and, with `train.term_grad_norms`, each
  weighted loss term's ('grad_inter_loss_alignment', ...; one more backward
  pass per term, for diagnosis).
  """
  sigma = sigma_schedule(train_config, state.step)
  prior = prior_schedule(train_config, state.step)
  keys = episode_keys(state.rng, batch['index'])
  # The routed second alignment pass only matters when L_inter is weighed
  # (its metric is the same value either way).
  routed = bool(train_config.inter_grad == 'alignment'
                and losses.term_weight(train_config, 'inter_loss'))
  # L_intra's inputs (a second scan of the amplified frames) only when it
  # is weighed.
  intra = bool(losses.term_weight(train_config, 'intra_loss'))
  # The scan distillation on the amplified frames rescans them too.
  distill_amplified = bool(train_config.scan_distill_frames == 'amplified'
                           and losses.term_weight(train_config,
                                                  'distill_loss'))

  def loss_fn(params, term=None):
    def one(episode, key):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      outputs, mutated = model.apply(
          variables, episode, train=True, sigma=sigma, prior=prior,
          intra=intra, distill_amplified=distill_amplified,
          rngs={'sampler': key}, mutable=['batch_stats'])
      if routed and 'alignment_input' in outputs:
        outputs.update(routed_inter_outputs(model, variables, outputs,
                                            episode))
      loss, metrics = losses.total_loss(outputs, episode, train_config)
      if term is not None:
        loss = metrics[term] * losses.term_weight(train_config, term)
      return loss, (metrics, mutated['batch_stats'])
    loss, aux = jax.vmap(one)(batch, keys)
    return loss.mean(), aux

  grads, (metrics, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
  grads = parallel.pmean_tree(grads)
  norms = module_norms(grads, 'grad_norm')
  if train_config.get('term_grad_norms'):
    for term in TERMS:
      if term in metrics:
        term_grads, _ = jax.grad(loss_fn, has_aux=True)(state.params, term)
        norms.update(module_norms(parallel.pmean_tree(term_grads),
                                  'grad_' + term))
  batch_stats = parallel.pmean_tree(parallel.mean_over_episodes(batch_stats))
  metrics = parallel.pmean_tree(parallel.mean_over_episodes(metrics))
  metrics.update(norms)
  metrics['lr'] = lr_schedule(train_config)(state.step)
  metrics['sigma'] = sigma
  if train_config.uniform_prior_steps:
    metrics['prior'] = prior
  metrics['grad_norm'] = optax.tree.norm(grads)
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics


def used_frame_positions(outputs, frame_pos, frames):
  """Clip positions [V, T] of the frames the backbone saw."""
  if 'sampler' in outputs:
    return jnp.take_along_axis(frame_pos, outputs['sampler']['indices'], 1)
  if frame_pos.shape[1] == frames:
    return frame_pos
  return frame_pos[:, frames_ops.dense_frame_indices(frame_pos.shape[1],
                                                     frames)]


def eval_step(variables, batch, *, model):
  """Per-episode results on this device's episodes [E, ...] (no collectives).

  Returns:
    'accuracy' [E], 'correct' [E, V_q] bool, 'query_class' [E, V_q] global
    class ids, 'index' [E]; 'in_span' [E] (fraction of the frames used that
    lie inside the action, when the data knows it) and 'alignment_cost' [E]
    (mean Eq. 35 cost over the episode's pairs, with an alignment) and
    'unaligned_accuracy' [E] (with an alignment: the same model's accuracy
    from its unaligned features, i.e. the alignment switched off at test,
    Table 17, on the same episodes for free), 'warps_at_bound' and
    'offsets_at_bound' [E] (with an alignment: the share of TT warps and of
    SC offsets at their bound, `models.alignment.AT_BOUND`).
  """
  def one(episode):
    outputs = model.apply(variables, episode, train=False)
    hits = lambda logits: jnp.argmax(logits, -1) == episode['query_labels']
    correct = hits(outputs['logits'])
    result = dict(accuracy=correct.mean(), correct=correct,
                  query_class=episode['classes'][episode['query_labels']],
                  index=episode['index'])
    if 'span' in episode:
      pos = used_frame_positions(outputs, episode['frame_pos'],
                                 model.frames)
      span = episode['span']
      result['in_span'] = jnp.mean(
          (pos >= span[:, :1]) & (pos < span[:, 1:]))
    if 'alignment' in outputs:
      result['alignment_cost'] = outputs['alignment']['cost'].mean()
      result['unaligned_accuracy'] = hits(outputs['unaligned_logits']).mean()
      for key in ('warps_at_bound', 'offsets_at_bound'):
        result[key] = outputs['alignment'][key].mean()
    return result
  return jax.vmap(one)(batch)
