"""Every config file loads; --config.x overrides and file.py:args work."""
import pathlib
import subprocess
import sys

import pytest
from ml_collections import config_flags
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / 'configs').glob('*.py')
                 if p.name != '__init__.py')


def _parse(argv):
  flag_values = flags.FlagValues()
  # Override flags are registered from the command line at definition time.
  config_flags.DEFINE_config_file('config', None, 'c', flag_values=flag_values,
                                  lock_config=True, sys_argv=['prog'] + argv)
  flag_values(['prog'] + argv)
  return flag_values.config


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_every_config_loads(path):
  config = _parse([f'--config={path}'])
  for field in ('way', 'shot', 'query', 'dense_frames', 'frame_size'):
    assert field in config.data
  for field in ('lr', 'lr_decay', 'lr_decay_every', 'sigma', 'sigma_decay',
                'mu1', 'mu2', 'num_steps'):
    assert field in config.train
  assert config.model.frames <= config.data.dense_frames
  assert config.eval.test_episodes > 0


def test_overrides_and_arguments():
  config = _parse([f'--config={ROOT}/configs/default.py:shot=5,way=7',
                   '--config.train.lr=0.123', '--config.model.frames=6',
                   '--config.data.tfds_data_dir=/tmp/x'])
  assert (config.data.way, config.data.shot, config.data.query) == (7, 5, 5)
  assert config.train.lr == 0.123
  assert config.model.frames == 6
  assert config.data.tfds_data_dir == '/tmp/x'


def test_typo_names_the_field():
  with pytest.raises(Exception, match='lerning_rate'):
    _parse([f'--config={ROOT}/configs/test.py', '--config.train.lerning_rate=1'])
  with pytest.raises(Exception, match='shots'):
    _parse([f'--config={ROOT}/configs/default.py:shots=5'])


def test_main_rejects_typo_before_training(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(ROOT / 'main.py'), f'--config={ROOT}/configs/test.py',
       f'--workdir={tmp_path}/w', '--config.train.num_stepz=3'],
      capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode != 0
  assert 'num_stepz' in proc.stderr
  assert not (tmp_path / 'w').exists()
