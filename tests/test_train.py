"""End to end through main.py on the procedural data: train, eval, resume,
SIGTERM and unreadable checkpoints; in process, the reading of damaged
checkpoints (one tiny workdir per fault) and the SIGTERM handler."""
import json
import os
import pathlib
import re
import shutil
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


def _truncate(folder, size=10):
  """Cuts every file under `folder` to its first `size` bytes."""
  for path in pathlib.Path(folder).rglob('*'):
    if path.is_file():
      path.write_bytes(path.read_bytes()[:size])


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
    (['--config.train.scan_distill_frames=dense'],
     "config.train.scan_distill_frames='dense' is not one of"),
    (['--config.train.inter_temperature=0'],
     "config.train.inter_temperature=0.0 must be positive"),
    (['--config.train.mi_weight_scale=-1'],
     "config.train.mi_weight_scale=-1.0 must not be negative"),
    (['--config.model.dtype=float16'],
     "config.model.dtype='float16' is not one of"),
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
  run exits with trainer.PREEMPTED_EXIT_STATUS (143), and the same command
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
  workdir = tmp_path / 'corrupt'
  _main(workdir, data_dir, '--config.train.num_steps=4',
        '--config.train.checkpoint_every=1', '--config.train.keep_checkpoints=3')
  shutil.rmtree(workdir / 'best')  # the next run must not reuse its choice
  (workdir / 'test_results.json').unlink()
  _truncate(workdir / 'checkpoints' / '4')
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
    _truncate(workdir / 'checkpoints' / str(step), 0)
  proc = _main(workdir, data_dir, '--config.train.num_steps=6', check=False)
  assert proc.returncode != 0
  assert 'No readable checkpoint in' in proc.stderr


def test_corrupt_best_is_named_and_eval_tests_its_training_checkpoint(
    full_run, data_dir, tmp_path):
  """--mode=eval with best/STEP truncated tests checkpoints/STEP (the same
  parameters), says so, and records it; a corrupt numbered checkpoint is an
  error naming its folder."""
  workdir = tmp_path / 'corrupt_best'
  shutil.copytree(full_run, workdir)
  before = json.loads((workdir / 'test_results.json').read_text())
  (workdir / 'test_results.json').unlink()
  (step,) = [p.name for p in (workdir / 'best').iterdir() if p.name.isdigit()]
  assert before['checkpoint'] == f'best/{step}'
  _truncate(workdir / 'best' / step / 'variables')
  proc = _main(workdir, data_dir, '--mode=eval')
  folder = workdir.resolve() / 'best' / step
  assert re.search(rf'Checkpoint {re.escape(str(folder))} cannot be read '
                   r'\(\w+', proc.stderr), proc.stderr[-3000:]
  assert f'testing {workdir.resolve()}/checkpoints/{step} instead, since ' \
         f'{folder} cannot be read' in proc.stderr
  after = json.loads((workdir / 'test_results.json').read_text())
  assert after['checkpoint'] == f'checkpoints/{step}'
  for key in ('accuracy', 'ci95', 'per_class', 'episode_accuracy'):
    assert after[key] == before[key], key
  # Asked for by number, an unreadable checkpoint is not replaced.
  (workdir / 'test_results.json').unlink()
  _truncate(workdir / 'checkpoints' / step)
  proc = _main(workdir, data_dir, '--mode=eval',
               f'--config.eval.checkpoint={step}', check=False)
  assert proc.returncode != 0
  assert re.search(
      rf"UnreadableCheckpointError: config.eval.checkpoint='{step}': "
      rf'checkpoint {re.escape(str(workdir.resolve()))}/checkpoints/{step} '
      r'cannot be read \(\w+', proc.stderr), proc.stderr[-3000:]
  assert not (workdir / 'test_results.json').exists()


def _tiny_variables(step):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return {'params': {'w': jnp.full((3, 4), step, jnp.float32)},
          'batch_stats': {'mean': jnp.full((4,), -step, jnp.float32)}}


def _tiny_state(step):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return dict(_tiny_variables(step), step=jnp.asarray(step, jnp.int32))


def _tiny_workdir(workdir, best_steps, latest_steps):
  """A workdir whose checkpoints hold `_tiny_variables(step)`, as
  train_and_evaluate writes them (best/ here keeps every step given)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  latest = ocp.CheckpointManager(workdir / 'checkpoints')
  best = ocp.CheckpointManager(workdir / 'best')
  for step in latest_steps:
    latest.save(step, args=ocp.args.StandardSave(_tiny_state(step)))
  for step in best_steps:
    best.save(step, args=ocp.args.Composite(
        variables=ocp.args.StandardSave(_tiny_variables(step)),
        meta=ocp.args.JsonSave(dict(step=step, val={'accuracy': 50.0}))))
  latest.wait_until_finished()
  best.wait_until_finished()
  return workdir


def _files(folder, *names):
  return [p for p in pathlib.Path(folder).rglob('*')
          if p.is_file() and (not names or p.name in names or
                              p.parent.name in names)]


def _flip(path):
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
  path.write_bytes(bytes(data))


# Damage done to one checkpoint item (best/STEP/variables or
# checkpoints/STEP/default), as a full disk, an interrupted copy or a
# partial clean-up leaves it.
FAULTS = {
    'every file cut to 10 bytes': _truncate,
    'every file emptied': lambda item: _truncate(item, 0),
    'data files cut in half': lambda item: [
        p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])
        for p in _files(item, 'd')],
    'bytes flipped in the data files': lambda item: [
        _flip(p) for p in _files(item, 'd')],
    'data folders deleted': lambda item: [
        shutil.rmtree(p) for p in sorted(pathlib.Path(item).rglob('d'))[::-1]],
    'OCDBT manifests deleted': lambda item: [
        p.unlink() for p in _files(item, 'manifest.ocdbt')],
    'item folder deleted': shutil.rmtree,
}


@pytest.mark.parametrize('fault', FAULTS)
def test_each_fault_of_best_falls_back_to_the_same_step(fault, tmp_path,
                                                        caplog):
  """best/4 damaged: checkpoints/4's variables (the same parameters) are
  tested, and the error log names best/4 and what replaces it."""
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top
  workdir = _tiny_workdir(tmp_path, best_steps=[4], latest_steps=[2, 4])
  FAULTS[fault](workdir / 'best' / '4' / 'variables')
  variables, name = trainer.restore_variables(
      str(workdir), 'best', trainer.abstract_of(_tiny_variables(4)))
  assert name == 'checkpoints/4'
  np.testing.assert_array_equal(variables['params']['w'], 4)
  assert f'Checkpoint {workdir}/best/4 cannot be read (' in caplog.text
  assert (f'testing {workdir}/checkpoints/4 instead, since {workdir}/best/4 '
          'cannot be read') in caplog.text
  # The same damage to a numbered checkpoint is an error naming it; 'best'
  # then goes on to the newest readable training checkpoint.
  FAULTS[fault](workdir / 'checkpoints' / '4' / 'default')
  with pytest.raises(trainer.UnreadableCheckpointError,
                     match=rf"checkpoint='4': checkpoint {workdir}/checkpoints"
                     r'/4 cannot be read \(\w+'):
    trainer.restore_variables(str(workdir), '4', None)
  variables, name = trainer.restore_variables(
      str(workdir), 'best', trainer.abstract_of(_tiny_variables(4)))
  assert name == 'checkpoints/2'
  np.testing.assert_array_equal(variables['params']['w'], 2)


@pytest.mark.parametrize('fault', FAULTS)
def test_each_fault_of_the_newest_checkpoint_resumes_the_previous(
    fault, tmp_path, caplog):
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top
  workdir = _tiny_workdir(tmp_path, best_steps=[], latest_steps=[2, 4])
  FAULTS[fault](workdir / 'checkpoints' / '4' / 'default')
  latest, _ = trainer._managers(str(workdir))
  state = trainer._resume(latest, _tiny_state(0))
  assert int(state['step']) == 2
  np.testing.assert_array_equal(state['params']['w'], 2)
  assert f'Checkpoint {workdir}/checkpoints/4 cannot be read (' in caplog.text
  assert (workdir / 'checkpoints' / 'corrupt-4').is_dir()
  assert latest.all_steps() == [2]


def test_best_falls_back_to_an_older_best_then_the_newest_checkpoint(
    tmp_path, caplog):
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top
  workdir = _tiny_workdir(tmp_path, best_steps=[2, 4], latest_steps=[3, 4])
  abstract = trainer.abstract_of(_tiny_variables(0))
  _truncate(workdir / 'best' / '4')
  _truncate(workdir / 'checkpoints' / '4')
  variables, name = trainer.restore_variables(str(workdir), 'best', abstract)
  assert name == 'best/2'
  np.testing.assert_array_equal(variables['params']['w'], 2)
  assert (f'testing {workdir}/best/2 instead, since {workdir}/best/4 and '
          f'{workdir}/checkpoints/4 cannot be read') in caplog.text
  _truncate(workdir / 'best' / '2')
  variables, name = trainer.restore_variables(str(workdir), 'best', abstract)
  assert name == 'checkpoints/3'
  np.testing.assert_array_equal(variables['batch_stats']['mean'], -3)
  # 'latest' names one state: not replaced by checkpoints/3.
  with pytest.raises(trainer.UnreadableCheckpointError,
                     match=f'checkpoint {workdir}/checkpoints/4 cannot'):
    trainer.restore_variables(str(workdir), 'latest', abstract)
  _truncate(workdir / 'checkpoints' / '3')
  with pytest.raises(trainer.UnreadableCheckpointError) as error:
    trainer.restore_variables(str(workdir), 'best', abstract)
  for folder in ('best/4', 'checkpoints/4', 'best/2', 'checkpoints/3'):
    assert f'{workdir}/{folder} (' in str(error.value)


@pytest.mark.parametrize('item', ['meta', 'variables'])
def test_best_value_sets_an_unreadable_best_aside(item, tmp_path, caplog):
  """A resumed run reads best/'s accuracy: damaged, it is set aside and the
  next validation saves a new best (no crash, no stale record)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top
  workdir = _tiny_workdir(tmp_path, best_steps=[4], latest_steps=[4])
  abstract = trainer.abstract_of(_tiny_variables(0))
  _, best = trainer._managers(str(workdir))
  assert trainer._best_value(best, abstract) == 50.0
  _truncate(workdir / 'best' / '4' / item)
  assert trainer._best_value(best, abstract) is None
  assert f'Checkpoint {workdir}/best/4 cannot be read (' in caplog.text
  assert (workdir / 'best' / 'corrupt-4').is_dir()
  assert best.all_steps() == []
  best.save(4, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(_tiny_variables(4)),
      meta=ocp.args.JsonSave(dict(step=4, val={'accuracy': 60.0}))))
  best.wait_until_finished()
  assert trainer._best_value(best, abstract) == 60.0


def test_sigterm_flag_puts_the_previous_handler_back():
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top
  received = []
  handler = lambda *_: received.append(1)  # pylint: disable=unnecessary-lambda-assignment
  previous = signal.signal(signal.SIGTERM, handler)
  try:
    with pytest.raises(KeyError):
      with trainer._sigterm_flag() as flag:
        assert signal.getsignal(signal.SIGTERM) is not handler
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.wait(10) and trainer._sigterm_processes(flag) == [0]
        raise KeyError('training failed')
    assert signal.getsignal(signal.SIGTERM) is handler and not received
    with trainer._sigterm_flag() as flag:
      assert trainer._sigterm_processes(flag) == []
    assert signal.getsignal(signal.SIGTERM) is handler
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_a_non_finite_step_is_named_and_never_checkpointed(
    data_dir, tmp_path, monkeypatch):
  """The host syncs only at log, save, validation and last steps; a NaN in
  between is still named by its own step, before the next save."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top

  real = train.steps.train_step

  def poisoned(state, batch, **kwargs):
    new_state, metrics = real(state, batch, **kwargs)
    # Step 3 (the state before it has taken 2 steps) reports a NaN loss.
    loss = jnp.where(state.step == 2, jnp.nan, metrics['loss'])
    return new_state, dict(metrics, loss=loss)

  monkeypatch.setattr(train.steps, 'train_step', poisoned)
  config = test_config.get_config()
  config.data.tfds_data_dir = str(data_dir)
  config.train.num_steps = 6
  config.train.log_every = 4  # sync steps: 2 (save, validation), 4, 6
  workdir = tmp_path / 'nan'
  with pytest.raises(FloatingPointError) as error:
    train.train_and_evaluate(config, str(workdir))
  # Step 3 takes the third block of 4 episodes of the stream: 8..11.
  assert config.train.episodes_per_step == 4
  assert "non-finite ['loss'] at step 3 (episodes [8, 9, 10, 11])" in str(
      error.value)
  # Step 4 was taken (its sync found step 3's NaN) but not saved, nor 3.
  saved = sorted(os.listdir(workdir / 'checkpoints'))
  assert '2' in saved and not {'3', '4'} & set(saved), saved


def test_at_most_two_steps_in_flight(data_dir, tmp_path, monkeypatch):
  """Between sync steps the host waits for the previous step after
  dispatching the next one, so when it checks for a SIGTERM only the step
  just dispatched may be unfinished, not every step queued up to the next
  sync step. Each step here carries extra matrix products, so an unbounded
  host runs ahead by several steps (up to 6 measured)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top

  real_step = train.steps.train_step

  def slow(state, batch, **kwargs):
    new_state, metrics = real_step(state, batch, **kwargs)
    x = jnp.full((400, 400), 1e-3) + metrics['loss'] * 1e-9
    for _ in range(12):
      x = jnp.tanh(x @ x)
    return new_state, dict(metrics, loss=metrics['loss'] + 0 * x.sum())

  dispatched = []
  real_dispatch = train.Experiment.train_step

  def dispatch(self, state, batch):
    out = real_dispatch(self, state, batch)
    dispatched.append(out[1])
    return out

  behind = []  # after each dispatch: the steps not finished yet
  real_check = trainer._sigterm_processes

  def check(flag):
    behind.append(sum(not all(leaf.is_ready() for leaf in jax.tree.leaves(m))
                      for m in dispatched))
    return real_check(flag)

  monkeypatch.setattr(train.steps, 'train_step', slow)
  monkeypatch.setattr(train.Experiment, 'train_step', dispatch)
  monkeypatch.setattr(trainer, '_sigterm_processes', check)
  config = test_config.get_config()
  config.data.tfds_data_dir = str(data_dir)
  config.train.num_steps = 8
  config.train.log_every = 8
  config.train.eval_every = 8
  config.train.checkpoint_every = 8
  train.train_and_evaluate(config, str(tmp_path / 'w'))
  assert len(behind) >= 8, behind
  assert max(behind[:8]) <= 1, behind
