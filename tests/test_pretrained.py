"""Loading converted ImageNet weights into the few-shot model.

Checkpoints are made the way a user makes them: a torchvision-layout state
dict (random values, real names and shapes) saved as .npz and converted with
`python -m vim_jax.weights.convert`'s functions. Expected values are read from
the state dict with torch's layout rules, not from the converter.
"""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from tests.test_convert_weights import _random_state
from tests.test_convert_weights import torchvision_resnet18_shapes
from tests.test_convert_weights import torchvision_shufflenet_x0_5_shapes
from vim_jax import parallel
from vim_jax import train as train_lib
from vim_jax.models import build
from vim_jax.models import few_shot
from vim_jax.models import normalisation
from vim_jax.models import resnet
from vim_jax.weights import convert
from vim_jax.weights import folder
from vim_jax.weights import load


def _convert(tmp_path, name, arch, shapes, seed):
  state = _random_state(shapes, seed)
  npz = tmp_path / f'{name}.npz'
  np.savez(npz, **state)
  variables, metadata = convert.convert(str(npz), arch)
  out = tmp_path / name
  folder.save(str(out), variables, metadata)
  return str(out), state


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('weights')
  resnet18 = _convert(tmp, 'resnet18', 'resnet18',
                      torchvision_resnet18_shapes(), 1)
  scan = _convert(tmp, 'shufflenet', 'shufflenet_v2_x0_5',
                  torchvision_shufflenet_x0_5_shapes(), 2)
  return dict(resnet18=resnet18, scan=scan)


def _config(**model_fields):
  """configs/test.py with a standard ResNet-18 and ShuffleNet (sampler on)."""
  config = test_config.get_config()
  config.data.frame_size = 32
  model = config.model
  model.backbone = 'resnet18'
  model.backbone_width = 64
  model.sampler.enabled = True
  model.sampler.scan_kwargs = {}
  for key, value in model_fields.items():
    model[key] = value
  return config


def _torch_conv(w):  # OIHW -> HWIO
  return np.transpose(w, (2, 3, 1, 0))


def _check_resnet18(params, stats, state, backbone_dir):
  backbone = params['backbone']
  np.testing.assert_array_equal(backbone['conv_init']['kernel'],
                                _torch_conv(state['conv1.weight']))
  np.testing.assert_array_equal(
      backbone['stage2_block0']['proj_conv']['kernel'],
      _torch_conv(state['layer2.0.downsample.0.weight']))
  np.testing.assert_array_equal(backbone['stage4_block1']['bn2']['scale'],
                                state['layer4.1.bn2.weight'])
  np.testing.assert_array_equal(
      stats['backbone']['stage3_block1']['bn1']['var'],
      state['layer3.1.bn1.running_var'])
  # Every backbone leaf is the checkpoint's.
  reference, _ = folder.load(backbone_dir)
  for collection, tree in (('params', params), ('batch_stats', stats)):
    got = flax.traverse_util.flatten_dict(tree['backbone'])
    want = flax.traverse_util.flatten_dict(reference[collection])
    assert got.keys() == want.keys()
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_init_state_loads_the_backbone(checkpoints, monkeypatch):
  backbone_dir, state = checkpoints['resnet18']
  config = _config(backbone_weights=backbone_dir)
  config.model.sampler.enabled = False
  experiment = train_lib.Experiment(config, parallel.Runner(config.parallel))
  # A random initial state without compiling the model's init (the real
  # steps.init_state is covered by the training tests).
  rng = np.random.default_rng(0)
  random = jax.tree.map(
      lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype),
      _abstract_variables(config))

  def fake_init_state(model, tx, example_episode, seed):
    del model, example_episode, seed
    params = random['params']
    # A non-zero optimiser state: init_state must rebuild it.
    opt_state = jax.tree.map(jnp.ones_like, tx.init(params))
    return train_lib.steps.TrainState(
        step=jnp.zeros((), jnp.int32), apply_fn=None, params=params, tx=tx,
        opt_state=opt_state, batch_stats=random['batch_stats'],
        rng=jax.random.PRNGKey(0))

  monkeypatch.setattr(train_lib.steps, 'init_state', fake_init_state)
  loaded = experiment.init_state()
  _check_resnet18(loaded.params, loaded.batch_stats, state, backbone_dir)
  # The rest keeps its random initialisation; the tree is unchanged.
  assert jax.tree.structure(loaded.params) == jax.tree.structure(
      random['params'])
  assert jax.tree.structure(loaded.batch_stats) == jax.tree.structure(
      random['batch_stats'])
  # The optimiser state is the optimiser's initial state for these params.
  want = experiment.tx.init(loaded.params)
  assert jax.tree.structure(loaded.opt_state) == jax.tree.structure(want)
  for got, expected in zip(jax.tree.leaves(loaded.opt_state),
                           jax.tree.leaves(want)):
    np.testing.assert_array_equal(got, expected)


def test_scan_and_backbone_weights_replace_only_their_subtrees(checkpoints):
  (backbone_dir, state), (scan_dir, scan_state) = (checkpoints['resnet18'],
                                                   checkpoints['scan'])
  config = _config(backbone_weights=backbone_dir, scan_weights=scan_dir)
  rng = np.random.default_rng(0)
  variables = jax.tree.map(
      lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype),
      _abstract_variables(config))
  loaded = load.load_pretrained(variables, config.model)
  params, stats = loaded['params'], loaded['batch_stats']
  _check_resnet18(params, stats, state, backbone_dir)
  scan = params['sampler']['scan']
  np.testing.assert_array_equal(scan['conv_init']['kernel'],
                                _torch_conv(scan_state['conv1.0.weight']))
  np.testing.assert_array_equal(
      scan['stage3_block2']['branch2_dw_conv']['kernel'],
      _torch_conv(scan_state['stage3.2.branch2.3.weight']))
  np.testing.assert_array_equal(stats['sampler']['scan']['bn5']['mean'],
                                scan_state['conv5.1.running_mean'])
  assert jax.tree.structure(loaded) == jax.tree.structure(variables)
  np.testing.assert_array_equal(
      params['sampler']['evaluator_w1']['kernel'],
      variables['params']['sampler']['evaluator_w1']['kernel'])
  # Without a sampler the scan weights are ignored (with a warning).
  config.model.sampler.enabled = False
  config.model.backbone_weights = None
  no_sampler = {c: {'backbone': v['backbone']} for c, v in variables.items()}
  assert load.load_pretrained(no_sampler, config.model) == no_sampler


def _abstract_variables(config):
  model = build.model(config.model, way=config.data.way)
  episode = train_lib.example_episode(train_lib.episode_spec(config, 'train'))
  return jax.eval_shape(lambda: model.init(
      {'params': jax.random.key(0), 'sampler': jax.random.key(1)}, episode,
      train=False))


def _edit_metadata(path, tmp_path, **changes):
  """A copy of a converted folder whose backbone.json has `changes`."""
  out = tmp_path / 'edited'
  os.makedirs(out)
  os.symlink(os.path.join(path, folder.VARIABLES_DIR),
             out / folder.VARIABLES_DIR)
  metadata = folder.read_metadata(path)
  metadata.update(changes)
  (out / folder.METADATA_FILE).write_text(json.dumps(metadata))
  return str(out)


def test_mismatches_name_the_config_field(checkpoints, tmp_path):
  backbone_dir, _ = checkpoints['resnet18']
  variables = _abstract_variables(_config(backbone_width=32))

  def load_with(**fields):
    config = _config(**fields)
    return load.load_pretrained(variables, config.model)

  with pytest.raises(ValueError, match=r"config\.model\.backbone='resnet34'.*"
                     r"'resnet18' weights"):
    load_with(backbone='resnet34', backbone_weights=backbone_dir)
  with pytest.raises(ValueError, match=r'config\.model\.normalisation='):
    load_with(backbone_weights=backbone_dir, normalisation='caffe')
  with pytest.raises(ValueError, match=r'config\.model\.bn_epsilon='):
    load_with(backbone_weights=backbone_dir, bn_epsilon=1e-3)
  with pytest.raises(ValueError, match=r'config\.model\.backbone_weights does '
                     r'not fit.*shape mismatches.*backbone_width=64'):
    load_with(backbone_weights=backbone_dir)  # width 32 model, width 64 weights
  with pytest.raises(FileNotFoundError,
                     match=r'config\.model\.backbone_weights=.*backbone\.json'):
    load_with(backbone_weights=str(tmp_path))
  scan_dir, _ = checkpoints['scan']
  with pytest.raises(ValueError, match=r'config\.model\.sampler\.scan_net'):
    load_with(scan_weights=backbone_dir)
  with pytest.raises(ValueError, match=r"config\.model\.backbone='resnet18'.*"
                     r"'shufflenet_v2_x0_5'"):
    load_with(backbone_weights=scan_dir)


def test_keras_style_metadata_needs_keras_fields(checkpoints, tmp_path):
  """Weights converted from Keras need stride_in_1x1, bn_epsilon and 'caffe'."""
  backbone_dir, state = checkpoints['resnet18']
  keras_dir = _edit_metadata(
      backbone_dir, tmp_path, source='keras', preprocessing='caffe',
      backbone_kwargs={'stride_in_1x1': True, 'bn_epsilon': 1.001e-5})
  keras = dict(stride_in_1x1=True, bn_epsilon=1.001e-5, normalisation='caffe')
  # The variable tree does not depend on these three fields.
  variables = _abstract_variables(_config())
  for missing, field in (('stride_in_1x1', 'stride_in_1x1'),
                         ('bn_epsilon', 'bn_epsilon'),
                         ('normalisation', 'normalisation')):
    fields = {k: v for k, v in keras.items() if k != missing}
    config = _config(backbone_weights=keras_dir, **fields)
    with pytest.raises(ValueError, match=rf'config\.model\.{field}='):
      load.load_pretrained(variables, config.model)
  config = _config(backbone_weights=keras_dir, **keras)
  variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), variables)
  loaded = load.load_pretrained(variables, config.model)
  np.testing.assert_array_equal(
      loaded['params']['backbone']['conv_init']['kernel'],
      _torch_conv(state['conv1.weight']))


def test_caffe_backbone_sees_bgr_minus_mean():
  """normalisation='caffe': the backbone gets BGR - mean, same param tree."""
  frames = np.random.default_rng(0).integers(
      0, 256, (2, 3, 16, 16, 3)).astype(np.uint8)  # [V, T, H, W, 3]
  # The model's convention.
  videos = normalisation.normalise(jnp.asarray(frames))
  models = {}
  for kind in ('imagenet', 'caffe'):
    config = test_config.get_config()
    config.model.normalisation = kind
    models[kind] = build.model(config.model, way=3)

  def init(kind):
    return jax.eval_shape(lambda x: models[kind].init(
        jax.random.key(0), x, train=False, method=few_shot.FewShotModel.embed),
                          videos)

  shapes = init('imagenet')
  assert jax.tree.map(np.shape, shapes) == jax.tree.map(np.shape, init('caffe'))
  rng = np.random.default_rng(1)
  variables = jax.tree.map(  # positive variances for the batch statistics
      lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype), shapes)
  # Independent reference: keras.applications 'caffe' preprocessing.
  caffe = (frames[..., ::-1].astype(np.float32)
           - np.array([103.939, 116.779, 123.68], np.float32))
  backbone = resnet.build_backbone('resnet_tiny', width=8)

  @jax.jit
  def run(variables, videos, caffe):
    embed = lambda kind: models[kind].apply(
        variables, videos, train=False, method=few_shot.FewShotModel.embed)
    want = backbone.apply({k: v['backbone'] for k, v in variables.items()},
                          caffe.reshape((6, 16, 16, 3)), train=False)
    return embed('imagenet'), embed('caffe'), want

  plain, got, want = run(variables, videos, jnp.asarray(caffe))
  np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4,
                             atol=1e-3 * np.abs(want).max())
  assert not np.allclose(plain, got, rtol=1e-2)
  np.testing.assert_allclose(
      normalisation.normalise(jnp.asarray(frames), kind='caffe'), caffe,
      atol=1e-4)
  with pytest.raises(ValueError, match=r'config\.model\.normalisation='):
    normalisation.normalise(jnp.asarray(frames), kind='bgr')
