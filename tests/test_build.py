"""vim_jax.models.build: every config setting reaches its module field."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vim as vim_config
from tests.test_configs import CONFIGS
from tests.test_configs import _parse
from vim_jax.models import build
from vim_jax.models import normalisation


def _expect(value):
  return value.to_dict() if hasattr(value, 'to_dict') else value


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_every_setting_of_every_config_reaches_its_field(path):
  """Read back from the built modules, key by key of the config sections."""
  model_config = _parse([f'--config={path}']).model
  model_config.sampler.enabled = True
  model_config.alignment.transform = True
  sampler = build.sampler(model_config.sampler, frames=model_config.frames)
  alignment = build.alignment(model_config.alignment, 5)
  for section, module in ((model_config.sampler, sampler),
                          (model_config.alignment, alignment)):
    for key, value in section.items():
      if key != 'enabled':
        assert getattr(module, key) == _expect(value), key
  model = build.model(model_config, way=5)
  assert (model.way, model.frames) == (5, model_config.frames)
  assert model.logit_scale == model_config.logit_scale
  assert model.sampler == sampler and model.alignment == alignment
  assert (model.head is None) == (model_config.head == 'protonet')


@pytest.mark.parametrize('row', ['baseline', 'sampler', 'alignment', 'full'])
def test_modules_exist_only_when_switched_on(row):
  model = build.model(
      vim_config.get_config(f'row={row},base=test').model, way=3)
  assert (model.sampler is not None) == (row in ('sampler', 'full'))
  assert (model.alignment is not None) == (row in ('alignment', 'full'))


def test_an_unknown_setting_is_named():
  config = vim_config.get_config('row=full,base=test')
  config.model.sampler.hiddden = 3
  with pytest.raises(ValueError, match=r'config\.model\.sampler\.hiddden'):
    build.model(config.model, way=3)
  config = vim_config.get_config('row=full,base=test')
  config.model.alignment.max_shfit = 0.2
  with pytest.raises(ValueError, match=r'config\.model\.alignment\.max_shfit'):
    build.model(config.model, way=3)


@pytest.mark.parametrize('field,value,named', [
    ('sampler.method', 'random', r'config\.model\.sampler\.method=.random.'),
    ('alignment.order', 'sideways',
     r'config\.model\.alignment\.order=.sideways.'),
    ('normalisation', 'zscore', r'config\.model\.normalisation=.zscore.'),
    ('head', 'matching', r'config\.model\.head=.matching.'),
])
def test_a_bad_value_is_named_when_the_model_is_made(field, value, named):
  config = vim_config.get_config('row=full,base=test')
  section, _, key = field.rpartition('.')
  (config.model[section] if section else config.model)[key] = value
  with pytest.raises(ValueError, match=named):
    build.model(config.model, way=3)


def test_the_built_model_runs_an_episode():
  """The ProtoNet row from the builder against its closed form: with every
  module off, logit = -sum_t (1 - cos(query_t, prototype_t)) (Eq. 22-23),
  here on the backbone's own pooled features."""
  config = vim_config.get_config('row=baseline,base=test')
  model = build.model(config.model, way=2)
  rng = np.random.default_rng(0)
  size, t = config.data.frame_size, config.model.frames
  episode = dict(
      support=rng.integers(0, 255, (2, t, size, size, 3), dtype=np.uint8),
      support_labels=np.array([1, 0], np.int32),
      query=rng.integers(0, 255, (3, t, size, size, 3), dtype=np.uint8))
  variables = model.init(jax.random.key(0), episode, train=False)
  logits = model.apply(variables, episode, train=False)['logits']
  videos = np.concatenate([episode['support'], episode['query']])
  maps = model.apply(variables, normalisation.normalise(videos, jnp.float32),
                     train=False, method='embed')
  features = np.asarray(maps, np.float64).mean((2, 3))  # [V, T, C]
  unit = features / np.linalg.norm(features, axis=-1, keepdims=True)
  prototypes = unit[[1, 0]]  # class 0 is the second support video
  cosine = np.einsum('qtc,ntc->qnt', unit[2:], prototypes)
  expected = -config.model.logit_scale * (1.0 - cosine).sum(-1)
  np.testing.assert_allclose(np.asarray(logits), expected, atol=1e-4)
