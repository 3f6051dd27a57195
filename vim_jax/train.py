"""Train, validate and test a few-shot model on episodes.

`train_and_evaluate(config, workdir)` is the whole job; `evaluate_only` is
`--mode=eval`. The training itself is the one loop of vim_jax/trainer.py,
whose workdir layout this adds to:
  checkpoints/, best/, events.*, train_episodes.tsv   (vim_jax/trainer.py)
  test_results.json     mean accuracy, 95% CI, per-class accuracy
"""
import functools
import json
import logging
import os
import time

from clu import metric_writers
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tensorflow as tf

from input_pipeline import datasets
from input_pipeline import episodes as episodes_lib
from vim_jax import losses
from vim_jax import parallel
from vim_jax import steps
from vim_jax import trainer
from vim_jax.figures import episode as episode_figures
from vim_jax.figures import sampler as sampler_figures
from vim_jax.models import build
from vim_jax.models import few_shot
from vim_jax.weights import load
from vim_jax.weights import pretrain


def episode_spec(config, split: str) -> episodes_lib.EpisodeSpec:
  """The episodes of a split: dense M frames with a sampler, else T."""
  frames = (config.data.dense_frames if few_shot.uses_sampler(config.model)
            else config.model.frames)
  return episodes_lib.EpisodeSpec.of(config.data, frames=frames,
                                     train=split == 'train')


# Computation dtypes of `config.model.dtype` (parameters and the loss stay
# float32 in both).
DTYPES = ('float32', 'bfloat16')


def check_config(config, workdir: str, num_devices: int):
  """Clear errors for impossible settings, before anything is built."""
  parent = os.path.dirname(os.path.abspath(workdir))
  if not os.path.isdir(parent):
    raise FileNotFoundError(
        f'--workdir={workdir}: its parent folder {parent} does not exist.')
  data, model, train = config.data, config.model, config.train
  for field, value, low in [
      ('data.way', data.way, 2), ('data.shot', data.shot, 1),
      ('data.query', data.query, 1), ('model.frames', model.frames, 1),
      ('train.episodes_per_step', train.episodes_per_step, 1),
      ('eval.episodes_per_step', config.eval.episodes_per_step, 1),
      ('eval.test_episodes', config.eval.test_episodes, 1)]:
    if value < low:
      raise ValueError(f'config.{field}={value} must be at least {low}.')
  if few_shot.uses_sampler(model) and data.dense_frames < model.frames:
    raise ValueError(
        f'config.data.dense_frames={data.dense_frames} (M) must be at least '
        f'config.model.frames={model.frames} (T).')
  for field in ('train.episodes_per_step', 'eval.episodes_per_step'):
    value = config[field.split('.')[0]][field.split('.')[1]]
    if value % num_devices:
      raise ValueError(
          f'config.{field}={value} must be a multiple of the {num_devices} '
          'devices.')
  for field, value, allowed in [
      ('train.inter_grad', train.inter_grad, losses.INTER_GRADS),
      ('train.inter_estimator', train.inter_estimator,
       losses.INTER_ESTIMATORS),
      ('train.cls_reduction', train.cls_reduction, losses.CLS_REDUCTIONS),
      ('train.scan_distill_frames', train.scan_distill_frames,
       losses.SCAN_DISTILL_FRAMES)]:
    if value not in allowed:
      raise ValueError(
          f'config.{field}={value!r} is not one of {allowed}.')
  if train.inter_temperature <= 0:
    raise ValueError(f'config.train.inter_temperature='
                     f'{train.inter_temperature} must be positive.')
  for field, value in [('train.mi_weight_scale', train.mi_weight_scale),
                       ('train.profile_steps', train.profile_steps)]:
    if value < 0:
      raise ValueError(f'config.{field}={value} must not be negative.')
  if model.dtype not in DTYPES:
    raise ValueError(f'config.model.dtype={model.dtype!r} is not one of '
                     f'{DTYPES}.')
  if config.parallel not in parallel.KINDS:
    raise ValueError(
        f'config.parallel={config.parallel!r} is not one of {parallel.KINDS}.')
  build.model(model, way=data.way)  # validates every config.model field


def example_episode(spec: episodes_lib.EpisodeSpec) -> dict:
  """Zeros with an episode's shapes, for initialisation."""
  frames = (spec.frames, spec.frame_size, spec.frame_size, 3)
  return dict(
      support=jnp.zeros((spec.num_support,) + frames, jnp.uint8),
      query=jnp.zeros((spec.num_query,) + frames, jnp.uint8),
      support_labels=jnp.arange(spec.num_support, dtype=jnp.int32) % spec.way,
      query_labels=jnp.arange(spec.num_query, dtype=jnp.int32) % spec.way,
      classes=jnp.arange(spec.way, dtype=jnp.int32),
      video=jnp.zeros((spec.num_support + spec.num_query,), jnp.int32),
      index=jnp.zeros((), jnp.int32))


class Experiment:
  """Model, optimiser, data sources and compiled steps of one config."""

  def __init__(self, config, runner: parallel.Runner):
    self.config = config
    self.runner = runner
    self.model = build.model(config.model, way=config.data.way)
    self.tx = steps.make_optimizer(config.train)
    self.sources = {}
    self._train_step = runner.compile(
        functools.partial(steps.train_step, model=self.model,
                          train_config=config.train), donate_state=True)
    self._eval_step = runner.compile(
        functools.partial(steps.eval_step, model=self.model), sharded_out=True)

  def source(self, split):
    if split not in self.sources:
      source = datasets.load_source(self.config.data, split)
      spec = episode_spec(self.config, split)
      source.check(spec)
      episodes_lib.log_spec(source.name, spec, source)
      self.sources[split] = source
    return self.sources[split]

  def init_state(self) -> steps.TrainState:
    state = steps.init_state(
        self.model, self.tx, example_episode(episode_spec(self.config, 'train')),
        self.config.seed)
    model = self.config.model
    if self.config.data.dataset != 'procedural':
      needed = ['backbone_weights'] + (
          ['scan_weights'] if few_shot.uses_sampler(model) else [])
      for field in needed:
        if not model[field]:
          logging.warning('config.model.%s is not set: random initialisation '
                          '(the paper starts from ImageNet weights).', field)
    if not (model.backbone_weights or model.scan_weights):
      return state
    variables = load.load_pretrained(
        {'params': state.params, 'batch_stats': state.batch_stats}, model)
    # The optimiser state (momentum) is rebuilt for the loaded parameters.
    return state.replace(
        params=variables['params'], batch_stats=variables['batch_stats'],
        opt_state=self.tx.init(variables['params']))

  def train_batches(self, start_step: int):
    return trainer.train_episodes(self.config, self.source('train'),
                                  episode_spec(self.config, 'train'),
                                  start_step)

  def train_step(self, state, batch):
    return self._train_step(state, self.runner.put_batch(batch))

  def evaluate(self, variables, split: str, num_episodes: int, seed: int):
    """Accuracy over episodes 0..num_episodes-1 of (seed, split)."""
    return trainer.evaluate_episodes(
        self.runner, self._eval_step, variables, self.source(split),
        episode_spec(self.config, split), seed=seed, split=split,
        num_episodes=num_episodes,
        global_batch=self.config.eval.episodes_per_step,
        prefetch=self.config.data.prefetch)


def figures(experiment, variables, split='test', episode_index=0):
  """Pictures of what the sampler and the alignment did on one episode.

  Returns:
    {name: uint8 [H, W, 3]}: 'sampler' (paper Fig. 23: dense frames with the
    selection, saliency, amplified frames) for the first query, 'alignment'
    (Fig. 24: the warped durations and SC windows) for the first query and
    the first support video of its class. Empty without those modules.
  """
  config = experiment.config
  if not (few_shot.uses_sampler(config.model) or
          few_shot.uses_alignment(config.model)):
    return {}
  ds = episodes_lib.episode_dataset(
      experiment.source(split), episode_spec(config, split), seed=config.eval.seed,
      split=split, indices=tf.data.Dataset.range(episode_index, episode_index + 1),
      batch=1)
  episode = jax.tree.map(lambda x: x[0], next(ds.as_numpy_iterator()))
  outputs = jax.jit(lambda v, e: experiment.model.apply(v, e, train=False))(
      variables, episode)
  return episode_figures.episode_figures(
      config.model, config.data.frame_size, episode,
      jax.tree.map(np.asarray, outputs))


def _write_figures(experiment, variables, workdir, writer, step):
  images = figures(experiment, variables)
  for name, image in images.items():
    sampler_figures.save_png(image, os.path.join(workdir, 'figures',
                                                 f'{name}_{step}.png'))
  if images:
    writer.write_images(step, {f'test/{k}': v[None] for k, v in images.items()})


def _open_sources(experiment, splits):
  """Opens `splits`, preparing their datasets where needed.

  Preparing writes the dataset's files under the TFDS data_dir, which the
  processes of a job share: process 0 prepares them while the others wait at
  a barrier, then they read what it wrote (two writers would collide on the
  same folder).
  """
  if jax.process_index() == 0:
    for split in splits:
      experiment.source(split)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('datasets prepared')
  for split in splits:
    experiment.source(split)


def pretraining_phase(config: ml_collections.ConfigDict, workdir: str):
  """Phase 1 of training: the config with its pretrained weight folders.

  Unchanged with `config.pretrain.steps == 0`; vim_jax/weights/pretrain.py
  says why this is a phase of its own (main.py and each ablation row run it
  before `train_and_evaluate`). The config is checked first, so that a
  mistake in it does not wait for minutes of pretraining.
  """
  check_config(config, workdir, jax.device_count())
  return pretrain.resolve(config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (resuming from workdir if it holds a checkpoint), then tests.

  Pretraining is not done here: with `config.pretrain.steps` the pretraining
  phase (`weights.pretrain.resolve`, run by main.py) comes first.
  """
  runner = parallel.Runner(config.parallel)
  check_config(config, workdir, runner.num_devices)
  pretrain.check_resolved(config)
  tf.io.gfile.makedirs(workdir)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))
  experiment = Experiment(config, runner)
  _open_sources(experiment, datasets.SPLITS)  # bad data fails before training

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  host_state, _ = trainer.fit(experiment, workdir, writer)
  results = _test(experiment, workdir, writer,
                  trainer.abstract_of(trainer.variables_of(host_state)))
  writer.flush()
  return results


def _test(experiment, workdir, writer, abstract):
  config = experiment.config
  variables, name = trainer.restore_variables(
      workdir, config.eval.checkpoint, abstract)
  logging.info('Testing %s on %d episodes', name, config.eval.test_episodes)
  start = time.time()
  results = experiment.evaluate(variables, 'test', config.eval.test_episodes,
                                config.eval.seed)
  results['checkpoint'] = name
  results['seconds'] = time.time() - start
  step = int(name.split('/')[1])
  trainer.log_results(writer, step, 'test', results)
  writer.write_texts(step, {'test/per_class': json.dumps(
      results['per_class'], indent=1)})
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'test_results.json'), 'w') as f:
      json.dump(results, f, indent=2)
    _write_figures(experiment, variables, workdir, writer, step)
  return results


def evaluate_only(config: ml_collections.ConfigDict, workdir: str):
  """--mode=eval: test a trained workdir's checkpoint; nothing is trained."""
  runner = parallel.Runner(config.parallel)
  check_config(config, workdir, runner.num_devices)
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FileNotFoundError(f'--workdir={workdir} holds no checkpoints/.')
  experiment = Experiment(config, runner)
  _open_sources(experiment, ('test',))
  abstract = trainer.abstract_of(trainer.variables_of(experiment.init_state()))
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  results = _test(experiment, workdir, writer, abstract)
  writer.flush()
  return results
