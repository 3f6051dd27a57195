"""Converts pretrained ImageNet weights to the Flax backbones of vim_jax.

Sources:

* torchvision state dicts (`.pth` / `.pt` through torch, or `.npz` written
  with `numpy.savez(path, **{k: v.numpy() for k, v in sd.items()})`) for
  resnet18, resnet34, resnet50 and shufflenet_v2_x0_5. timm's ResNets use the
  same names as torchvision (conv1, bn1, layer1.0.conv1, ...,
  layer1.0.downsample.0/1, fc) and the same stride placement, so their
  state dicts convert as they are (`.safetensors` through the `safetensors`
  package).
* Keras `keras.applications.ResNet50` weight files (`.h5`), in the legacy
  format of the files Keras downloads (`resnet50_weights_tf_dim_ordering_
  tf_kernels_notop.h5`) or in the Keras 3 `.weights.h5` format. That network
  is ResNet v1: stride on the first 1x1 conv, BN eps 1.001e-5 and conv
  biases. The biases are folded into the following BatchNorm's moving mean,
  exactly: BN(x + b) with mean m equals BN(x) with mean m - b, so the Flax
  ResNet keeps bias-free convs.

Every source tensor is used exactly once: unused source tensors, target
parameters without a source and shape mismatches raise a ValueError naming
them. Classifier weights (`fc.*`, Keras `predictions`) and torch's
`num_batches_tracked` counters are ignored and logged as such.

Input conventions differ: torchvision/timm weights expect RGB in [0, 1]
normalised by the ImageNet mean/std; Keras ResNet50 weights expect 'caffe'
preprocessing (BGR, 0-255, minus the per-channel mean, no scaling). The
written `backbone.json` records which ('torch' or 'caffe').

Command line:

  python -m vim_jax.weights.convert --source=resnet50.pth --arch=resnet50 \
      --out=/tmp/resnet50_flax

writes a weight folder (vim_jax/weights/folder.py): an orbax checkpoint
`<out>/variables` holding {'params', 'batch_stats'} and `<out>/backbone.json`
with the arch, the module kwargs (`stride_in_1x1`, `bn_epsilon`) and the
preprocessing; `folder.load` reads both back.
"""
import collections
import logging
import os
from typing import Any, Callable, Mapping

import flax
import h5py
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.weights import folder

KERAS_ARCHS = ('resnet50',)

# Flax module name inside a ShuffleNet unit -> torchvision submodule.
_SHUFFLE_UNIT_TORCH = {
    'branch1_dw_conv': 'branch1.0',
    'branch1_dw_bn': 'branch1.1',
    'branch1_pw_conv': 'branch1.2',
    'branch1_pw_bn': 'branch1.3',
    'branch2_pw1_conv': 'branch2.0',
    'branch2_pw1_bn': 'branch2.1',
    'branch2_dw_conv': 'branch2.3',
    'branch2_dw_bn': 'branch2.4',
    'branch2_pw2_conv': 'branch2.5',
    'branch2_pw2_bn': 'branch2.6',
}
_SHUFFLE_TOP_TORCH = {
    'conv_init': 'conv1.0', 'bn_init': 'conv1.1', 'conv5': 'conv5.0',
    'bn5': 'conv5.1', 'head': 'fc',
}
_RESNET_BLOCK_TORCH = {'proj_conv': 'downsample.0', 'proj_bn': 'downsample.1'}


def abstract_variables(arch: str, **kwargs):
  """Shapes of {'params', 'batch_stats'} of `arch`, without computing them."""
  module = folder.build_module(arch, **kwargs)
  return jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                          train=False))


def _modules(abstract):
  """Groups the leaves by module: {module path: {(collection, leaf): shape}}."""
  modules = {}
  for path, leaf in flax.traverse_util.flatten_dict(
      flax.core.unfreeze(abstract)).items():
    collection, *module_path, name = path
    modules.setdefault(tuple(module_path), {})[(collection, name)] = leaf.shape
  return modules


def _kind(leaves):
  if ('params', 'scale') in leaves:
    return 'bn'
  ndim = len(leaves[('params', 'kernel')])
  return {4: 'conv', 2: 'dense'}[ndim]


# A rule maps one target leaf to (source keys, function of those arrays).
Rule = tuple[tuple[str, ...], Callable[..., np.ndarray]]


def _assemble(abstract, rule_for: Callable[[tuple[str, ...], str, str, str],
                                           Rule],
              source: Mapping[str, np.ndarray], ignored: set[str]):
  """Builds the variables from `source`, using every source tensor once.

  Args:
    abstract: the target's variables as ShapeDtypeStructs.
    rule_for: (module path, module kind, collection, leaf) -> rule.
    source: flat source tensors.
    ignored: source keys deliberately left out.

  Returns:
    {'params': ..., 'batch_stats': ...} of float32 numpy arrays.

  Raises:
    ValueError: naming unused source keys, source keys used twice, target
      parameters without a source, and shape mismatches.
  """
  used, missing, mismatched, flat = collections.Counter(), [], [], {}
  for module_path, leaves in _modules(abstract).items():
    kind = _kind(leaves)
    for (collection, name), shape in leaves.items():
      target = '/'.join((collection,) + module_path + (name,))
      keys, fn = rule_for(module_path, kind, collection, name)
      absent = [k for k in keys if k not in source]
      if absent:
        missing.append(f'{target} (from {", ".join(absent)})')
        continue
      used.update(keys)
      value = np.asarray(fn(*(np.asarray(source[k]) for k in keys)),
                         np.float32)
      if value.shape != tuple(shape):
        mismatched.append(f'{target}: expected {tuple(shape)}, got '
                          f'{value.shape} from {", ".join(keys)}')
        continue
      flat[(collection,) + module_path + (name,)] = value
  unused = sorted(set(source) - set(used) - ignored)
  reused = sorted(k for k, n in used.items() if n > 1)
  if unused or reused or missing or mismatched:
    parts = []
    if unused:
      parts.append(f'unused source keys: {unused}')
    if reused:  # a mapping error: two targets read the same tensor
      parts.append(f'source keys used more than once: {reused}')
    if missing:
      parts.append(f'missing target params: {missing}')
    if mismatched:
      parts.append(f'shape mismatches: {mismatched}')
    raise ValueError('Weight conversion failed; ' + '; '.join(parts))
  if ignored:
    logging.info('Ignored source tensors: %s', sorted(ignored))
  variables = flax.traverse_util.unflatten_dict(flat)
  variables.setdefault('batch_stats', {})
  return variables


def torchvision_name(arch: str, module_path: tuple[str, ...]) -> str:
  """The torchvision module name of a Flax module path.

  E.g. ('stage1_block0', 'proj_conv') -> 'layer1.0.downsample.0' (ResNet),
  ('stage2_block0', 'branch2_dw_conv') -> 'stage2.0.branch2.3' (ShuffleNet).
  """
  top = module_path[0]
  if arch in folder.RESNETS:
    if top == 'conv_init':
      return 'conv1'
    if top == 'bn_init':
      return 'bn1'
    stage, block = top.split('_')  # 'stage1', 'block0'
    leaf = _RESNET_BLOCK_TORCH.get(module_path[1], module_path[1])
    return f'layer{stage[5:]}.{block[5:]}.{leaf}'
  if top in _SHUFFLE_TOP_TORCH:
    return _SHUFFLE_TOP_TORCH[top]
  stage, block = top.split('_')  # 'stage2', 'block0'
  return f'{stage}.{block[5:]}.{_SHUFFLE_UNIT_TORCH[module_path[1]]}'


def _torchvision_rule(arch):
  def rule(module_path, kind, collection, name):
    prefix = torchvision_name(arch, module_path)
    # OIHW -> HWIO; a depthwise [C, 1, kh, kw] becomes [kh, kw, 1, C].
    if kind == 'conv':
      return (f'{prefix}.weight',), lambda w: w.transpose(2, 3, 1, 0)
    if kind == 'dense':
      if name == 'kernel':  # [out, in] -> [in, out]
        return (f'{prefix}.weight',), lambda w: w.T
      return (f'{prefix}.bias',), lambda b: b
    torch_leaf = {'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
                  'var': 'running_var'}[name]
    return (f'{prefix}.{torch_leaf}',), lambda x: x
  return rule


def from_torchvision_state_dict(state: Mapping[str, np.ndarray], arch: str):
  """Converts a torchvision (or timm ResNet) state dict.

  Args:
    state: parameter name -> array, torchvision names (e.g. 'conv1.weight',
      'layer1.0.downsample.1.running_var', 'stage2.0.branch1.0.weight').
    arch: one of `folder.ARCHS`.

  Returns:
    {'params': ..., 'batch_stats': ...} for `folder.build_module(arch)` with the
    default kwargs (`torchvision_kwargs(arch)`).

  Raises:
    ValueError: an unknown arch, an unused source tensor, a target parameter
      without a source, or a shape mismatch (all named). `fc.*` and
      `*.num_batches_tracked` are ignored (and logged).
  """
  folder.check_arch(arch)
  ignored = {k for k in state
             if k.startswith('fc.') or k.endswith('num_batches_tracked')}
  return _assemble(abstract_variables(arch), _torchvision_rule(arch), state,
                   ignored)


def torchvision_kwargs(arch: str) -> dict[str, Any]:
  """Module kwargs matching torchvision weights."""
  folder.check_arch(arch)
  if arch in folder.RESNETS:
    return {'stride_in_1x1': False, 'bn_epsilon': 1e-5}
  return {'bn_epsilon': 1e-5}


KERAS_RESNET50_KWARGS = {'stride_in_1x1': True, 'bn_epsilon': 1.001e-5}


def keras_name(module_path: tuple[str, ...]) -> str:
  """The Keras ResNet50 layer name of a Flax module path.

  E.g. ('conv_init',) -> 'conv1_conv', ('stage1_block0', 'proj_bn') ->
  'conv2_block1_0_bn', ('stage4_block2', 'conv3') -> 'conv5_block3_3_conv'.
  """
  top = module_path[0]
  if top in ('conv_init', 'bn_init'):
    return 'conv1_' + top[:-5]
  stage, block = top.split('_')
  leaf = module_path[1]
  index = '0' if leaf.startswith('proj_') else leaf[-1]
  kind = 'bn' if 'bn' in leaf else 'conv'
  return f'conv{int(stage[5:]) + 1}_block{int(block[5:]) + 1}_{index}_{kind}'


def _keras_rule(module_path, kind, collection, name):
  del collection
  layer = keras_name(module_path)
  if kind == 'conv':  # Keras kernels are HWIO already
    return (f'{layer}/kernel',), lambda w: w
  if name == 'mean':  # fold the preceding conv's bias
    conv = layer[:-len('bn')] + 'conv'
    return ((f'{layer}/moving_mean', f'{conv}/bias'), lambda m, b: m - b)
  keras_leaf = {'scale': 'gamma', 'bias': 'beta', 'var': 'moving_variance'}
  return (f'{layer}/{keras_leaf[name]}',), lambda x: x


# Keras 3 `.weights.h5` stores variables by position; names per count.
_KERAS3_VAR_NAMES = {
    1: ('kernel',),
    2: ('kernel', 'bias'),
    4: ('gamma', 'beta', 'moving_mean', 'moving_variance'),
}


def read_keras_h5(path: str) -> dict[str, np.ndarray]:
  """Reads a Keras weights file into {'layer/weight': array}.

  Handles the legacy HDF5 layout (root or 'model_weights' group with
  `layer_names` / `weight_names` attributes, as in the files
  `keras.applications` downloads) and the Keras 3 `.weights.h5` layout
  ('layers/<auto name>/vars/<i>' with the layer name in an attribute).
  """
  out = {}
  with h5py.File(path, 'r') as f:
    root = f['model_weights'] if 'model_weights' in f else f
    if 'layer_names' in root.attrs:
      for layer in root.attrs['layer_names']:
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        group = root[layer]
        for weight in group.attrs.get('weight_names', []):
          weight = weight.decode() if isinstance(weight, bytes) else str(weight)
          short = weight.split('/')[-1].split(':')[0]
          out[f'{layer}/{short}'] = np.asarray(group[weight])
    elif 'layers' in root:
      for key, group in root['layers'].items():
        if 'vars' not in group or not len(group['vars']):
          continue
        variables = group['vars']
        layer = variables.attrs.get('name', key)
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        names = _KERAS3_VAR_NAMES.get(len(variables))
        if names is None:
          raise ValueError(f'{path}: layer {layer!r} has {len(variables)} '
                           'variables; cannot name them')
        for i, short in enumerate(names):
          out[f'{layer}/{short}'] = np.asarray(variables[str(i)])
    else:
      raise ValueError(f'{path} is not a Keras weights file (no layer_names '
                       'attribute and no layers group)')
  return out


def from_keras_h5(path: str, arch: str = 'resnet50'):
  """Converts a `keras.applications.ResNet50` weights file.

  Args:
    path: the .h5 file (with or without the top; 'predictions' is ignored).
    arch: only 'resnet50'.

  Returns:
    {'params': ..., 'batch_stats': ...} for
    `resnet.build_backbone('resnet50', **KERAS_RESNET50_KWARGS)`.

  Raises:
    ValueError: as `from_torchvision_state_dict`.
  """
  folder.check_arch(arch, KERAS_ARCHS)
  source = read_keras_h5(path)
  ignored = {k for k in source if k.startswith('predictions/')}
  return _assemble(abstract_variables(arch, **KERAS_RESNET50_KWARGS),
                   _keras_rule, source, ignored)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a state dict from .pth/.pt (torch), .npz or .safetensors.

  A {'state_dict': ...} or {'model': ...} wrapper and a DataParallel
  'module.' prefix are removed.
  """
  suffix = os.path.splitext(path)[1].lower()
  if suffix in ('.pth', '.pt', '.tar'):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError('install torch to read .pth; or save the state dict '
                        'as .npz') from e
    state = torch.load(path, map_location='cpu', weights_only=True)
    for wrapper in ('state_dict', 'model'):
      if isinstance(state.get(wrapper), Mapping):
        state = state[wrapper]
    state = {k: v.detach().cpu().float().numpy() if v.is_floating_point()
             else v.cpu().numpy() for k, v in state.items()}
  elif suffix == '.npz':
    with np.load(path) as f:
      state = {k: f[k] for k in f.files}
  elif suffix == '.safetensors':
    try:
      from safetensors import numpy as st  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError('install safetensors to read .safetensors; or save '
                        'the state dict as .npz') from e
    state = st.load_file(path)
  else:
    raise ValueError(f'Cannot read {path}: expected .pth, .pt, .npz, '
                     '.safetensors (torchvision/timm) or .h5 (Keras)')
  if state and all(k.startswith('module.') for k in state):
    state = {k[len('module.'):]: v for k, v in state.items()}
  return state


def convert(source: str, arch: str):
  """Converts a weights file by its suffix.

  Returns:
    (variables, metadata): metadata holds 'arch', 'source' ('torchvision' or
    'keras'), 'backbone_kwargs' and 'preprocessing' ('torch' or 'caffe').
  """
  folder.check_arch(arch)
  if source.lower().endswith('.h5'):
    variables = from_keras_h5(source, arch)
    meta = {'source': 'keras', 'backbone_kwargs': dict(KERAS_RESNET50_KWARGS),
            'preprocessing': 'caffe'}
  else:
    variables = from_torchvision_state_dict(load_state_dict(source), arch)
    meta = {'source': 'torchvision', 'preprocessing': 'torch',
            'backbone_kwargs': torchvision_kwargs(arch)}
  return variables, {'arch': arch, **meta}


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  variables, metadata = convert(f.source, f.arch)
  n = sum(x.size for x in jax.tree.leaves(variables['params']))
  logging.info('Converted %s: %d parameters', f.source, n)
  folder.save(f.out, variables, metadata, overwrite=f.overwrite)


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('source', None, 'Weights file: .pth/.pt/.npz/'
                      '.safetensors (torchvision, timm) or .h5 (Keras).')
  flags.DEFINE_enum('arch', None, list(folder.ARCHS), 'Architecture.')
  flags.DEFINE_string('out', None, 'Output directory.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing checkpoint.')
  flags.mark_flags_as_required(['source', 'arch', 'out'])


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
