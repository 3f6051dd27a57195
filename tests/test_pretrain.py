"""Pretraining the backbone and the scan net (vim_jax/weights/pretrain.py)."""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from tests import helpers
from vim_jax.models import build
from vim_jax.models import normalisation
from vim_jax.weights import folder
from vim_jax.weights import load
from vim_jax.weights import pretrain


def _config(tmp_path, steps=2, sampler=True):
  config = test_config.get_config()
  config.data.tfds_data_dir = str(tmp_path / 'tfds')
  config.model.sampler.enabled = sampler
  config.pretrain.steps = steps
  config.pretrain.val_episodes = 4
  config.pretrain.cache_dir = str(tmp_path / 'cache')
  return config


@pytest.fixture(scope='module')
def resolved(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('pretrain')
  config = _config(tmp)
  return config, pretrain.resolve(config)


def _flat(tree):
  return {'/'.join(k): np.asarray(v) for k, v in
          flax.traverse_util.flatten_dict(flax.core.unfreeze(tree)).items()}


def test_protonet_of_a_backbone_is_the_few_shot_protonet():
  """The pretraining objective is ProtoNet's: same logits for same weights."""
  config = test_config.get_config()
  model = build.model(config.model, way=config.data.way)
  rng = np.random.default_rng(0)
  t, size = config.model.frames, config.data.frame_size
  way, shot, query = config.data.way, config.data.shot, config.data.query
  episode = dict(
      support=jnp.asarray(rng.integers(0, 256, (way * shot, t, size, size, 3)),
                          jnp.uint8),
      support_labels=jnp.arange(way * shot) % way,
      query=jnp.asarray(rng.integers(0, 256, (way * query, t, size, size, 3)),
                        jnp.uint8))
  variables = model.init(jax.random.PRNGKey(1), episode, train=False)
  net, _ = pretrain.network(config.model, 'backbone')
  pooled = pretrain.PooledFeatures(net, size)
  wrapped = {c: {'net': variables[c]['backbone']}
             for c in ('params', 'batch_stats')}
  expected = model.apply(variables, episode, train=False)['logits']
  features = pooled.apply(wrapped, jnp.concatenate(
      [episode['support'], episode['query']]), train=False)
  got = pretrain.protonet_logits(features, episode, way,
                                 config.model.logit_scale)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_scan_input_is_resized_as_the_sampler_does():
  """PooledFeatures resizes normalised frames like VideoSampler (bilinear)."""
  config = test_config.get_config()
  net, _ = pretrain.network(config.model, 'scan')
  videos = jnp.asarray(np.random.default_rng(0).integers(
      0, 256, (2, 3, 24, 24, 3)), jnp.uint8)
  pooled = pretrain.PooledFeatures(net, 16)
  variables = pooled.init(jax.random.PRNGKey(0), videos, train=False)
  small = jax.image.resize(
      normalisation.normalise(videos.reshape(6, 24, 24, 3)), (6, 16, 16, 3),
      'bilinear')
  maps = net.apply({c: variables[c]['net'] for c in variables}, small,
                   train=False)
  np.testing.assert_allclose(
      pooled.apply(variables, videos, train=False),
      maps.mean((1, 2)).reshape(2, 3, -1), rtol=1e-5, atol=1e-6)


def test_resolve_writes_folders_that_load_into_the_model(resolved):
  config, out = resolved
  assert config.model.backbone_weights is None  # the input is not changed
  paths = {kind: out.model[pretrain.WEIGHT_FIELDS[kind]]
           for kind in pretrain.KINDS}
  for kind, path in paths.items():
    assert os.path.basename(path) == (
        f'{kind}-{pretrain.cache_key(config, kind)}')
    metadata = folder.read_metadata(path)
    assert metadata['source'] == pretrain.SOURCE
    assert metadata['pretrain']['steps'] == 2
    assert metadata['pretrain']['objective'] == (
        'protonet' if kind == 'backbone' else 'distillation')
    assert metadata['pretrain']['teacher'] == (
        None if kind == 'backbone' else paths['backbone'])
    assert 0.0 <= metadata['pretrain']['validation_accuracy'] <= 1.0
  model = build.model(out.model, way=out.data.way)
  episode = {k: jnp.zeros(v.shape, v.dtype) for k, v in dict(
      support=np.zeros((3, 6, 16, 16, 3), np.uint8),
      support_labels=np.arange(3, dtype=np.int32),
      query=np.zeros((3, 6, 16, 16, 3), np.uint8)).items()}
  variables = model.init(
      {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)},
      episode, train=False)
  loaded = load.load_pretrained(variables, out.model)
  for kind, tree_path in (('backbone', load.BACKBONE_PATH),
                          ('scan', load.SCAN_PATH)):
    saved, _ = folder.load(paths[kind])
    for collection in ('params', 'batch_stats'):
      got = loaded[collection]
      initial = variables[collection]
      for key in tree_path:
        got, initial = got[key], initial[key]
      got, initial = _flat(got), _flat(initial)
      want = _flat(saved[collection])
      assert got.keys() == want.keys()
      for name in want:
        np.testing.assert_array_equal(got[name], want[name])
      if collection == 'params':  # two SGD steps moved the weights
        assert any(not np.array_equal(got[n], initial[n]) for n in got)


def test_resolve_reuses_the_cache(resolved, monkeypatch):
  config, out = resolved
  def fail(*args, **kwargs):
    raise AssertionError('pretrained again')
  monkeypatch.setattr(pretrain, 'pretrain_network', fail)
  again = pretrain.resolve(config)
  for field in pretrain.WEIGHT_FIELDS.values():
    assert again.model[field] == out.model[field]
  # Another run seed, another row's modules, another shot of the same data
  # layout: the seed and the modules do not change the key, the shot does.
  other = config.copy_and_resolve_references()
  other.seed = 7
  other.model.alignment.spatial = True
  assert pretrain.resolve(other).model.backbone_weights == (
      out.model.backbone_weights)
  other.data.shot = 2
  assert pretrain.cache_key(other, 'backbone') != pretrain.cache_key(
      config, 'backbone')


def test_cache_key_covers_the_network_and_the_optimiser(tmp_path):
  config = _config(tmp_path)
  key = pretrain.cache_key(config, 'backbone')
  for field, value in (('model.backbone_width', 16), ('train.lr', 0.5),
                       ('pretrain.steps', 3), ('model.frames', 3),
                       ('data.procedural.seed', 1)):
    other = config.copy_and_resolve_references()
    section, *rest = field.split('.')
    node = other[section]
    for name in rest[:-1]:
      node = node[name]
    node[rest[-1]] = value
    assert pretrain.cache_key(other, 'backbone') != key, field
  other = config.copy_and_resolve_references()
  other.model.backbone_width = 16  # the scan net's teacher changes
  assert pretrain.cache_key(other, 'scan') != pretrain.cache_key(config, 'scan')
  other = config.copy_and_resolve_references()
  other.data.prefetch = 5
  other.pretrain.cache_dir = str(tmp_path / 'elsewhere')
  assert pretrain.cache_key(other, 'backbone') == key


def test_only_the_networks_the_model_has(tmp_path):
  assert pretrain.kinds_needed(_config(tmp_path, sampler=False)) == (
      'backbone',)
  config = _config(tmp_path)
  config.model.sampler.method = 'uniform'
  assert pretrain.kinds_needed(config) == ('backbone',)
  assert pretrain.kinds_needed(_config(tmp_path)) == ('backbone', 'scan')


def test_off_and_conflicts(tmp_path):
  config = _config(tmp_path, steps=0)
  assert pretrain.resolve(config) is config
  config = _config(tmp_path)
  config.model.backbone_weights = str(tmp_path / 'imagenet')
  with pytest.raises(ValueError, match='config.model.backbone_weights'):
    pretrain.resolve(config)


def test_training_does_not_pretrain(resolved, tmp_path):
  """train_and_evaluate refuses a config that the pretraining phase has not
  resolved, before anything is trained or written."""
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  config = _config(tmp_path)
  with pytest.raises(ValueError, match='run the pretraining phase first'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(config.pretrain.cache_dir)
  assert not os.path.exists(tmp_path / 'run')
  _, out = resolved
  pretrain.check_resolved(out)
  pretrain.check_resolved(_config(tmp_path, steps=0))


def test_main_runs_the_pretraining_phase_first(resolved, tmp_path):
  """main.py --mode=train: the logged pretraining phase (here reusing the
  cached backbone), then training from the folder it named. ProtoNet, whose
  backbone has the sampler's model's key, keeps the run short."""
  config, out = resolved
  proc = helpers.run_main(
      tmp_path / 'run', config.data.tfds_data_dir, '--config.train.num_steps=1',
      f'--config.pretrain.steps={config.pretrain.steps}',
      f'--config.pretrain.val_episodes={config.pretrain.val_episodes}',
      f'--config.pretrain.cache_dir={config.pretrain.cache_dir}',
      '--config.model.sampler.enabled=False')
  assert 'Pretraining phase' in proc.stderr
  assert 'Pretrained backbone: reusing' in proc.stderr
  saved = json.loads((tmp_path / 'run' / 'config.json').read_text())
  assert saved['model']['backbone_weights'] == out.model.backbone_weights
  assert saved['model']['scan_weights'] is None


def test_a_killed_pretraining_resumes_where_it_stopped(tmp_path, monkeypatch,
                                                       caplog):
  """Pretraining runs on the one training loop: killed at its fourth step,
  the next run resumes from the newest checkpoint of `<folder>.run` and
  writes the weights of a run never stopped, bit for bit (the same episode
  stream, continued)."""
  whole = _config(tmp_path, steps=4, sampler=False)
  whole.train.checkpoint_every = 2
  killed = whole.copy_and_resolve_references()
  killed.pretrain.cache_dir = str(tmp_path / 'killed_cache')
  expected = pretrain.resolve(whole).model.backbone_weights
  train_step = pretrain.Pretraining.train_step
  calls = []

  def dies_at_the_fourth_step(self, state, batch):
    calls.append(1)
    if len(calls) == 4:
      raise KeyboardInterrupt('killed')
    return train_step(self, state, batch)

  monkeypatch.setattr(pretrain.Pretraining, 'train_step',
                      dies_at_the_fourth_step)
  with pytest.raises(KeyboardInterrupt):
    pretrain.resolve(killed)
  monkeypatch.undo()
  path = pretrain.cache_folder(killed, 'backbone')
  assert not os.path.exists(path)
  # The newest finished checkpoint (orbax writes a step's folder under a
  # temporary name first: one still in flight when killed does not count).
  saved = [int(name) for name in os.listdir(
      os.path.join(f'{path}.run', 'checkpoints')) if name.isdigit()]
  assert saved and max(saved) < 4
  with caplog.at_level('INFO'):
    got = pretrain.resolve(killed).model.backbone_weights
  assert got == path
  assert any('Resuming from' in r.getMessage() and r.getMessage().endswith(
      f'step {max(saved)}') for r in caplog.records)
  want, _ = folder.load(expected)
  have, _ = folder.load(got)
  want, have = _flat(want), _flat(have)
  assert want.keys() == have.keys()
  for name in want:
    np.testing.assert_array_equal(have[name], want[name], err_msg=name)
  # The checkpoints are gone once the folder is written; the logs stay.
  assert not os.path.exists(os.path.join(f'{path}.run', 'checkpoints'))
  assert os.path.isfile(os.path.join(f'{path}.run', 'train_episodes.tsv'))


@pytest.mark.parametrize('kind', ['pmap', 'shard_map'])
def test_pretraining_on_four_devices_is_pretraining_on_one(kind, tmp_path):
  """The data-parallel runner splits a step's 4 episodes over 4 devices;
  the gradient mean and the batch-norm statistics' mean over the episodes
  are the one-device step's (up to the order of the sums)."""
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  from vim_jax import parallel  # pylint: disable=g-import-not-at-top
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top
  from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
  assert jax.device_count() >= 4
  config = _config(tmp_path, steps=3, sampler=False)
  config.parallel = kind
  sources = {split: datasets.load_source(config.data, split)
             for split in ('train', 'validation')}
  trained = {}
  for devices in (1, 4):
    runner = parallel.Runner(kind, jax.devices()[:devices])
    experiment = pretrain.Pretraining(config, 'backbone', runner, sources)
    assert experiment.config.train.episodes_per_step == 4
    workdir = tmp_path / f'run{devices}'
    workdir.mkdir()
    state, val = trainer.fit(experiment, str(workdir),
                             metric_writers.create_default_writer(
                                 str(workdir)))
    trained[devices] = (_flat(trainer.variables_of(state)), val)
  (one, val_one), (four, val_four) = trained[1], trained[4]
  assert one.keys() == four.keys()
  for name in one:
    np.testing.assert_allclose(four[name], one[name], rtol=1e-4, atol=1e-5,
                               err_msg=name)
  assert val_four == pytest.approx(val_one, abs=1e-6)


def test_distillation_loss_is_centred_and_scale_free():
  rng = np.random.default_rng(0)
  teacher = jnp.asarray(rng.normal(size=(4, 3, 8)), jnp.float32)
  shift = jnp.asarray(rng.normal(size=(8,)), jnp.float32)
  # A shared offset and a positive scale cost nothing.
  assert abs(float(pretrain.distillation_loss(2.5 * teacher + shift,
                                              teacher))) < 1e-6
  # Reversed centred features: cosine -1 everywhere.
  np.testing.assert_allclose(
      pretrain.distillation_loss(-teacher, teacher), 2.0, rtol=1e-6)
  # Only the shared direction matched (each frame = mean + unrelated noise).
  other = jnp.asarray(rng.normal(size=(4, 3, 8)), jnp.float32)
  centred = lambda x: x - x.mean((0, 1))
  cos = (centred(other) * centred(teacher)).sum(-1) / (
      jnp.linalg.norm(centred(other), axis=-1) *
      jnp.linalg.norm(centred(teacher), axis=-1))
  np.testing.assert_allclose(pretrain.distillation_loss(other + 10., teacher),
                             1.0 - cos.mean(), rtol=1e-5)
  # No gradient reaches the teacher.
  grad = jax.grad(lambda t: pretrain.distillation_loss(other, t))(teacher)
  assert not np.any(np.asarray(grad))
