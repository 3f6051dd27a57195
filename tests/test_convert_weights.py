"""Tests for the conversion of torchvision and Keras weights."""
import json
import logging
import os
import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vim_jax.models import resnet
from vim_jax.weights import convert
from vim_jax.weights import folder

# ---------------------------------------------------------------------------
# torchvision-layout state dicts, generated from the architectures' published
# structure (names and shapes), independently of the converter's tables.


def _conv(shapes, name, c_out, c_in, k):
  shapes[f'{name}.weight'] = (c_out, c_in, k, k)


def _bn(shapes, name, c):
  for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
    shapes[f'{name}.{leaf}'] = (c,)
  shapes[f'{name}.num_batches_tracked'] = ()


def torchvision_resnet18_shapes():
  shapes = {}
  _conv(shapes, 'conv1', 64, 3, 7)
  _bn(shapes, 'bn1', 64)
  c_in = 64
  for layer, width in enumerate((64, 128, 256, 512), start=1):
    for b in range(2):
      p = f'layer{layer}.{b}'
      _conv(shapes, f'{p}.conv1', width, c_in, 3)
      _bn(shapes, f'{p}.bn1', width)
      _conv(shapes, f'{p}.conv2', width, width, 3)
      _bn(shapes, f'{p}.bn2', width)
      if b == 0 and layer > 1:
        _conv(shapes, f'{p}.downsample.0', width, c_in, 1)
        _bn(shapes, f'{p}.downsample.1', width)
      c_in = width
  shapes['fc.weight'] = (1000, 512)
  shapes['fc.bias'] = (1000,)
  return shapes


def torchvision_shufflenet_x0_5_shapes():
  shapes = {}
  _conv(shapes, 'conv1.0', 24, 3, 3)
  _bn(shapes, 'conv1.1', 24)
  c_in = 24
  for stage, (c_out, repeats) in enumerate(zip((48, 96, 192), (4, 8, 4)),
                                           start=2):
    half = c_out // 2
    for j in range(repeats):
      p = f'stage{stage}.{j}'
      if j == 0:
        shapes[f'{p}.branch1.0.weight'] = (c_in, 1, 3, 3)  # depthwise
        _bn(shapes, f'{p}.branch1.1', c_in)
        _conv(shapes, f'{p}.branch1.2', half, c_in, 1)
        _bn(shapes, f'{p}.branch1.3', half)
      _conv(shapes, f'{p}.branch2.0', half, c_in if j == 0 else half, 1)
      _bn(shapes, f'{p}.branch2.1', half)
      shapes[f'{p}.branch2.3.weight'] = (half, 1, 3, 3)  # depthwise
      _bn(shapes, f'{p}.branch2.4', half)
      _conv(shapes, f'{p}.branch2.5', half, half, 1)
      _bn(shapes, f'{p}.branch2.6', half)
    c_in = c_out
  _conv(shapes, 'conv5.0', 1024, 192, 1)
  _bn(shapes, 'conv5.1', 1024)
  shapes['fc.weight'] = (1000, 1024)
  shapes['fc.bias'] = (1000,)
  return shapes


def _random_state(shapes, seed=0):
  rng = np.random.default_rng(seed)
  state = {}
  for k, shape in shapes.items():
    if k.endswith('num_batches_tracked'):
      state[k] = np.array(7, np.int64)
    elif k.endswith('running_var') or (
        '.weight' in k and len(shape) == 1):  # BN variance and gamma
      state[k] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:  # unique values, so that the value check below is meaningful
      state[k] = (0.1 * rng.normal(size=shape)).astype(np.float32)
  return state


TORCH_CASES = {
    'resnet18': torchvision_resnet18_shapes,
    'shufflenet_v2_x0_5': torchvision_shufflenet_x0_5_shapes,
}


@pytest.fixture(scope='module', params=sorted(TORCH_CASES))
def torch_case(request):
  arch = request.param
  state = _random_state(TORCH_CASES[arch]())
  return arch, state, convert.from_torchvision_state_dict(state, arch)


def test_torchvision_every_tensor_used_once(torch_case):
  arch, state, variables = torch_case
  used = {k: v for k, v in state.items()
          if not k.startswith('fc.') and not k.endswith('num_batches_tracked')}
  leaves = jax.tree.leaves(variables)
  assert sum(x.size for x in leaves) == sum(v.size for v in used.values())
  # Same multiset of values: every source number lands somewhere, once.
  np.testing.assert_array_equal(
      np.sort(np.concatenate([x.ravel() for x in leaves])),
      np.sort(np.concatenate([v.ravel() for v in used.values()])))
  # And the tree is exactly what the module expects.
  expected = convert.abstract_variables(arch)
  assert jax.tree.map(np.shape, variables) == jax.tree.map(
      lambda s: s.shape, expected)


def test_torchvision_bn_mapping(torch_case):
  arch, state, variables = torch_case
  prefix = 'bn1' if arch == 'resnet18' else 'conv1.1'
  np.testing.assert_array_equal(variables['params']['bn_init']['scale'],
                                state[f'{prefix}.weight'])
  np.testing.assert_array_equal(variables['params']['bn_init']['bias'],
                                state[f'{prefix}.bias'])
  np.testing.assert_array_equal(variables['batch_stats']['bn_init']['mean'],
                                state[f'{prefix}.running_mean'])
  np.testing.assert_array_equal(variables['batch_stats']['bn_init']['var'],
                                state[f'{prefix}.running_var'])


def test_torchvision_errors_name_the_keys():
  state = _random_state(torchvision_resnet18_shapes())
  extra = dict(state, **{'layer5.0.conv1.weight': np.zeros((1, 1, 1, 1))})
  with pytest.raises(ValueError, match=r'unused source keys.*layer5\.0\.conv1'):
    convert.from_torchvision_state_dict(extra, 'resnet18')
  missing = dict(state)
  del missing['layer1.0.bn1.running_var']
  with pytest.raises(ValueError, match=(
      r'missing target params.*batch_stats/stage1_block0/bn1/var.*'
      r'layer1\.0\.bn1\.running_var')):
    convert.from_torchvision_state_dict(missing, 'resnet18')
  wrong = dict(state, **{'layer2.0.downsample.0.weight': np.zeros(
      (128, 64, 3, 3), np.float32)})
  with pytest.raises(ValueError, match=r'shape mismatch.*proj_conv/kernel'):
    convert.from_torchvision_state_dict(wrong, 'resnet18')
  # A resnet34 state dict is not a resnet18 one: its extra blocks are unused.
  with pytest.raises(ValueError, match=r'layer1\.2\.conv1\.weight'):
    convert.from_torchvision_state_dict(
        dict(state, **{'layer1.2.conv1.weight': np.zeros((64, 64, 3, 3))}),
        'resnet18')
  with pytest.raises(ValueError, match='resnet101'):
    convert.from_torchvision_state_dict(state, 'resnet101')


def test_a_tensor_read_twice_is_an_error():
  conv = jax.ShapeDtypeStruct((1, 1, 2, 3), jnp.float32)
  abstract = {'params': {'a': {'kernel': conv}, 'b': {'kernel': conv}}}
  source = {'w': np.zeros((3, 2, 1, 1), np.float32)}

  def rule(module_path, kind, collection, name):
    del module_path, kind, collection, name
    return ('w',), lambda w: w.transpose(2, 3, 1, 0)

  with pytest.raises(ValueError, match=r"used more than once: \['w'\]"):
    # pylint: disable-next=protected-access
    convert._assemble(abstract, rule, source, set())


def _conv2d_reference(x, w_oihw, stride, pad, groups=1):
  """Cross-correlation (torch's conv2d) in numpy: NHWC input, OIHW weights."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  o, i_per_group, kh, kw = w_oihw.shape
  b, h, w, _ = x.shape
  ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
  out = np.zeros((b, ho, wo, o), np.float64)
  per_out = o // groups
  for oc in range(o):
    g = oc // per_out
    xs = x[..., g * i_per_group:(g + 1) * i_per_group]
    for dy in range(kh):
      for dx in range(kw):
        patch = xs[:, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride]
        out[..., oc] += patch @ w_oihw[oc, :, dy, dx]
  return out


def test_torchvision_conv_layout_numerically(torch_case):
  arch, state, variables = torch_case
  module = folder.build_module(arch)
  x = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype(np.float32)
  _, inter = jax.jit(lambda v, x: module.apply(
      v, x, train=False, capture_intermediates=True,
      mutable=['intermediates']))(variables, x)
  inter = inter['intermediates']
  stem = np.asarray(inter['conv_init']['__call__'][0])
  if arch == 'resnet18':
    ref = _conv2d_reference(x, state['conv1.weight'], 2, 3)
    bn = 'bn1'
  else:
    ref = _conv2d_reference(x, state['conv1.0.weight'], 2, 1)
    bn = 'conv1.1'
  np.testing.assert_allclose(stem, ref, rtol=1e-4, atol=1e-5)
  # The stem BN, eval mode, with torch's formula and eps.
  bn_ref = ((ref - state[f'{bn}.running_mean'])
            / np.sqrt(state[f'{bn}.running_var'] + 1e-5)
            * state[f'{bn}.weight'] + state[f'{bn}.bias'])
  np.testing.assert_allclose(inter['bn_init']['__call__'][0], bn_ref,
                             rtol=1e-4, atol=1e-5)
  if arch != 'resnet18':  # a depthwise conv: [C, 1, 3, 3] -> [3, 3, 1, C]
    dw = np.asarray(inter['stage2_block0']['branch1_dw_conv']['__call__'][0])
    ref = _conv2d_reference(np.maximum(bn_ref, 0),
                            state['stage2.0.branch1.0.weight'], 2, 1,
                            groups=24)
    np.testing.assert_allclose(dw, ref, rtol=1e-4, atol=1e-5)


def test_orbax_round_trip_and_cli(torch_case, tmp_path):
  arch, state, variables = torch_case
  source = str(tmp_path / 'weights.npz')
  np.savez(source, **state)
  out = tmp_path / 'converted'
  if arch == 'resnet18':  # the library path
    converted, meta = convert.convert(source, arch)
    folder.save(str(out), converted, meta)
  else:  # the command line
    subprocess.run(
        [sys.executable, '-m', 'vim_jax.weights.convert', f'--source={source}',
         f'--arch={arch}', f'--out={out}'],
        check=True, capture_output=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env=dict(os.environ, JAX_PLATFORMS='cpu'))
  restored, kwargs = folder.load(str(out))
  jax.tree.map(np.testing.assert_array_equal, restored, variables)
  assert kwargs == convert.torchvision_kwargs(arch)
  meta = json.loads((out / 'backbone.json').read_text())
  assert meta['arch'] == arch and meta['preprocessing'] == 'torch'
  module, _ = folder.build(str(out))
  assert module.bn_epsilon == 1e-5


def test_pth_reading(tmp_path):
  path = str(tmp_path / 'w.pth')
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    open(path, 'wb').close()
    with pytest.raises(ImportError, match='install torch to read .pth'):
      convert.load_state_dict(path)
    return
  torch.save({'state_dict': {'module.conv1.weight': torch.ones(2, 3)}}, path)
  state = convert.load_state_dict(path)
  assert list(state) == ['conv1.weight']
  np.testing.assert_array_equal(state['conv1.weight'], np.ones((2, 3)))


def test_module_prefix_is_stripped(tmp_path):
  path = str(tmp_path / 'dp.npz')
  np.savez(path, **{'module.conv1.weight': np.zeros((1,)),
                    'module.fc.bias': np.zeros((2,))})
  assert sorted(convert.load_state_dict(path)) == [
      'conv1.weight', 'fc.bias']


# ---------------------------------------------------------------------------
# Keras ResNet50 (v1: stride in the first 1x1 conv, conv biases, eps 1.001e-5).


def _write_downloaded_layout(path, model):
  """The layout of keras.applications' downloaded files (Keras 2 names)."""
  with h5py.File(path, 'w') as f:
    names = [layer.name for layer in model.layers]
    f.attrs['layer_names'] = np.array(names, dtype='S')
    for layer in model.layers:
      group = f.create_group(layer.name)
      weight_names = [f'{layer.name}/{w.name}:0' for w in layer.weights]
      group.attrs['weight_names'] = np.array(weight_names, dtype='S')
      for name, value in zip(weight_names, layer.get_weights()):
        group.create_dataset(name, data=value)


@pytest.fixture(scope='module')
def keras_resnet50(tmp_path_factory):
  keras = pytest.importorskip('keras')
  model = keras.applications.ResNet50(
      weights=None, include_top=False, input_shape=(64, 64, 3))
  rng = np.random.default_rng(0)
  for layer in model.layers:
    weights = layer.get_weights()
    if isinstance(layer, keras.layers.BatchNormalization):
      c = weights[0].shape
      weights = [rng.uniform(0.5, 1.5, c), 0.1 * rng.normal(size=c),
                 0.1 * rng.normal(size=c), rng.uniform(0.5, 1.5, c)]
    elif isinstance(layer, keras.layers.Conv2D):  # non-zero biases to fold
      weights = [weights[0], 0.1 * rng.normal(size=weights[1].shape)]
    layer.set_weights([w.astype(np.float32) for w in weights])
  x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
  expected = model.predict(x, verbose=0)
  out = tmp_path_factory.mktemp('keras')
  files = {
      'keras3': str(out / 'resnet50.weights.h5'),
      'legacy_model': str(out / 'resnet50_model.h5'),
      'downloaded': str(out / 'resnet50_notop.h5'),
  }
  model.save_weights(files['keras3'])
  model.save(files['legacy_model'])
  _write_downloaded_layout(files['downloaded'], model)
  biases = {layer.name: layer.get_weights()[1] for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D)}
  return files, x, expected, biases


# Keras 3.15 + numpy 2.4 warn on every get_weights() (copy keyword).
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_keras_resnet50_matches_keras(keras_resnet50, tmp_path):
  files, x, expected, biases = keras_resnet50
  variables = convert.from_keras_h5(files['downloaded'])
  # All three file layouts give the same variables.
  for layout in ('keras3', 'legacy_model'):
    jax.tree.map(np.testing.assert_array_equal, variables,
                 convert.from_keras_h5(files[layout]))
  # The conv bias is folded into the following BN's mean.
  keras_source = convert.read_keras_h5(files['downloaded'])
  np.testing.assert_allclose(
      variables['batch_stats']['stage3_block1']['bn2']['mean'],
      keras_source['conv4_block2_2_bn/moving_mean'] - biases[
          'conv4_block2_2_conv'], rtol=1e-6)

  module = resnet.build_backbone(
      'resnet50', stride_in_1x1=True, bn_epsilon=1.001e-5)
  out = np.asarray(jax.jit(lambda v, x: module.apply(v, x, train=False))(
      variables, x))
  assert out.shape == expected.shape == (2, 2, 2, 2048)
  assert np.abs(expected).max() > 0.1  # the comparison is not vacuous
  rel = np.linalg.norm(out - expected) / np.linalg.norm(expected)
  assert rel < 1e-4, rel
  logging.info('Keras ResNet50 relative error: %.2e', rel)
  assert np.abs(out - expected).max() / np.abs(expected).max() < 1e-4

  # Round trip through the checkpoint; the metadata rebuilds the same module.
  folder.save(
      str(tmp_path / 'out'), variables,
      {'arch': 'resnet50', 'source': 'keras', 'preprocessing': 'caffe',
       'backbone_kwargs': convert.KERAS_RESNET50_KWARGS})
  module2, restored = folder.build(str(tmp_path / 'out'))
  assert module2.stride_in_1x1 and module2.bn_epsilon == 1.001e-5
  jax.tree.map(np.testing.assert_array_equal, restored, variables)


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_keras_errors(keras_resnet50, tmp_path):
  files, *_ = keras_resnet50
  with pytest.raises(ValueError, match='resnet18'):
    convert.from_keras_h5(files['downloaded'], arch='resnet18')
  # Drop one layer's weights: the missing target names the Keras tensor.
  path = str(tmp_path / 'partial.h5')
  with h5py.File(files['downloaded']) as src, h5py.File(path, 'w') as dst:
    names = [n for n in src.attrs['layer_names'] if n != b'conv3_block2_1_bn']
    dst.attrs['layer_names'] = names
    for n in names:
      src.copy(src[n], dst, name=n.decode())
  with pytest.raises(ValueError, match='conv3_block2_1_bn/gamma'):
    convert.from_keras_h5(path)
