"""Two processes of 2 CPU devices run one job as 1 process of 4 devices does.

main.py --distributed with explicit coordinator flags, both processes on
127.0.0.1: the coordinator binds 127.0.0.1 (JAX_COORDINATOR_BIND_ADDRESS;
JAX's default is every interface) and the gloo collectives connect through
the address of the machine's host name, which must be a loopback one (JAX
0.10 offers no setting for it). Four runs of configs/test.py, two of them
with two processes:

  A  2 x 2 devices, steps 1-3, fresh data folder (process 0 prepares it);
  B  1 x 4 devices, steps 1-3 (the reference);
  A' a copy of B's workdir continued to step 4 by 2 x 2 devices;
  B' a copy of A's workdir continued to step 4 by 1 x 4 devices;
  C  a copy of A's workdir tested by 1 x 4 devices (--mode=eval);
  D  2 x 2 devices, steps 1-4, SIGTERM to process 1 only, then the same
     command again (compared with A').
A and B, then A', B' and C, run side by side, then D; the later runs reuse
what A and B compiled (a persistent compilation cache). config.parallel is 'shard_map',
the default: 'pmap' would need a run of its own.
"""
import ipaddress
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 400  # seconds for one run of main.py
# One validation and one kept checkpoint, of step 3 (orbax also saves the
# first step of a fresh run).
ARGS = ('--config.train.checkpoint_every=3',
        '--config.train.keep_checkpoints=1', '--config.train.eval_every=3')


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _require_loopback_host_name():
  """Gloo's connections use the host name's address; it must be loopback."""
  address = socket.gethostbyname(socket.gethostname())
  if not ipaddress.ip_address(address).is_loopback:
    pytest.skip(f'the host name {socket.gethostname()!r} is {address}, not a '
                'loopback address: the gloo CPU collectives would listen '
                'there, and JAX 0.10 has no setting to move them.')


class _Job:
  """One run of main.py with configs/test.py, started in the background.

  Args:
    workdir: --workdir; each process's log goes to WORKDIR.processN.log.
    data_dir: the TFDS data folder.
    *args: more flags.
    processes: 1 (4 CPU devices) or 2 (2 CPU devices each, on 127.0.0.1).
  """

  def __init__(self, workdir, data_dir, *args, processes):
    port = _free_port()
    devices = 4 // processes
    env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2',
               XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
               JAX_COORDINATOR_BIND_ADDRESS=f'127.0.0.1:{port}',
               JAX_COMPILATION_CACHE_DIR=str(
                   pathlib.Path(data_dir).parent / 'jax_cache'),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
    self.logs = [pathlib.Path(f'{workdir}.process{i}.log')
                 for i in range(processes)]
    self.procs = []
    for i, log in enumerate(self.logs):
      distributed = [] if processes == 1 else [
          '--distributed', f'--coordinator_address=127.0.0.1:{port}',
          f'--num_processes={processes}', f'--process_id={i}']
      with open(log, 'w') as f:
        self.procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / 'main.py'),
             f'--config={ROOT}/configs/test.py', f'--workdir={workdir}',
             f'--config.data.tfds_data_dir={data_dir}', *args, *distributed],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=f))


def _wait(*jobs):
  """Waits for every process of `jobs`.

  A process that fails would leave its partner waiting at the next
  collective: then, or at the deadline, every process is stopped.

  Returns:
    Each job's logs (one text per process).
  """
  procs = [p for job in jobs for p in job.procs]
  deadline = time.time() + TIMEOUT
  while (any(p.poll() is None for p in procs) and time.time() < deadline and
         not any(p.poll() for p in procs)):
    time.sleep(0.2)
  for p in procs:
    if p.poll() is None:
      p.kill()
    p.wait()
  failed = [(log, p.returncode) for job in jobs
            for log, p in zip(job.logs, job.procs) if p.returncode]
  if failed:
    raise AssertionError('\n'.join(
        f'{log.name} exited with {code}:\n{log.read_text()[-3000:]}'
        for log, code in failed))
  return [[log.read_text() for log in job.logs] for job in jobs]


def _state(workdir, step):
  """A checkpoint's state as numpy, whatever devices wrote it."""
  path = pathlib.Path(workdir, 'checkpoints', str(step), 'default').resolve()
  state = ocp.Checkpointer(ocp.StandardCheckpointHandler()).restore(
      path, args=ocp.args.StandardRestore(
          fallback_sharding=jax.sharding.SingleDeviceSharding(
              jax.devices()[0])))
  return jax.tree.map(np.asarray, state)


def _checkpoint_steps(workdir):
  folder = pathlib.Path(workdir) / 'checkpoints'
  return sorted(p.name for p in folder.iterdir())


def _assert_states_close(a, b):
  """Parameters and batch statistics to 1e-6, the optimiser state to 1e-5.

  Across processes the gradient all-reduce (gloo) adds the devices' parts in
  another order than within one process (XLA): gradients differ in their
  last float32 bit, which the momentum accumulates (1.5e-6 after 3 steps);
  the parameters take lr times it and agree to 1e-7.
  """
  for key, tol in (('params', 1e-6), ('batch_stats', 1e-6),
                   ('opt_state', 1e-5)):
    paths_a, leaves_a = zip(*jax.tree_util.tree_leaves_with_path(a[key]))
    paths_b, leaves_b = zip(*jax.tree_util.tree_leaves_with_path(b[key]))
    assert paths_a == paths_b
    for path, x, y in zip(paths_a, leaves_a, leaves_b):
      assert x.shape == y.shape, key + jax.tree_util.keystr(path)
      np.testing.assert_allclose(x, y, rtol=tol, atol=tol,
                                 err_msg=key + jax.tree_util.keystr(path))
  assert int(a['step']) == int(b['step'])


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Workdirs and logs of A (2 processes) and B (1 process), 3 steps each.

  They run side by side, each with its own data folder (the procedural data
  is the same in both) so that each prepares it: in A process 0 prepares it
  while process 1 waits.
  """
  _require_loopback_host_name()
  root = tmp_path_factory.mktemp('multiprocess')
  two, one = root / 'two', root / 'one'
  logs = _wait(
      _Job(two, root / 'data_two', '--config.train.num_steps=3', *ARGS,
           processes=2),
      _Job(one, root / 'data_one', '--config.train.num_steps=3', *ARGS,
           processes=1))
  return dict(two=two, one=one, data_dir=root / 'data_one', logs=logs[0])


def test_processes_see_one_job(runs):
  for i, log in enumerate(runs['logs']):
    assert f'JAX process {i}/2, devices: ' in log
    assert 'Training steps 0..3 on 4 device(s)' in log


def test_three_steps_equal_one_process_of_four_devices(runs):
  # One checkpoint of global arrays, written by both processes together.
  assert _checkpoint_steps(runs['two']) == _checkpoint_steps(runs['one']) == [
      '3']
  _assert_states_close(_state(runs['two'], 3), _state(runs['one'], 3))
  # The same episodes, each step's logged whole by process 0.
  assert (runs['two'] / 'train_episodes.tsv').read_text() == (
      runs['one'] / 'train_episodes.tsv').read_text() == (
          '1\t0,1,2,3\n2\t4,5,6,7\n3\t8,9,10,11\n')


def test_test_results_gather_both_processes(runs):
  two, one = (json.loads((runs[k] / 'test_results.json').read_text())
              for k in ('two', 'one'))
  # 8 episodes: each process evaluated 4 of them (2 per step of 4).
  assert two['num_episodes'] == 8 and len(two['episode_accuracy']) == 8
  for key in ('checkpoint', 'accuracy', 'ci95', 'per_class',
              'episode_accuracy'):
    assert two[key] == one[key], key


@pytest.fixture(scope='module')
def continued(runs, tmp_path_factory):
  """A', B' and C: copies of A's and B's workdirs, continued elsewhere.

  Returns:
    {'two': A' (B's copy, 2 processes), 'one': B' (A's copy, 1 process),
    'eval': C (A's copy, --mode=eval), 'logs': the logs of A', B', C}.
  """
  root = tmp_path_factory.mktemp('continued')
  dirs = dict(two=root / 'two', one=root / 'one', eval=root / 'eval')
  shutil.copytree(runs['one'], dirs['two'])
  shutil.copytree(runs['two'], dirs['one'])
  shutil.copytree(runs['two'], dirs['eval'])
  (dirs['eval'] / 'test_results.json').unlink()
  logs = _wait(
      _Job(dirs['two'], runs['data_dir'], '--config.train.num_steps=4', *ARGS,
           processes=2),
      _Job(dirs['one'], runs['data_dir'], '--config.train.num_steps=4', *ARGS,
           processes=1),
      _Job(dirs['eval'], runs['data_dir'], '--mode=eval',
           '--config.eval.checkpoint=latest', processes=1))
  return dict(dirs, logs=logs)


def test_checkpoints_resume_across_process_layouts(continued):
  """B's checkpoint continues under 2 processes, A's under 1; step 4 agrees."""
  two, one = continued['two'], continued['one']
  for log in continued['logs'][0] + continued['logs'][1]:
    assert 'checkpoints step 3' in log and 'Resuming from' in log
  _assert_states_close(_state(two, 4), _state(one, 4))
  assert (two / 'train_episodes.tsv').read_text() == (
      one / 'train_episodes.tsv').read_text()
  assert (two / 'train_episodes.tsv').read_text().endswith(
      '4\t12,13,14,15\n')


def test_eval_mode_reads_a_two_process_checkpoint(runs, continued):
  """--mode=eval on 1 process tests A's checkpoint as A and B did."""
  results = json.loads((continued['eval'] / 'test_results.json').read_text())
  reference = json.loads((runs['one'] / 'test_results.json').read_text())
  assert results['checkpoint'] == 'checkpoints/3'
  for key in ('accuracy', 'ci95', 'per_class', 'episode_accuracy'):
    assert results[key] == reference[key], key


def test_sigterm_to_one_process_stops_both_at_the_same_step(
    runs, continued, tmp_path_factory):
  """SIGTERM to process 1 alone, once it has logged a step: both processes
  stop after the same step, save its checkpoint together and exit with 143
  (trainer.PREEMPTED_EXIT_STATUS); the same command then finishes with the
  parameters of A'."""
  workdir = tmp_path_factory.mktemp('sigterm') / 'two'
  args = (workdir, runs['data_dir'], '--config.train.num_steps=4', *ARGS)
  job = _Job(*args, processes=2)
  deadline = time.time() + TIMEOUT
  while '] [1] train/' not in job.logs[1].read_text():
    if time.time() > deadline or any(p.poll() is not None for p in job.procs):
      for p in job.procs:
        p.kill()
      raise AssertionError(job.logs[1].read_text()[-3000:])
    time.sleep(0.05)
  job.procs[1].send_signal(signal.SIGTERM)
  try:
    codes = [p.wait(timeout=120) for p in job.procs]
  finally:
    for p in job.procs:
      if p.poll() is None:
        p.kill()
  logs = [log.read_text() for log in job.logs]
  assert codes == [143, 143], '\n'.join(log[-3000:] for log in logs)
  stopped = {int(re.search(
      r'SIGTERM: stopped after step (\d+) \(SIGTERM reached process 1 of 2; '
      r'every process stopped there\)', log).group(1)) for log in logs}
  # One step for both, after step 1 and at most at the last one; its
  # checkpoint is the only one kept (keep_checkpoints=1).
  (step,) = stopped
  assert 1 < step <= 4
  assert _checkpoint_steps(workdir) == [str(step)]
  episodes = (workdir / 'train_episodes.tsv').read_text().splitlines()
  assert [int(line.split('\t')[0]) for line in episodes] == list(
      range(1, step + 1))
  assert not (workdir / 'test_results.json').exists()
  (logs,) = _wait(_Job(*args, processes=2))
  for log in logs:
    assert f'checkpoints step {step}' in log and 'Resuming from' in log
  _assert_states_close(_state(workdir, 4), _state(continued['two'], 4))
  assert (workdir / 'train_episodes.tsv').read_text() == (
      continued['two'] / 'train_episodes.tsv').read_text()


@pytest.mark.parametrize('args, message', [
    (['--num_processes=2'], '--coordinator_address/--num_processes/'
     '--process_id go with --distributed'),
    (['--distributed', '--coordinator_address=127.0.0.1:1', '--num_processes=2',
      '--process_id=2'], '--process_id=2 must be in 0..1'),
])
def test_coordinator_flags_are_checked(args, message, tmp_path):
  """Refused before anything starts (no coordinator is contacted)."""
  proc = subprocess.run(
      [sys.executable, str(ROOT / 'main.py'),
       f'--config={ROOT}/configs/test.py', f'--workdir={tmp_path / "w"}',
       *args], cwd=ROOT, capture_output=True,
      text=True, timeout=120, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
