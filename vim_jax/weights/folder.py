"""The weight-folder format: one network's weights and what they need.

A weight folder holds

  <dir>/variables      an orbax checkpoint of {'params', 'batch_stats'}
  <dir>/backbone.json  'arch' (one of `ARCHS`); 'backbone_kwargs', the module
                       kwargs the weights need (`stride_in_1x1`,
                       `bn_epsilon`); 'preprocessing', the input convention
                       they expect ('torch' or 'caffe', `PREPROCESSING`);
                       'source', where they come from ('torchvision',
                       'keras', or pretraining's label); pretrained folders
                       also a 'pretrain' record.

`python -m vim_jax.weights.convert` writes one from ImageNet weights,
`vim_jax.weights.pretrain` from pretraining on the training classes;
`vim_jax.weights.load` loads them into the few-shot model.
"""
import json
import logging
import os
from typing import Any, Mapping

import orbax.checkpoint as ocp

from vim_jax.models import resnet
from vim_jax.models import shufflenet

RESNETS = ('resnet18', 'resnet34', 'resnet50')
ARCHS = RESNETS + ('shufflenet_v2_x0_5',)
METADATA_FILE = 'backbone.json'
VARIABLES_DIR = 'variables'
# `backbone.json` 'preprocessing' -> the `config.model.normalisation` it needs
# (vim_jax/models/normalisation.py).
PREPROCESSING = {'torch': 'imagenet', 'caffe': 'caffe'}


def check_arch(arch, valid=ARCHS):
  if arch not in valid:
    raise ValueError(f'Unknown arch {arch!r}; valid: {list(valid)}.')


def build_module(arch: str, **kwargs):
  """The Flax feature extractor of `arch` (a ResNet or a ShuffleNet V2)."""
  check_arch(arch)
  if arch in RESNETS:
    return resnet.build_backbone(arch, **kwargs)
  return shufflenet.build_scan_network(arch, **kwargs)


def save(out_dir: str, variables, metadata: Mapping[str, Any],
         overwrite: bool = False) -> None:
  """Writes `<out_dir>/variables` (orbax) and `<out_dir>/backbone.json`."""
  out_dir = os.path.abspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(out_dir, VARIABLES_DIR), variables,
                    force=overwrite)
  checkpointer.wait_until_finished()
  with open(os.path.join(out_dir, METADATA_FILE), 'w') as f:
    json.dump(dict(metadata), f, indent=2, sort_keys=True)
  logging.info('Wrote %s (%s)', out_dir, metadata)


def read_metadata(path: str, field: str | None = None) -> dict[str, Any]:
  """The `backbone.json` of a weight folder.

  Args:
    path: the folder.
    field: the `config.model` field that named it, for the error.

  Raises:
    FileNotFoundError: `path` holds no `backbone.json` (naming `field`).
  """
  if not os.path.isfile(os.path.join(path, METADATA_FILE)):
    named = f'config.model.{field}={path!r}' if field else repr(path)
    raise FileNotFoundError(
        f'{named} holds no {METADATA_FILE}: write it with `python -m '
        'vim_jax.weights.convert --source=... --arch=... --out=DIR`.')
  with open(os.path.join(path, METADATA_FILE)) as f:
    return json.load(f)


def load(path: str):
  """Reads what `save` wrote.

  Args:
    path: the folder.

  Returns:
    (variables, backbone_kwargs): {'params', 'batch_stats'} as numpy arrays
    and the module kwargs the weights need (e.g. `stride_in_1x1`,
    `bn_epsilon`); the arch is `read_metadata(path)['arch']`.
  """
  variables = ocp.StandardCheckpointer().restore(
      os.path.join(os.path.abspath(path), VARIABLES_DIR))
  return variables, read_metadata(path)['backbone_kwargs']


def build(path: str, **kwargs):
  """(module, variables) of a weight folder; kwargs override module fields."""
  variables, backbone_kwargs = load(path)
  module = build_module(read_metadata(path)['arch'],
                        **{**backbone_kwargs, **kwargs})
  return module, variables
