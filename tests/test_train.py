"""End to end through main.py on the procedural data: train, eval, resume."""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import helpers

ROOT = pathlib.Path(__file__).resolve().parents[1]


_main = helpers.run_main


def _episodes_seen(workdir):
  seen = {}
  for line in (pathlib.Path(workdir) / 'train_episodes.tsv').read_text().splitlines():
    step, indices = line.split('\t')
    seen[int(step)] = indices
  return seen


def _params(workdir, step):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  state = ocp.StandardCheckpointer().restore(
      pathlib.Path(workdir, 'checkpoints', str(step), 'default').resolve())
  return state


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('tfds')


@pytest.fixture(scope='module')
def full_run(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('run') / 'full'
  _main(workdir, data_dir, '--config.train.num_steps=4')
  return workdir


def test_run_trains_checkpoints_evaluates_and_writes_summaries(full_run):
  results = json.loads((full_run / 'test_results.json').read_text())
  assert results['num_episodes'] == 8
  assert 0.0 <= results['accuracy'] <= 100.0 and results['ci95'] >= 0.0
  assert results['per_class'] and all(
      v['queries'] > 0 for v in results['per_class'].values())
  assert sorted(int(p.name) for p in (full_run / 'checkpoints').iterdir()
                if p.name.isdigit()) == [2, 4]
  assert list(full_run.glob('events.out.tfevents.*'))
  assert sorted(_episodes_seen(full_run)) == [1, 2, 3, 4]


def test_eval_mode_gives_the_same_test_accuracy(full_run, data_dir):
  before = json.loads((full_run / 'test_results.json').read_text())
  _main(full_run, data_dir, '--mode=eval')
  after = json.loads((full_run / 'test_results.json').read_text())
  assert after['checkpoint'] == before['checkpoint']
  assert after['accuracy'] == before['accuracy']
  assert after['per_class'] == before['per_class']


def test_resume_continues_exactly(full_run, data_dir, tmp_path):
  workdir = tmp_path / 'resumed'
  _main(workdir, data_dir, '--config.train.num_steps=2')
  _main(workdir, data_dir, '--config.train.num_steps=4')
  a, b = _params(workdir, 4), _params(full_run, 4)
  import jax  # pylint: disable=g-import-not-at-top
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert _episodes_seen(workdir) == _episodes_seen(full_run)


def test_resume_after_kill(full_run, data_dir, tmp_path):
  """SIGKILL once step 2 is checkpointed; resume reaches the same step 4."""
  workdir = tmp_path / 'killed'
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=1')
  proc = subprocess.Popen(
      [sys.executable, str(ROOT / 'main.py'), f'--config={ROOT}/configs/test.py',
       f'--workdir={workdir}', f'--config.data.tfds_data_dir={data_dir}',
       '--config.train.num_steps=4'],
      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not (workdir / 'checkpoints' / '2').exists() and time.time() < deadline:
    if proc.poll() is not None:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  _main(workdir, data_dir, '--config.train.num_steps=4')
  import jax  # pylint: disable=g-import-not-at-top
  for x, y in zip(jax.tree.leaves(_params(workdir, 4)),
                  jax.tree.leaves(_params(full_run, 4))):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('args, message', [
    (['--config.data.way=9'], 'config.data.way=9 but procedural/train has only 5 classes'),
    (['--config.data.shot=3', '--config.data.query=2'],
     "has 4 videos, fewer than config.data.shot \\+ config.data.query"),
    (['--config.parallel=tpu'], "config.parallel='tpu'"),
    (['--config.train.inter_grad=backbone'],
     "config.train.inter_grad='backbone' is not one of"),
    (['--config.train.inter_estimator=logits'],
     "config.train.inter_estimator='logits' is not one of"),
    (['--config.train.cls_reduction=max'],
     "config.train.cls_reduction='max' is not one of"),
    (['--config.train.inter_temperature=0'],
     "config.train.inter_temperature=0.0 must be positive"),
])
def test_bad_config_fails_before_training(args, message, data_dir, tmp_path):
  proc = _main(tmp_path / 'w', data_dir, *args, check=False)
  assert proc.returncode != 0
  assert re.search(message, proc.stderr), proc.stderr[-2000:]
  assert not (tmp_path / 'w' / 'checkpoints').exists()


def test_missing_workdir_parent(data_dir, tmp_path):
  proc = _main(tmp_path / 'no' / 'such' / 'w', data_dir, check=False)
  assert proc.returncode != 0
  assert 'its parent folder' in proc.stderr and 'does not exist' in proc.stderr


def test_profile_steps_writes_a_trace(data_dir, tmp_path):
  workdir = tmp_path / 'w'
  _main(workdir, data_dir, '--config.train.num_steps=4',
        '--config.train.profile_steps=2')
  traces = list((workdir / 'profile').rglob('*.xplane.pb'))
  assert len(traces) == 1 and traces[0].stat().st_size > 0
  # Steps 2 and 3 are traced: the trace holds the train step's executions.
  trace = next((workdir / 'profile').rglob('*.trace.json.gz'))
  import gzip  # pylint: disable=g-import-not-at-top
  events = json.loads(gzip.decompress(trace.read_bytes()))['traceEvents']
  names = {e.get('name', '') for e in events}
  assert any('train_step' in n or 'shard_map' in n or 'jit' in n
             for n in names), sorted(names)[:50]


def _start(workdir, data_dir, *args):
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=1')
  return subprocess.Popen(
      [sys.executable, str(ROOT / 'main.py'), f'--config={ROOT}/configs/test.py',
       f'--workdir={workdir}', f'--config.data.tfds_data_dir={data_dir}',
       *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)


def test_sigterm_saves_and_resumes_exactly(full_run, data_dir, tmp_path):
  """SIGTERM mid-run: the checkpoint of the step in progress is saved, the
  run exits with train.PREEMPTED_EXIT_STATUS (143), and the same command
  continues to the uninterrupted run's parameters and episodes."""
  workdir = tmp_path / 'preempted'
  # Checkpoints every 2 steps: the one SIGTERM writes is an extra one.
  proc = _start(workdir, data_dir, '--config.train.num_steps=4')
  deadline = time.time() + 300
  while not (workdir / 'train_episodes.tsv').exists() or not (
      workdir / 'train_episodes.tsv').read_text().strip():
    assert proc.poll() is None and time.time() < deadline, 'never trained'
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 143, stderr[-3000:]
  assert 'SIGTERM: stopped after step' in stderr
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()
                 if p.name.isdigit())
  stopped = max(steps)
  assert stopped < 4 and stopped == max(_episodes_seen(workdir))
  assert not (workdir / 'test_results.json').exists()
  _main(workdir, data_dir, '--config.train.num_steps=4')
  import jax  # pylint: disable=g-import-not-at-top
  for x, y in zip(jax.tree.leaves(_params(workdir, 4)),
                  jax.tree.leaves(_params(full_run, 4))):
    np.testing.assert_array_equal(x, y)
  assert _episodes_seen(workdir) == _episodes_seen(full_run)


def test_corrupt_latest_checkpoint_resumes_from_the_previous(
    full_run, data_dir, tmp_path):
  """A truncated newest checkpoint is named, moved aside, and the run
  resumes from the previous kept one to the same final parameters."""
  import shutil  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'corrupt'
  _main(workdir, data_dir, '--config.train.num_steps=4',
        '--config.train.checkpoint_every=1', '--config.train.keep_checkpoints=3')
  shutil.rmtree(workdir / 'best')  # the next run must not reuse its choice
  (workdir / 'test_results.json').unlink()
  # Truncate every file of step 4's parameters.
  for path in (workdir / 'checkpoints' / '4').rglob('*'):
    if path.is_file():
      path.write_bytes(path.read_bytes()[:10])
  proc = _main(workdir, data_dir, '--config.train.num_steps=4')
  assert re.search(r'Checkpoint \S+/checkpoints/4 cannot be read', proc.stderr)
  assert (workdir / 'checkpoints' / 'corrupt-4').is_dir()
  assert re.search(r'Resuming from \S+ step 3\b', proc.stderr)
  import jax  # pylint: disable=g-import-not-at-top
  for x, y in zip(jax.tree.leaves(_params(workdir, 4)),
                  jax.tree.leaves(_params(full_run, 4))):
    np.testing.assert_array_equal(x, y)
  # Nothing readable at all: an error that names the folder.
  for step in (2, 3, 4):
    for path in (workdir / 'checkpoints' / str(step)).rglob('*'):
      if path.is_file():
        path.write_bytes(b'')
  proc = _main(workdir, data_dir, '--config.train.num_steps=6', check=False)
  assert proc.returncode != 0
  assert 'No readable checkpoint in' in proc.stderr


def test_sigterm_flag_puts_the_previous_handler_back():
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  received = []
  handler = lambda *_: received.append(1)  # pylint: disable=unnecessary-lambda-assignment
  previous = signal.signal(signal.SIGTERM, handler)
  try:
    with pytest.raises(KeyError):
      with train._sigterm_flag() as flag:
        assert signal.getsignal(signal.SIGTERM) is not handler
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.wait(10) and train._sigterm_processes(flag) == [0]
        raise KeyError('training failed')
    assert signal.getsignal(signal.SIGTERM) is handler and not received
    with train._sigterm_flag() as flag:
      assert train._sigterm_processes(flag) == []
    assert signal.getsignal(signal.SIGTERM) is handler
  finally:
    signal.signal(signal.SIGTERM, previous)
