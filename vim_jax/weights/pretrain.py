"""Pretraining on the training classes: a stand-in for ImageNet weights.

The paper starts both networks from ImageNet (4.2): the backbone F is an
ImageNet-pretrained ResNet-50 and the scan network f an ImageNet-pretrained
ShuffleNet V2. There are no ImageNet weights for the narrow networks of the
procedural configs (and nothing may be downloaded), so `config.pretrain`
gives them that role from the training split itself: the backbone is
trained as a frame-wise cosine ProtoNet on training episodes, and the scan
net is then distilled from it (`pretrain_network`). The validation and test
classes are never seen, as ImageNet's classes are not the few-shot classes.
Unlike ImageNet this is the baseline's own objective on the same classes,
so it favours ProtoNet in an ablation (on the procedural data it is worth
12 points to ProtoNet: 50.6 against 38.2 % at seed 0). It is off in
configs/default.py (the real datasets have ImageNet weights) and on in
configs/synthetic.py, where the sampler needs it: from random weights the
sampler beats ProtoNet at some training seeds only, and the backbone stays
on its initial plateau at others (docs/results.md, "What the sampler
needs").

The weights are written as weight folders (vim_jax/weights/folder.py:
`<dir>/variables`, `<dir>/backbone.json`), like converted ImageNet weights,
and loaded through `config.model.backbone_weights` /
`config.model.scan_weights` (vim_jax/weights/load.py), so a pretrained run is
an ordinary run with weight folders. `resolve(config)` does the pretraining
when `config.pretrain.steps` is positive and caches each network's folder
under a key of everything that determines it (`cache_key`): the rows and
seeds of an ablation share the same weights, like ImageNet weights, and only
the first run pays for them (the episode shape is part of the key: 5-shot
gets its own). Each network is trained by the one training loop
(vim_jax/trainer.py, as the few-shot model is: `Pretraining` is its
experiment) in `<folder>.run`, so a run killed during the pretraining resumes
from its last checkpoint; the folder appears atomically when complete.

`resolve` is a phase of its own (`train.pretraining_phase`): main.py's
--mode=train (and vim_jax.ablate, for each row) calls it before
`train.train_and_evaluate`, which only checks that it ran
(`check_resolved`) and never pretrains. Why a phase rather than a part of
`train_and_evaluate`: a run says what it spends its first minutes on, and
the few-shot training is given a config whose weight fields are final (its
config.json names the folders). Why not a `--mode=pretrain`: the first run
of configs/synthetic.py must pretrain by itself, in one command, and the
command below pretrains alone.

Command line (pretrain without training a few-shot model; prints the folders):
  python -m vim_jax.weights.pretrain --config=configs/synthetic.py \
      --config.pretrain.steps=300
"""
import contextlib
import copy
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time

from clu import metric_writers
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import tensorflow_datasets as tfds

from input_pipeline import datasets
from input_pipeline import episodes as episodes_lib
from vim_jax import parallel
from vim_jax import steps as steps_lib
from vim_jax import trainer
from vim_jax.models import few_shot
from vim_jax.models import normalisation
from vim_jax.models import protonet
from vim_jax.models import resnet
from vim_jax.models import shufflenet
from vim_jax.ops import vectors
from vim_jax.weights import folder

KINDS = ('backbone', 'scan')
# The config field each kind's folder goes to.
WEIGHT_FIELDS = {'backbone': 'backbone_weights', 'scan': 'scan_weights'}
# `backbone.json`'s 'source' of the folders written here. The module's name
# before it moved to vim_jax/weights/: kept, so that a folder written now is
# the one cached before, byte for byte.
SOURCE = 'vim_jax.pretrain'


def network(model_config, kind: str):
  """(unbound module, its backbone.json kwargs) of a kind."""
  if kind == 'backbone':
    kwargs = dict(stride_in_1x1=model_config.stride_in_1x1,
                  bn_epsilon=model_config.bn_epsilon)
    net = resnet.build_backbone(
        model_config.backbone, width=model_config.backbone_width, **kwargs)
    return net, kwargs
  if kind == 'scan':
    sampler = model_config.sampler
    net = shufflenet.build_scan_network(
        sampler.scan_net, **dict(sampler.get('scan_kwargs') or {}))
    return net, {'bn_epsilon': net.bn_epsilon}
  raise ValueError(f'kind={kind!r} is not one of {KINDS}.')


def input_size(config, kind: str) -> int:
  return (config.data.frame_size if kind == 'backbone'
          else config.model.sampler.scan_size)


def arch(model_config, kind: str) -> str:
  return (model_config.backbone if kind == 'backbone'
          else model_config.sampler.scan_net)


def kinds_needed(config) -> tuple[str, ...]:
  """The networks a config's model has: the backbone, and the scan net."""
  if few_shot.uses_sampler(config.model) and (
      config.model.sampler.method != 'uniform'):
    return KINDS
  return ('backbone',)


# Fields that say where things are or how fast they are read, not what the
# pretrained weights are: left out of the cache key.
_NOT_IN_KEY = {'data': ('tfds_data_dir', 'prefetch', 'build_workers'),
               'pretrain': ('cache_dir', 'val_episodes')}
_TRAIN_FIELDS = ('lr', 'lr_decay', 'lr_decay_every', 'momentum',
                 'weight_decay', 'grad_clip_norm', 'episodes_per_step')


def cache_key(config, kind: str) -> str:
  """A short hash of everything that determines a kind's pretrained weights:

  the data (all of `config.data` but its locations and reading speeds), the
  network (arch, width, kwargs, input size), the ProtoNet it is trained as
  (`model.frames`, `model.logit_scale`), the optimiser fields of
  `config.train` and `config.pretrain`. Not the seed of the run, nor the
  modules around the network: the rows and seeds of an ablation share it.
  """
  model = config.model
  spec = {
      'kind': kind, 'arch': arch(model, kind),
      'size': input_size(config, kind),
      'protonet': {'frames': model.frames, 'logit_scale': model.logit_scale},
      'train': {k: config.train[k] for k in _TRAIN_FIELDS},
  }
  for section, skip in _NOT_IN_KEY.items():
    spec[section] = {k: v for k, v in config[section].to_dict().items()
                     if k not in skip}
  if kind == 'backbone':
    spec['net'] = {k: model[k] for k in (
        'backbone_width', 'stride_in_1x1', 'bn_epsilon')}
  else:
    spec['net'] = dict(model.sampler.get('scan_kwargs') or {})
    spec['teacher'] = cache_key(config, 'backbone')
  text = json.dumps(spec, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:12]


def cache_dir(config) -> str:
  if config.pretrain.cache_dir:
    return config.pretrain.cache_dir
  root = config.data.tfds_data_dir or tfds.core.constants.DATA_DIR
  return os.path.join(root, 'vim_jax_pretrained')


def cache_folder(config, kind: str) -> str:
  return os.path.join(cache_dir(config), f'{kind}-{cache_key(config, kind)}')


class PooledFeatures(nn.Module):
  """[V, T, H, W, 3] uint8 frames -> [V, T, C] pooled maps of `net`.

  Attributes:
    net: the network.
    size: its input side; frames of another size are resized (bilinear,
      after normalisation, as the sampler feeds its scan net).
    project: a linear map of the pooled maps to this width (0: none).
  """
  net: nn.Module
  size: int
  project: int = 0

  @nn.compact
  def __call__(self, videos, *, train: bool):
    v, t, height, width, _ = videos.shape
    x = normalisation.normalise(videos.reshape((v * t, height, width, 3)))
    if (height, width) != (self.size, self.size):
      x = jax.image.resize(x, (v * t, self.size, self.size, 3), 'bilinear')
    pooled = self.net(x, train=train).astype(jnp.float32).mean(axis=(1, 2))
    if self.project:
      pooled = nn.Dense(self.project, name='project')(pooled)
    return pooled.reshape(v, t, -1)


def protonet_logits(features, episode, way, logit_scale):
  """Frame-wise cosine ProtoNet logits from [V, T, C] features (support first)."""
  n = episode['support'].shape[0]
  return protonet.protonet_logits(features[:n], episode['support_labels'],
                                  features[n:], way, logit_scale)


def _accuracy(logits, labels):
  return (logits.argmax(-1) == labels).mean()


def _cosine(a, b):
  a, b = vectors.l2_normalise(a, eps=1e-8), vectors.l2_normalise(b, eps=1e-8)
  return (a * b).sum(-1)


def distillation_loss(student, teacher):
  """1 - mean cosine of the frames' features, each centred over the episode.

  Args:
    student: [V, T, C] projected scan-net features.
    teacher: [V, T, C] backbone features (a target: no gradient).

  Centring keeps what tells the frames apart: the pooled maps of any two
  random frames have a cosine of ~0.8, and without it the student learned
  only that shared direction (its features were at chance as a ProtoNet).
  Zero iff every centred student vector points along its teacher's.
  """
  teacher = jax.lax.stop_gradient(teacher)
  return 1.0 - _cosine(student - student.mean((0, 1)),
                       teacher - teacher.mean((0, 1))).mean()


def training_config(config):
  """The one training loop's config of a pretraining (`trainer.fit`).

  The run's data, optimiser and parallel layout, with `config.pretrain`'s
  steps, seed (episode stream, initial weights, validation episodes) and
  validation episodes; validated once, after the last step. References are
  resolved first, so a field tied to `train.num_steps` keeps the run's value
  (the cache key hashes the run's `config.train`).
  """
  p = config.pretrain
  out = config.copy_and_resolve_references()
  with out.unlocked():
    out.seed = p.seed
    out.eval.seed = p.seed
    out.train.num_steps = p.steps
    out.train.eval_every = p.steps
    out.train.val_episodes = p.val_episodes
    out.train.log_every = max(1, p.steps // 10)
    out.train.lr_scales = ''  # paths of the few-shot model, not of these
    out.train.profile_steps = 0
  return out


def _videos(episode):
  return jnp.concatenate([episode['support'], episode['query']], 0)


def _teacher(config, teacher: str, frame_size: int):
  """(features of videos [V, T, C] by the pretrained backbone `teacher`,
  their width C)."""
  net, _ = network(config.model, 'backbone')
  model = PooledFeatures(net, config.data.frame_size)
  loaded, _ = folder.load(teacher)
  variables = {c: {'net': loaded[c]} for c in ('params', 'batch_stats')}
  features = functools.partial(model.apply, variables, train=False)
  width = features(
      jnp.zeros((1, 1, frame_size, frame_size, 3), jnp.uint8)).shape[-1]
  return features, width


def _objective(params, batch_stats, episode, *, model, teacher, way, scale):
  """One episode's loss: ProtoNet's cross-entropy (the backbone), or the
  distillation loss to `teacher`'s features (the scan net)."""
  features, mutated = model.apply(
      {'params': params, 'batch_stats': batch_stats}, _videos(episode),
      train=True, mutable=['batch_stats'])
  logits = protonet_logits(features, episode, way, scale)
  if teacher is None:
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, episode['query_labels']).mean()
  else:
    loss = distillation_loss(features, teacher(_videos(episode)))
  return loss, (_accuracy(logits, episode['query_labels']),
                mutated['batch_stats'])


def _train_step(state, batch, *, objective):
  """One update on this device's episodes; gradients mean over 'data'."""
  def loss_fn(params):
    loss, (accuracy, stats) = jax.vmap(
        lambda ep: objective(params, state.batch_stats, ep))(batch)
    return loss.mean(), (loss.mean(), accuracy.mean(), stats)
  grads, (loss, accuracy, stats) = jax.grad(loss_fn, has_aux=True)(
      state.params)
  grads = parallel.pmean_tree(grads)
  batch_stats = parallel.pmean_tree(parallel.mean_over_episodes(stats))
  metrics = parallel.pmean_tree({'loss': loss, 'accuracy': accuracy})
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics


def _eval_step(variables, batch, *, model, way, scale):
  """Per-episode ProtoNet results of the network's features (`evaluate`)."""
  def one(episode):
    features = model.apply(variables, _videos(episode), train=False)
    correct = (protonet_logits(features, episode, way, scale).argmax(-1)
               == episode['query_labels'])
    return dict(accuracy=correct.mean(), correct=correct,
                query_class=episode['classes'][episode['query_labels']],
                index=episode['index'])
  return jax.vmap(one)(batch)


class Pretraining:
  """One network's pretraining, an experiment of the one training loop
  (`vim_jax.trainer.fit`: resume, devices, CLU, the NaN check).

  The backbone is trained as a frame-wise cosine ProtoNet (the baseline's
  objective). The scan net is distilled from the pretrained backbone
  `teacher`: a linear map of its pooled maps regresses the backbone's pooled
  maps of the same frames (loss 1 - cosine). Trained as a ProtoNet itself,
  the narrow scan net did not learn at all in 300 steps (22 % against 20 %
  chance on validation episodes, with SGD or Adam, logit scale 1 or 10);
  distillation gives every frame a dense target that already tells the
  actor from the clutter. Both see ProtoNet's episodes (T uniform frames at
  the frame size); validation reports the ProtoNet accuracy of the
  network's (for the scan net: projected) features.

  Args:
    config: the run's config (data, model, train's optimiser, pretrain).
    kind: 'backbone' or 'scan'.
    runner: the `parallel.Runner`.
    sources: {'train': ..., 'validation': ...} `episodes.VideoSource`s.
    teacher: for the scan net, the backbone's pretrained folder.
  """

  def __init__(self, config, kind: str, runner, sources,
               teacher: str | None = None):
    if kind == 'scan' and teacher is None:
      raise ValueError('The scan net is distilled from a pretrained backbone: '
                       'pass its folder as `teacher`.')
    self.config = training_config(config)
    self.kind, self.runner, self.sources = kind, runner, sources
    self.spec = episodes_lib.EpisodeSpec.of(
        config.data, frames=config.model.frames, train=True)
    net, self.net_kwargs = network(config.model, kind)
    target, width = None, 0
    if kind == 'scan':
      target, width = _teacher(config, teacher, self.spec.frame_size)
    self.model = PooledFeatures(net, input_size(config, kind), project=width)
    self.tx = steps_lib.make_optimizer(self.config.train)
    way, scale = config.data.way, config.model.logit_scale
    objective = functools.partial(_objective, model=self.model,
                                  teacher=target, way=way, scale=scale)
    self._train_step = runner.compile(
        functools.partial(_train_step, objective=objective),
        donate_state=True)
    self._eval_step = runner.compile(
        functools.partial(_eval_step, model=self.model, way=way, scale=scale),
        sharded_out=True)

  def init_state(self) -> steps_lib.TrainState:
    key = jax.random.PRNGKey(self.config.seed)
    example = jnp.zeros((1, self.spec.frames, self.spec.frame_size,
                         self.spec.frame_size, 3), jnp.uint8)
    variables = jax.jit(functools.partial(self.model.init, train=False))(
        key, example)
    params = variables['params']
    return steps_lib.TrainState(
        step=jnp.zeros((), jnp.int32), apply_fn=None, params=params,
        tx=self.tx, opt_state=self.tx.init(params),
        batch_stats=variables['batch_stats'], rng=key)

  def train_batches(self, start_step: int):
    return trainer.train_episodes(self.config, self.sources['train'],
                                  self.spec, start_step)

  def train_step(self, state, batch):
    return self._train_step(state, self.runner.put_batch(batch))

  def evaluate(self, variables, split: str, num_episodes: int, seed: int):
    return trainer.evaluate_episodes(
        self.runner, self._eval_step, variables, self.sources[split],
        dataclasses.replace(self.spec, train=False), seed=seed, split=split,
        num_episodes=num_episodes,
        global_batch=self.config.train.episodes_per_step,
        prefetch=self.config.data.prefetch)


def _write_folder(out_dir: str, variables, metadata) -> None:
  """Writes the weight folder atomically (a deterministic folder another
  run may have written first is kept)."""
  tmp = f'{out_dir}.tmp-{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)
  folder.save(tmp, jax.device_get(variables), metadata)
  try:
    os.replace(tmp, out_dir)
  except OSError:
    if not os.path.isfile(os.path.join(out_dir, folder.METADATA_FILE)):
      raise
    shutil.rmtree(tmp, ignore_errors=True)


def pretrain_network(config, kind: str, sources, out_dir: str,
                     teacher: str | None = None) -> dict:
  """Pretrains one network (`Pretraining`) and writes its weight folder.

  The training runs in `<out_dir>.run` (checkpoints, CLU summaries,
  train_episodes.tsv): a run killed here resumes from its last checkpoint.
  Once the folder is written the checkpoints are deleted; the summaries
  stay.

  Returns:
    The metadata written to `backbone.json`, with under 'pretrain' the
    ProtoNet accuracy of the network's features on validation episodes.

  Raises:
    FloatingPointError: a non-finite loss, naming the step and episodes.
  """
  p = config.pretrain
  experiment = Pretraining(config, kind, parallel.Runner(config.parallel),
                           sources, teacher)
  run_dir = f'{out_dir}.run'
  os.makedirs(run_dir, exist_ok=True)
  what = ('as a frame-wise ProtoNet' if kind == 'backbone'
          else f'by distillation from {teacher}')
  logging.info('Pretraining the %s (%s) at %d px %s on %s: %d steps of %d '
               'episodes, in %s.', kind, arch(config.model, kind),
               input_size(config, kind), what, sources['train'].name, p.steps,
               config.train.episodes_per_step, run_dir)
  writer = metric_writers.create_default_writer(run_dir)
  start = time.time()
  state, val_accuracy = trainer.fit(experiment, run_dir, writer)
  writer.flush()
  metadata = {
      'arch': arch(config.model, kind), 'source': SOURCE,
      'preprocessing': 'torch', 'backbone_kwargs': experiment.net_kwargs,
      'pretrain': {'split': sources['train'].name, 'steps': p.steps,
                   'objective': 'protonet' if kind == 'backbone' else
                                'distillation',
                   'teacher': teacher,
                   'validation_accuracy': val_accuracy / 100,
                   'validation_episodes': p.val_episodes,
                   'seconds': round(time.time() - start, 1)},
  }
  _write_folder(out_dir, {'params': state.params['net'],
                          'batch_stats': state.batch_stats['net']}, metadata)
  for name in ('checkpoints', 'best'):
    shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)
  return metadata


def planned_folders(config) -> dict:
  """{kind: folder} that `resolve` names for each network of the model.

  Computed from the cache keys alone: nothing is trained or read. Empty
  with `config.pretrain.steps <= 0`.

  Raises:
    ValueError: a weight field is already set (which weights would win?).
  """
  if config.pretrain.steps <= 0:
    return {}
  planned = {}
  for kind in kinds_needed(config):
    field = WEIGHT_FIELDS[kind]
    if config.model[field]:
      raise ValueError(
          f'config.pretrain.steps={config.pretrain.steps} would replace '
          f'config.model.{field}={config.model[field]!r}; set one of them.')
    planned[kind] = cache_folder(config, kind)
  return planned


@contextlib.contextmanager
def _exclusive(path: str):
  """Holds `<path>.lock` (an OS file lock) while the block runs.

  Two runs that need the same folder (two ablation processes sharing the
  cache) would otherwise train it in the same `.run` folder at once: the
  second waits here, then reuses the folder the first wrote. A killed
  holder's lock is released by the OS, and the waiting run resumes its
  training from the last checkpoint.
  """
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(f'{path}.lock', 'w') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.info('Another run is pretraining %s: waiting for it.', path)
      fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def resolve(config):
  """The pretraining phase: the config with its pretrained weight folders.

  Run before the training, as a phase of its own (main.py, vim_jax.ablate):
  `train.train_and_evaluate` does not pretrain, it checks that this ran
  (`check_resolved`).

  With `config.pretrain.steps == 0` the config is returned as it is.
  Otherwise every network of the model gets its `planned_folders` folder,
  trained first when absent, and the returned copy names it in
  `config.model.backbone_weights` / `scan_weights`.

  Raises:
    ValueError: a weight field is already set (which weights would win?).
  """
  planned = planned_folders(config)
  if not planned:
    return config
  logging.info(
      'Pretraining phase (config.pretrain.steps=%d, vim_jax/weights/'
      'pretrain.py): weight folders for the %s under %s; each is reused when '
      'cached, else pretrained now on the training classes.',
      config.pretrain.steps, ', '.join(planned), cache_dir(config))
  config = copy.deepcopy(config)
  sources = None
  for kind, path in planned.items():
    with _exclusive(path):
      if os.path.isfile(os.path.join(path, folder.METADATA_FILE)):
        logging.info('Pretrained %s: reusing %s', kind, path)
      else:
        if jax.process_count() > 1:
          raise RuntimeError(
              f'{path} is missing: run `python -m vim_jax.weights.pretrain '
              '--config=...` once before a multi-process job.')
        if sources is None:
          sources = {split: datasets.load_source(config.data, split)
                     for split in ('train', 'validation')}
        pretrain_network(config, kind, sources, path,
                         teacher=config.model.backbone_weights)
    config.model[WEIGHT_FIELDS[kind]] = path
  return config


def check_resolved(config) -> None:
  """Raises unless `resolve` gave the config its pretrained weight folders.

  Raises:
    ValueError: `config.pretrain.steps` is positive and a network's weight
      field does not name its pretrained folder.
  """
  if config.pretrain.steps <= 0:
    return
  for kind in kinds_needed(config):
    field = WEIGHT_FIELDS[kind]
    if config.model[field] != cache_folder(config, kind):
      raise ValueError(
          f'config.pretrain.steps={config.pretrain.steps} but '
          f'config.model.{field}={config.model[field]!r} is not the '
          f'pretrained {kind}: run the pretraining phase first (`config = '
          'vim_jax.weights.pretrain.resolve(config)`, as main.py does) or '
          'set --config.pretrain.steps=0.')


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  config = flags.FLAGS.config
  if config.pretrain.steps <= 0:
    raise ValueError('config.pretrain.steps is 0: nothing to pretrain.')
  resolved = resolve(config)
  for kind in kinds_needed(config):
    print(f'config.model.{WEIGHT_FIELDS[kind]}='
          f'{resolved.model[WEIGHT_FIELDS[kind]]}')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'Config file.')
  app.run(main)
