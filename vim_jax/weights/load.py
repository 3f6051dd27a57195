"""Loads weight folders into the few-shot model's variables (paper 4.2).

The paper's backbone F is an ImageNet-pretrained ResNet-50 and its scan
network f an ImageNet-pretrained ShuffleNet V2 0.5x. Both come from weight
folders (vim_jax/weights/folder.py: `<dir>/variables`, an orbax checkpoint of
{'params', 'batch_stats'}, and `<dir>/backbone.json` with the arch, the module
kwargs and the input convention), written by `python -m
vim_jax.weights.convert` or by pretraining (vim_jax/weights/pretrain.py), and
named by two config fields:

* `config.model.backbone_weights`: replaces the 'backbone' subtree of
  `FewShotModel`'s variables;
* `config.model.scan_weights`: replaces the 'sampler'/'scan' subtree (only when
  the model has a scan network, i.e. with `config.model.sampler.enabled`).

None leaves the random initialisation. `load_pretrained` checks that the
weights fit the configured module before anything is replaced: the arch
(`config.model.backbone`, `config.model.sampler.scan_net`), the module kwargs
(`config.model.stride_in_1x1`, `config.model.bn_epsilon`, the scan net's
`bn_epsilon`), the input convention (`config.model.normalisation`) and every
shape; a mismatch is a ValueError naming the config field to change.

Input conventions are vim_jax/models/normalisation.py's; `backbone.json`'s
'preprocessing' names the one the weights expect (`folder.PREPROCESSING`).
"""
import logging
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.models import shufflenet
from vim_jax.weights import folder

BACKBONE_PATH = ('backbone',)
SCAN_PATH = ('sampler', 'scan')
COLLECTIONS = ('params', 'batch_stats')


def _subtree(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _replace(tree, path, value):
  """A copy of the nested dict `tree` with `tree[path]` replaced by `value`."""
  if not path:
    return value
  out = dict(tree)
  out[path[0]] = _replace(tree[path[0]], path[1:], value)
  return out


def _has(tree, path):
  try:
    _subtree(tree, path)
    return True
  except (KeyError, TypeError):
    return False


def _check_tree(target, loaded, where: str, weights_field: str,
                hint: str) -> None:
  """Same leaves and shapes, else a ValueError naming them and the fields."""
  target_flat = flax.traverse_util.flatten_dict(target, sep='/')
  loaded_flat = flax.traverse_util.flatten_dict(loaded, sep='/')
  missing = sorted(set(target_flat) - set(loaded_flat))
  extra = sorted(set(loaded_flat) - set(target_flat))
  shapes = sorted(
      f'{k}: model {tuple(np.shape(target_flat[k]))}, weights '
      f'{tuple(np.shape(loaded_flat[k]))}'
      for k in set(target_flat) & set(loaded_flat)
      if np.shape(target_flat[k]) != np.shape(loaded_flat[k]))
  if missing or extra or shapes:
    parts = [f'{name}: {items[:8]}{" ..." if len(items) > 8 else ""}'
             for name, items in (('absent from the weights', missing),
                                 ('not in the model', extra),
                                 ('shape mismatches', shapes)) if items]
    raise ValueError(
        f'config.model.{weights_field} does not fit the model\'s {where} '
        f'({"; ".join(parts)}); {hint}')


def check_backbone_metadata(metadata: dict, model_config, path: str) -> None:
  """Raises ValueError naming the config field that disagrees with `path`."""
  field = 'config.model.backbone_weights'
  if metadata['arch'] != model_config.backbone:
    raise ValueError(
        f'config.model.backbone={model_config.backbone!r} but {field}={path!r}'
        f' holds {metadata["arch"]!r} weights; set '
        f'--config.model.backbone={metadata["arch"]}.')
  for key, value in metadata.get('backbone_kwargs', {}).items():
    configured = model_config.get(key)
    if configured is None or not np.isclose(float(configured), float(value),
                                            rtol=0, atol=1e-9):
      raise ValueError(
          f'config.model.{key}={configured!r} but {field}={path!r} was '
          f'converted for {key}={value!r}; set --config.model.{key}={value}.')
  wanted = folder.PREPROCESSING.get(metadata.get('preprocessing'))
  if wanted is None:
    raise ValueError(f'{field}={path!r}: unknown preprocessing '
                     f'{metadata.get("preprocessing")!r} in backbone.json.')
  if model_config.normalisation != wanted:
    raise ValueError(
        f'config.model.normalisation={model_config.normalisation!r} but '
        f'{field}={path!r} expects {wanted!r} input '
        f'({metadata.get("source", "?")} weights); set '
        f'--config.model.normalisation={wanted}.')


def check_scan_metadata(metadata: dict, model_config, path: str) -> None:
  """Raises ValueError naming the config field that disagrees with `path`."""
  field = 'config.model.scan_weights'
  sampler = model_config.sampler
  if metadata['arch'] != sampler.scan_net:
    raise ValueError(
        f'config.model.sampler.scan_net={sampler.scan_net!r} but {field}='
        f'{path!r} holds {metadata["arch"]!r} weights.')
  scan_kwargs = dict(sampler.get('scan_kwargs') or {})
  module = shufflenet.build_scan_network(sampler.scan_net, **scan_kwargs)
  for key, value in metadata.get('backbone_kwargs', {}).items():
    configured = getattr(module, key)
    if not np.isclose(float(configured), float(value), rtol=0, atol=1e-9):
      raise ValueError(
          f'config.model.sampler.scan_kwargs.{key}={configured!r} but {field}'
          f'={path!r} was converted for {key}={value!r}.')
  if folder.PREPROCESSING.get(metadata.get('preprocessing')) != 'imagenet':
    raise ValueError(
        f'{field}={path!r} expects {metadata.get("preprocessing")!r} input; '
        'the scan network is always fed ImageNet-normalised RGB (torchvision '
        'weights).')


def _load_into(variables, path_in_tree, loaded, where, weights_field, hint):
  """`variables` with both collections of `path_in_tree` taken from `loaded`."""
  target = {c: _subtree(variables[c], path_in_tree) if _has(
      variables.get(c, {}), path_in_tree) else {} for c in COLLECTIONS}
  loaded = {c: loaded.get(c, {}) for c in COLLECTIONS}
  _check_tree(target, loaded, where, weights_field, hint)
  out = dict(variables)
  for c in COLLECTIONS:
    if not target[c]:
      continue
    value = jax.tree.map(
        lambda old, new: jnp.asarray(new, dtype=old.dtype),
        target[c], flax.core.unfreeze(loaded[c]))
    out[c] = _replace(variables[c], path_in_tree, value)
  return out


def load_pretrained(variables: dict[str, Any], model_config) -> dict[str, Any]:
  """Replaces the backbone's and the scan network's variables by converted ones.

  Args:
    variables: `FewShotModel` variables, {'params', 'batch_stats', ...}.
    model_config: `config.model` (its `backbone_weights`, `scan_weights`).

  Returns:
    The variables with the 'backbone' and 'sampler'/'scan' subtrees (params
    and batch statistics) replaced where a folder is configured; other
    collections and modules unchanged. Unchanged when neither is set.

  Raises:
    FileNotFoundError: a configured folder without `backbone.json`.
    ValueError: arch, module kwargs, input convention or shapes disagree
      (naming the config field to change).
  """
  variables = flax.core.unfreeze(variables)
  path = model_config.get('backbone_weights')
  if path:
    metadata = folder.read_metadata(path, 'backbone_weights')
    check_backbone_metadata(metadata, model_config, path)
    loaded, _ = folder.load(path)
    variables = _load_into(
        variables, BACKBONE_PATH, loaded, 'backbone', 'backbone_weights',
        'the standard widths need config.model.backbone_width=64.')
    logging.info('Backbone %s: pretrained weights from %s (%s)',
                 model_config.backbone, path, metadata.get('source'))
  path = model_config.get('scan_weights')
  if path:
    if not _has(variables['params'], SCAN_PATH):
      logging.warning(
          'config.model.scan_weights=%s is ignored: this model has no scan '
          'network (config.model.sampler.enabled=%s, method=%r).', path,
          model_config.sampler.enabled, model_config.sampler.method)
    else:
      metadata = folder.read_metadata(path, 'scan_weights')
      check_scan_metadata(metadata, model_config, path)
      loaded, _ = folder.load(path)
      variables = _load_into(
          variables, SCAN_PATH, loaded, 'scan network', 'scan_weights',
          'pretrained weights need the standard network: leave '
          'config.model.sampler.scan_kwargs empty.')
      logging.info('Scan network %s: pretrained weights from %s',
                   model_config.sampler.scan_net, path)
  return variables
