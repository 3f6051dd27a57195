"""The few-shot model and its modules from `config.model`, in one place.

The modules hold typed fields named as the config's (configs/default.py
documents them); these functions read a config section into them, so a
module never sees a ConfigDict. A config field that no module field takes
is an error that names it, as is a bad value (each module validates its own
fields once, when it is made).
"""
import dataclasses

import jax.numpy as jnp
import ml_collections

from vim_jax.models import alignment as alignment_lib
from vim_jax.models import few_shot
from vim_jax.models import normalisation as normalisation_lib
from vim_jax.models import resnet
from vim_jax.models import sampler as sampler_lib


def _fields(module_cls, section, path: str, skip=()) -> dict:
  """The fields of `module_cls` that the config `section` (at `path`) sets.

  Raises:
    ValueError: naming a key of the section that `module_cls` has no field
      for (and that `skip` does not list).
  """
  names = {field.name for field in dataclasses.fields(module_cls)}
  fields = {}
  for key, value in section.items():
    if key in skip:
      continue
    if key not in names:
      raise ValueError(f'{path}.{key} is not a setting of '
                       f'{module_cls.__name__}.')
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    fields[key] = value
  return fields


def sampler(section, *, frames: int, dtype=jnp.float32
            ) -> sampler_lib.VideoSampler:
  """The `VideoSampler` of `config.model.sampler` ('enabled' is the model's
  business: see `model`)."""
  return sampler_lib.VideoSampler(
      frames=frames, dtype=dtype,
      **_fields(sampler_lib.VideoSampler, section, 'config.model.sampler',
                skip=('enabled',)))


def alignment(section, way: int, dtype=jnp.float32
              ) -> alignment_lib.ActionAlignment:
  """The `ActionAlignment` of `config.model.alignment` for N = `way`."""
  return alignment_lib.ActionAlignment(
      way=way, dtype=dtype,
      **_fields(alignment_lib.ActionAlignment, section,
                'config.model.alignment'))


def backbone(model_config, dtype):
  """The ResNet of `config.model`, behind Caffe input normalisation where
  `normalisation='caffe'` (Keras weights; frames arrive ImageNet-normalised,
  under the same parameter tree)."""
  kwargs = dict(width=model_config.backbone_width, dtype=dtype,
                stride_in_1x1=model_config.stride_in_1x1,
                bn_epsilon=model_config.bn_epsilon)
  normalisation = model_config.normalisation
  if normalisation == 'imagenet':
    return resnet.build_backbone(model_config.backbone, **kwargs)
  if normalisation == 'caffe':
    return normalisation_lib.BackboneInput(
        resnet.build_backbone(model_config.backbone, **kwargs))
  raise ValueError(f'config.model.normalisation={normalisation!r} is not '
                   f'one of {normalisation_lib.KINDS}.')


def head(model_config, way: int, dtype):
  """The metric head `config.model.head` names, or None for ProtoNet's."""
  few_shot.check_head(model_config)
  name = model_config.get('head', 'protonet')
  if name == 'protonet':
    return None
  kwargs = dict(model_config.get('head_kwargs') or {})
  if name != 'otam':
    kwargs['dtype'] = dtype
  return few_shot.HEADS[name](way=way, logit_scale=model_config.logit_scale,
                              **kwargs)


def model(model_config, *, way: int) -> few_shot.FewShotModel:
  """The `FewShotModel` of `config.model` for N-way episodes."""
  dtype = jnp.dtype(model_config.dtype)
  return few_shot.FewShotModel(
      way=way, backbone=backbone(model_config, dtype),
      frames=model_config.frames, logit_scale=model_config.logit_scale,
      dtype=dtype,
      sampler=(sampler(model_config.sampler, frames=model_config.frames,
                       dtype=dtype)
               if few_shot.uses_sampler(model_config) else None),
      alignment=(alignment(model_config.alignment, way, dtype)
                 if few_shot.uses_alignment(model_config) else None),
      head=head(model_config, way, dtype))
