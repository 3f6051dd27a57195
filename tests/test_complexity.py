"""benchmarks/complexity.py's --config.FIELD=VALUE overrides: a config
variant's cost is measured on the variant (checked on the parameter table,
which runs nothing)."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from tests.helpers import ROOT
from vim_jax.models import shufflenet

WIDE = (16, 32, 64, 128, 1024)  # conv5 of the synthetic scan net 256 -> 1024


def _complexity(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
      [sys.executable, 'benchmarks/complexity.py', '--rows=baseline,full',
       '--param_bases=synthetic', '--flops_bases=', '--notime', *args],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def _scan_cell(stdout):
  """The scan net's parameters (M) in the table's full-VIM row."""
  row = next(l for l in stdout.splitlines() if '| VIM (full) |' in l)
  sampler = row.split(' | ')[4]  # 'S M (SCAN M)'
  return float(sampler.split('(')[1].split()[0])


def test_overrides_change_every_rows_config():
  wide = _complexity(
      f'--config.model.sampler.scan_kwargs.stages_out_channels={WIDE}')
  assert wide.returncode == 0, wide.stderr[-3000:]
  assert 'Set on every row: model.sampler.scan_kwargs' in wide.stdout
  # The variant's scan net, counted independently.
  net = shufflenet.ShuffleNetV2(stages_repeats=(1, 2, 1),
                                stages_out_channels=WIDE)
  params = jax.eval_shape(lambda: net.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))['params']
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  # 0.16 M, against the synthetic scan net's 0.06 M without the override.
  assert _scan_cell(wide.stdout) == round(count / 1e6, 2) == 0.16


def test_overrides_name_a_bad_field():
  bad = _complexity('--config.model.sampler.scan_sise=48')
  assert bad.returncode != 0
  assert 'scan_sise' in bad.stderr
  mistyped = _complexity('--config.model.sampler.scan_size=large')
  assert mistyped.returncode != 0
  assert 'scan_size' in mistyped.stderr
