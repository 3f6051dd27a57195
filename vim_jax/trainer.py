"""The one training loop: `fit(experiment, workdir, writer)`, with its
checkpoints, resume, metric reports, NaN check and SIGTERM handling.

Every trained thing goes through it: the few-shot model (`train.Experiment`)
and the pretraining of the backbone and the scan net
(`weights.pretrain.Pretraining`). An experiment gives `config` (its `train`
section: num_steps, log_every, eval_every, val_episodes, checkpoint_every,
keep_checkpoints, profile_steps; `eval.seed`; `parallel`), `runner`
(`parallel.Runner`), `init_state()`, `train_batches(start_step)` (numpy
batches with the episodes' global 'index'), `train_step(state, batch)` ->
(state, metrics) and `evaluate(variables, split, num_episodes, seed)` ->
`evaluate.summarise`'s dict. Workdir layout:
  checkpoints/<step>/   latest states (orbax; resume restores from here)
  best/<step>/          the variables with the best validation accuracy
  */corrupt-<step>/     a checkpoint a resumed run could not read, set aside
  events.*              CLU summaries (TensorBoard)
  train_episodes.tsv    step and episode indices consumed (resume audit)
"""
import contextlib
import functools
import logging
import os
import signal
import threading

from clu import metrics as clu_metrics
from clu import periodic_actions
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from input_pipeline import episodes as episodes_lib
from vim_jax import evaluate


@functools.lru_cache(maxsize=None)
def metrics_collection(names: tuple[str, ...]):
  """A CLU collection averaging every scalar the train step reports."""
  last = ('lr', 'sigma', 'prior')
  return clu_metrics.Collection.create(**{
      name: (clu_metrics.LastValue if name in last else clu_metrics.Average
             ).from_output(name) for name in sorted(names)})


def variables_of(state):
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _managers(workdir, save_every=1, keep=None):
  """The 'checkpoints' (latest states) and 'best' managers of a workdir.

  Each is told its items: a state (one unnamed item) in checkpoints/STEP,
  'variables' and 'meta' in best/STEP. Left to guess, orbax settles the
  layout from the first step it reads, for good: a step whose item folder
  is gone would make it read every other step as the wrong layout, and one
  partly deleted checkpoint would make all of them unreadable.
  """
  latest = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'checkpoints'),
      options=ocp.CheckpointManagerOptions(
          save_interval_steps=save_every, max_to_keep=keep, create=True),
      item_handlers=ocp.StandardCheckpointHandler())
  best = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), 'best'),
      options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
      item_handlers=dict(variables=ocp.StandardCheckpointHandler(),
                         meta=ocp.JsonCheckpointHandler()))
  return latest, best


def abstract_of(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def log_results(writer, step, prefix, results):
  """Accuracy and CI, and the modules' diagnostics where the model has
  them (`evaluate.EPISODE_MEANS`: frames in the action, alignment cost,
  unaligned accuracy, warps and offsets at their bounds), so validation
  shows over the steps what the sampler and the alignment do."""
  extra = {name: results[name] for name, _ in evaluate.EPISODE_MEANS.values()
           if name in results}
  writer.write_scalars(step, {f'{prefix}/accuracy': results['accuracy'],
                              f'{prefix}/ci95': results['ci95'],
                              **{f'{prefix}/{k}': v for k, v in extra.items()}})
  logging.info('%s accuracy at step %d: %.2f +- %.2f %% over %d episodes%s',
               prefix, step, results['accuracy'], results['ci95'],
               results['num_episodes'],
               ''.join(f'; {k} {v:.2f}' for k, v in extra.items()))


def _check_finite(metrics, step, indices):
  bad = [k for k, v in metrics.items() if not np.all(np.isfinite(v))]
  if bad:
    raise FloatingPointError(
        f'non-finite {bad} at step {step} (episodes '
        f'{np.asarray(indices).tolist()}); the last checkpoint is intact.')


def _sync_step(config, latest, step) -> bool:
  """Whether the host waits for the devices after `step`.

  Only where the metrics are logged, the state is saved or validated, or
  the run ends: in between the host dispatches the next step while the
  devices still compute the one before (`fit` keeps at most two in flight,
  so that a SIGTERM is acted on within about a step). The steps' metrics
  are checked for NaN/Inf in order at the next sync step, before any save,
  so a non-finite step is named exactly and never checkpointed.
  """
  return (step % config.train.log_every == 0 or _validates(config, step)
          or latest.should_save(step))


def _validates(config, step) -> bool:
  """Whether `step` is validated: every `train.eval_every` steps, and the
  last one."""
  return (step % config.train.eval_every == 0
          or step == config.train.num_steps)


def _save_and_validate(experiment, state, step, managers, best_val, writer,
                       force):
  """Saves and validates at `step` where the schedule says so.

  The state leaves the devices only for a save or a validation, not every
  step.

  Args:
    experiment: the `Experiment`.
    state: the state on the devices.
    step: the step just taken.
    managers: the 'checkpoints' and 'best' managers (`_managers`).
    best_val: the best validation accuracy so far (None: none yet).
    writer: the metric writer.
    force: save whatever the schedule (a SIGTERM stops the run).

  Returns:
    The best validation accuracy so far.
  """
  config = experiment.config
  latest, best = managers
  save = force or latest.should_save(step)
  validate = _validates(config, step)
  if save or validate:
    host_state = experiment.runner.get_state(state)
  if save:
    latest.save(step, args=ocp.args.StandardSave(host_state), force=force)
  if validate:
    val = experiment.evaluate(variables_of(host_state), 'validation',
                              config.train.val_episodes, config.eval.seed)
    log_results(writer, step, 'val', val)
    if best_val is None or val['accuracy'] > best_val:
      best_val = val['accuracy']
      best.save(step, args=ocp.args.Composite(
          variables=ocp.args.StandardSave(variables_of(host_state)),
          meta=ocp.args.JsonSave(dict(step=step, val=val))), force=True)
  return best_val


class _TrainReport:
  """The train metrics, averaged over `log_every` steps (and up to the last
  step), and the progress report (steps/s, ETA) on process 0."""

  def __init__(self, writer, train_config):
    self.writer = writer
    self.log_every = train_config.log_every
    self.num_steps = train_config.num_steps
    self.metrics = None  # merged since the last write
    self.hooks = []
    if jax.process_index() == 0:
      self.hooks = [periodic_actions.ReportProgress(
          num_train_steps=self.num_steps, writer=writer, every_secs=None,
          every_steps=self.log_every)]

  def add(self, step, metrics):
    """Merges one step's metrics; writes them at a logging step."""
    update = metrics_collection(
        tuple(sorted(metrics))).single_from_model_output(**metrics)
    self.metrics = update if self.metrics is None else self.metrics.merge(
        update)
    for hook in self.hooks:
      hook(step)
    if step % self.log_every == 0 or step == self.num_steps:
      self.writer.write_scalars(step, {f'train/{k}': v for k, v in
                                       self.metrics.compute().items()})
      self.metrics = None


class _EpisodeLog:
  """train_episodes.tsv: one line per step, its global episode indices.

  Every process holds only its share of a step's episodes: they are gathered
  (in process order, which is the stream's order, see
  `episodes_lib.train_indices`) and process 0 writes the line, so the file
  is the same for any number of processes. Flushed at each sync step
  (`_sync_step`), with the metrics.
  """

  def __init__(self, path):
    self._file = open(path, 'a') if jax.process_index() == 0 else None

  def write(self, step, local_indices):
    indices = np.asarray(local_indices)
    if jax.process_count() > 1:
      indices = multihost_utils.process_allgather(indices, tiled=True)
    if self._file:
      self._file.write(f'{step}\t{",".join(map(str, indices))}\n')

  def flush(self):
    if self._file:
      self._file.flush()

  def close(self):
    if self._file:
      self._file.close()


def _profile_window(num_steps, start_step, workdir):
  """A per-step hook tracing `num_steps` steps with `jax.profiler`.

  The trace starts at the second step of this run (the first one compiles)
  and goes to WORKDIR/profile (TensorBoard's profile plugin, or Perfetto
  for the trace.json.gz). 0 steps: no trace.
  """
  first = start_step + 2
  last = first + num_steps - 1
  active = []

  def hook(step):
    """Call before each step, and with None after the last one."""
    if not num_steps or jax.process_index() > 0:
      return
    if step == first:
      logging.info('Tracing steps %d..%d to %s/profile', first, last, workdir)
      jax.profiler.start_trace(os.path.join(workdir, 'profile'))
      active.append(step)
    elif active and (step is None or step > last):
      jax.profiler.stop_trace()
      active.clear()

  return hook


# Exit status of a run stopped by SIGTERM after saving its checkpoint
# (128 + SIGTERM, what a shell reports for a process the signal ended).
PREEMPTED_EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(Exception):
  """SIGTERM arrived; the checkpoint of `step` is saved. main.py exits with
  `PREEMPTED_EXIT_STATUS`; running the same command again resumes.

  Args:
    step: the last step trained, whose checkpoint every process saved.
    processes: the processes that received SIGTERM (every process of the
      job stops at `step`, whichever received it).
  """

  def __init__(self, step, processes=(0,)):
    where = ''
    if jax.process_count() > 1:
      where = (f' (SIGTERM reached process {", ".join(map(str, processes))} '
               f'of {jax.process_count()}; every process stopped there)')
    super().__init__(f'SIGTERM: stopped after step {step}{where}, whose '
                     'checkpoint is saved; run the same command again to '
                     'resume.')
    self.step = step
    self.processes = list(processes)


@contextlib.contextmanager
def _sigterm_flag():
  """An event that SIGTERM sets while the block runs.

  The handler is installed from the main thread only (Python allows no
  other; elsewhere the event is never set) and the previous one is put back
  when the block ends, by return or exception, so that SIGTERM after training
  (during the test) has its usual effect instead of setting a flag nobody
  reads. A handler installed outside Python is invisible to
  `signal.signal` and cannot be put back: JAX's preemption notifier, which
  `jax.distributed.initialize` installs, is replaced by this one while
  training (the processes decide together instead, see
  `_sigterm_processes`), and SIGTERM has its default effect afterwards.
  """
  flag = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield flag
    return
  previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
  try:
    yield flag
  finally:
    signal.signal(signal.SIGTERM,
                  signal.SIG_DFL if previous is None else previous)


def _sigterm_processes(flag) -> list[int]:
  """The processes whose SIGTERM flag is set, the same list in every process.

  Every process calls this at the same point of every step and stops after
  that step when the list is not empty. A process that stopped on its own
  flag would leave the others waiting at the next step's collective (the
  gradient mean) while it saves, and orbax's save of global arrays needs
  every process: so with several processes each step all-gathers one bool
  per process (a few milliseconds on CPU, next to the episode indices the
  step already gathers) and all stop at the same step, save the same
  checkpoint and exit alike. One process reads its flag alone (no
  collective).

  JAX's own protocol (`multihost_utils.reached_preemption_sync_point`, which
  orbax's CheckpointManager can consult) works on CPU too but is not used:
  it exists only under `jax.distributed`, so one process would still need
  this flag; its SIGTERM notifier is a C handler that Python can neither see
  nor put back; and it agrees in a background thread, through a barrier of
  the coordination service, on the step after the fastest process's. The
  gather is one code path with the one-process flag and decides at the step
  every process is at.
  """
  if jax.process_count() == 1:
    return [0] if flag.is_set() else []
  flags = multihost_utils.process_allgather(np.asarray(flag.is_set()))
  return np.flatnonzero(np.asarray(flags)).tolist()


class UnreadableCheckpointError(RuntimeError):
  """A checkpoint that is needed cannot be read (truncated, partly deleted);
  the message names its folder and what failed."""


def _why(error) -> str:
  """What failed, in one line: orbax's and TensorStore's errors run long."""
  text = ' '.join(str(error).split())
  return f'{type(error).__name__}: {text[:300]}'


def _set_aside(manager, step, error):
  """Says that `manager`'s `step` cannot be read; moves it to corrupt-STEP.

  The folder is kept beside the others for inspection, and out of orbax's
  way when that step is saved again (orbax refuses to save a step that
  exists). Process 0 moves it; every process waits for the move before
  listing the steps again (all of them failed to read the same files).
  """
  folder = os.path.join(manager.directory, str(step))
  logging.error('Checkpoint %s cannot be read (%s); moving it to corrupt-%d.',
                folder, _why(error), step)
  if jax.process_index() == 0:
    aside = os.path.join(manager.directory, f'corrupt-{step}')
    while os.path.exists(aside):  # an earlier corrupt copy of the step
      aside += '+'
    os.replace(folder, aside)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'set aside {folder}')
  manager.reload()


def _resume(latest, state):
  """The newest readable checkpoint's state, or `state` without any.

  A checkpoint that cannot be read (truncated, partly deleted) is said by
  name and set aside (`_set_aside`), and the previous kept one is tried. No
  readable checkpoint at all is an error: starting over silently would lose
  the run.
  """
  steps = sorted(latest.all_steps(), reverse=True)
  for step in steps:
    try:
      restored = latest.restore(
          step, args=ocp.args.StandardRestore(abstract_of(state)))
    except Exception as error:  # pylint: disable=broad-except
      _set_aside(latest, step, error)
      continue
    logging.info('Resuming from %s step %d', latest.directory, step)
    return restored
  if steps:
    raise UnreadableCheckpointError(
        f'No readable checkpoint in {latest.directory} (tried steps {steps}; '
        'each is moved to corrupt-STEP): nothing to resume from.')
  return state


def _best_value(best, abstract):
  """The kept best checkpoint's validation accuracy; None without one.

  A resumed run keeps a new best only when it beats this one. The whole
  checkpoint is read (its record and its variables, as `abstract`), not the
  record alone: a best whose variables are unreadable could never be tested,
  yet its accuracy would keep every later validation from replacing it. An
  unreadable one is set aside (`_set_aside`) and None returned, so the next
  validation saves a new best.
  """
  step = best.latest_step()
  if step is None:
    return None
  try:
    restored = best.restore(step, args=ocp.args.Composite(
        variables=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
    return restored.meta['val']['accuracy']
  except Exception as error:  # pylint: disable=broad-except
    _set_aside(best, step, error)
    return None


def _restore_best(best, step, abstract):
  return best.restore(step, args=ocp.args.Composite(
      variables=ocp.args.StandardRestore(abstract))).variables


def _restore_latest(latest, step):
  # Without a target each array takes the sharding it was saved with; where
  # that names devices this layout lacks (2 processes of 2 CPU devices save
  # on device ids 0, 1, 2048, 2049), every process reads the arrays whole
  # onto its first local device instead.
  state = latest.restore(step, args=ocp.args.StandardRestore(
      fallback_sharding=jax.sharding.SingleDeviceSharding(
          jax.local_devices()[0])))
  variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
  return jax.tree.map(jnp.asarray, variables)


def restore_variables(workdir, which, abstract):
  """Variables of the 'best', 'latest' or a numbered checkpoint.

  A checkpoint that cannot be read (truncated, partly deleted) is named,
  with what failed, and nothing is moved: evaluating only reads the workdir.
  'best' asks for a choice among the saved states, so an unreadable one is
  replaced by the closest readable state, in this order: the training
  checkpoint of the same step (checkpoints/STEP: the same parameters), an
  older best step if one is kept, then the training checkpoints from the
  newest; an error names the unreadable folder and the one tested instead,
  and the name returned (test_results.json's 'checkpoint') is the one
  really tested. 'latest' and a step number ask for one state: an unreadable
  one is an `UnreadableCheckpointError` naming its folder, never replaced,
  since another state's results would be reported under its name.

  Returns:
    (variables, name): name is 'best/STEP' or 'checkpoints/STEP'.
  """
  latest, best = _managers(workdir)
  if which == 'best':
    best_steps = sorted(best.all_steps(), reverse=True)
    if not best_steps:
      logging.warning('No best/ checkpoint in %s (no validation ran): testing '
                      'the latest state instead.', workdir)
    candidates = [(kind, step) for step in best_steps
                  for kind in ('best', 'checkpoints')
                  if kind == 'best' or step in latest.all_steps()]
    candidates += [('checkpoints', step) for step in
                   sorted(latest.all_steps(), reverse=True)
                   if ('checkpoints', step) not in candidates]
    if not candidates:
      raise FileNotFoundError(
          f'config.eval.checkpoint={which!r}: no checkpoint in '
          f'{best.directory} or {latest.directory}.')
  else:
    step = latest.latest_step() if which == 'latest' else int(which)
    if step is None or step not in latest.all_steps():
      raise FileNotFoundError(
          f'config.eval.checkpoint={which!r}: no such checkpoint in '
          f'{latest.directory} (have {latest.all_steps()}).')
    candidates = [('checkpoints', step)]
  unreadable = []
  for kind, step in candidates:
    folder = os.path.join(os.path.abspath(workdir), kind, str(step))
    try:
      variables = (_restore_best(best, step, abstract) if kind == 'best'
                   else _restore_latest(latest, step))
    except Exception as error:  # pylint: disable=broad-except
      logging.error('Checkpoint %s cannot be read (%s).', folder, _why(error))
      unreadable.append((folder, error))
      continue
    if unreadable:
      logging.error('config.eval.checkpoint=%r: testing %s instead, since %s '
                    'cannot be read.', which, folder,
                    ' and '.join(f for f, _ in unreadable))
    return variables, f'{kind}/{step}'
  if len(candidates) == 1:
    folder, error = unreadable[0]
    raise UnreadableCheckpointError(
        f'config.eval.checkpoint={which!r}: checkpoint {folder} cannot be '
        f'read ({_why(error)}). The kept steps of {latest.directory} are '
        f'{latest.all_steps()}.')
  raise UnreadableCheckpointError(
      f'config.eval.checkpoint={which!r}: no readable checkpoint; tried ' +
      '; '.join(f'{folder} ({_why(error)})' for folder, error in unreadable))


def train_episodes(config, source, spec, start_step: int):
  """The training stream of `config` from `start_step` on: this process's
  share of every step's `train.episodes_per_step` episodes of (config.seed,
  'train'), as numpy batches; the same stream whatever the step a run
  resumes at (`episodes.train_indices`)."""
  train = config.train
  indices = episodes_lib.train_indices(
      start_step, train.num_steps, train.episodes_per_step,
      jax.process_index(), jax.process_count())
  return episodes_lib.episode_dataset(
      source, spec, seed=config.seed, split='train', indices=indices,
      batch=train.episodes_per_step // jax.process_count(),
      prefetch=config.data.prefetch).as_numpy_iterator()


def evaluate_episodes(runner, eval_step, variables, source, spec, *,
                      seed: int, split: str, num_episodes: int,
                      global_batch: int, prefetch: int) -> dict:
  """`evaluate.summarise` of `eval_step` over episodes 0..num_episodes-1 of
  (seed, split), each process running its share of every batch.

  `eval_step` is a `runner.compile(..., sharded_out=True)` function giving
  per-episode 'index', 'accuracy', 'correct' and 'query_class' (and any of
  `evaluate.EPISODE_MEANS`).
  """
  indices = episodes_lib.eval_indices(
      num_episodes, global_batch, jax.process_index(), jax.process_count())
  batches = episodes_lib.episode_dataset(
      source, spec, seed=seed, split=split, indices=indices,
      batch=global_batch // jax.process_count(), prefetch=prefetch)
  variables = runner.put_state(variables)
  results = []
  for batch in batches.as_numpy_iterator():
    out = eval_step(variables, runner.put_batch(batch))
    results.append(runner.get_sharded(out))
  results = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
  if jax.process_count() > 1:
    results = multihost_utils.process_allgather(results, tiled=True)
  return evaluate.summarise(results, num_episodes, source.class_names)


def fit(experiment, workdir: str, writer):
  """Trains `experiment` in `workdir`, resuming from its newest checkpoint.

  Validates every `train.eval_every` steps and at the last one, keeping the
  best variables in best/; the metrics of every step are checked for
  NaN/Inf before any save.

  Returns:
    (the final state on the host, the best validation accuracy in %).

  Raises:
    Preempted: SIGTERM arrived; the checkpoint of the step it names is saved.
    FloatingPointError: a non-finite metric, naming the step and episodes.
  """
  config, runner = experiment.config, experiment.runner
  train = config.train
  latest, best = _managers(workdir, train.checkpoint_every,
                           train.keep_checkpoints)
  state = _resume(latest, experiment.init_state())
  start_step = int(state.step)
  best_val = _best_value(best, abstract_of(variables_of(state)))
  state = runner.put_state(state)
  report = _TrainReport(writer, train)
  episode_log = _EpisodeLog(os.path.join(workdir, 'train_episodes.tsv'))
  step = start_step
  profile = _profile_window(train.profile_steps, start_step, workdir)
  stopping = []  # the processes that got SIGTERM, the same in every process
  with _sigterm_flag() as sigterm:
    logging.info('Training steps %d..%d on %d device(s) (%s)', start_step,
                 train.num_steps, runner.num_devices, config.parallel)
    pending = []  # (step, metrics on the devices, episodes) since a sync
    for step, batch in enumerate(experiment.train_batches(start_step),
                                 start=start_step + 1):
      profile(step)
      state, metrics = experiment.train_step(state, batch)
      pending.append((step, metrics, batch['index']))
      if len(pending) > 1:
        # At most this step and the one before it in flight: the devices
        # still overlap the host, and a SIGTERM stops within about a step
        # instead of after every step dispatched up to the next sync step.
        jax.block_until_ready(pending[-2][1])
      episode_log.write(step, batch['index'])
      stopping = _sigterm_processes(sigterm)
      if stopping or _sync_step(config, latest, step):
        for pending_step, metrics, indices in pending:
          metrics = runner.get_replicated(metrics)
          _check_finite(metrics, pending_step, indices)
          report.add(pending_step, metrics)
        pending = []
        episode_log.flush()
      best_val = _save_and_validate(experiment, state, step, (latest, best),
                                    best_val, writer, force=bool(stopping))
      if stopping:
        break
    profile(None)
    episode_log.close()
    host_state = runner.get_state(state)
    if step not in latest.all_steps():
      latest.save(step, args=ocp.args.StandardSave(host_state), force=True)
    latest.wait_until_finished()
    best.wait_until_finished()
    # A SIGTERM after the last step's decision still stops before the test.
    stopping = stopping or _sigterm_processes(sigterm)
  if stopping:
    raise Preempted(step, stopping)
  return host_state, best_val
