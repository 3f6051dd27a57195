"""Full VIM: configs/vim.py's rows, a parallel VIM step, the ablation runner.

Cheap by construction: configs/test.py's tiny backbone and scan net, random
uint8 episodes (tests/test_parallel.py's), two training steps.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import test as test_config
from configs import vim as vim_config
from tests.test_losses import maps_config
from tests.test_losses import random_variables
from tests.test_parallel import _batches
from vim_jax import ablate
from vim_jax import parallel
from vim_jax import steps
from vim_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _flat(config):
  out = {}
  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f'{prefix}{key}.')
      else:
        out[f'{prefix}{key}'] = value
  walk(config.to_dict(), '')
  return out


def _train(config, devices, num_steps, init=None):
  """(host state, per-step metrics, host init) after `num_steps` steps.

  On tests/test_parallel.py's random episodes, from `init` or, if None, the
  experiment's own initial state.
  """
  runner = parallel.Runner('shard_map', devices)
  experiment = train.Experiment(config, runner)
  if init is None:
    init = jax.tree.map(np.asarray, experiment.init_state())
  state = runner.put_state(init)
  metrics = []
  for batch in _batches(config, num_steps):
    state, step_metrics = experiment.train_step(state, batch)
    metrics.append(runner.get_replicated(step_metrics))
  return jax.tree.map(np.asarray, runner.get_state(state)), metrics, init


def test_every_row_is_documented_and_loads():
  for row in vim_config.ROWS:
    assert re.search(rf'\b{re.escape(row)}\b', vim_config.__doc__), row
    vim_config.get_config(f'row={row},base=test')
  assert set(vim_config.TABLE_4) <= set(vim_config.ROWS)
  with pytest.raises(ValueError, match='row='):
    vim_config.get_config('row=nope')
  config = vim_config.get_config('row=full,shot=5')
  assert (config.data.shot, config.model.backbone) == (5, 'resnet18')


def test_rows_switch_what_they_say():
  describe = lambda row: ablate.describe(
      vim_config.get_config(f'row={row},base=test'))
  assert describe('baseline') == 'ProtoNet (all off)'
  assert describe('full') == 'TS+SA+Ada, TT+TR+SC, L_intra x0.5, L_inter x1'
  assert describe('sampler') == 'TS+SA+Ada'
  assert describe('alignment_inter') == 'TT+TR+SC, L_inter x1'
  config = vim_config.get_config('row=alignment_inter,base=test')
  config.train.inter_kl_weight = -1.0
  assert ablate.describe(config) == 'TT+TR+SC, L_inter x1 (KL x-1)'
  assert describe('ts_sa') == 'TS+SA, L_intra x1'
  config = vim_config.get_config('row=ts_sa,base=test')
  config.train.scan_distill_weight = 10.0
  assert ablate.describe(config) == ('TS+SA, L_intra x1, '
                                     'scan distill x10 (selected)')
  config.train.scan_distill_frames = 'amplified'
  assert ablate.describe(config).endswith('scan distill x10 (amplified)')
  assert describe('sc_first').startswith('TS+SA+Ada, TT+TR+SC (SC first)')
  assert describe('mgsampler') == 'MGSampler'
  assert describe('trx') == 'TRX metric'
  assert describe('hyrsm_vim') == ('TS+SA+Ada, TT+TR+SC, L_intra x0.5, '
                                   'L_inter x1, HyRSM metric')
  assert describe('full_test_no_sampler').endswith('off at test: TS+SA+Ada')
  assert describe('full_test_no_alignment').endswith('off at test: TT+TR+SC')
  # Test-time rows train exactly like `full`; other rows do not.
  def sig(row):
    config = vim_config.get_config(f'row={row},base=test')
    return ablate.training_signature(
        json.loads(config.to_json_best_effort()))
  assert sig('full_test_no_sampler') == sig('full_test_no_alignment') == sig(
      'full')
  assert len({sig(r) for r in ('full', 'sc_first', 'both', 'mu_1_1',
                                'otam_vim')}) == 5
  # Table 3's rows: each head alone, and full VIM with it.
  for head in ('otam', 'trx', 'hyrsm'):
    alone, vim = (vim_config.get_config(f'row={r},base=test')
                  for r in (head, f'{head}_vim'))
    assert alone.model.head == vim.model.head == head
    full = vim_config.get_config('row=full,base=test')
    full.model.head = head
    assert vim == full


def test_config_maker_applies_arguments_and_overrides():
  make, table_4 = ablate.config_maker(
      f'{ROOT}/configs/vim.py:base=test,shot=2', shot=3,
      overrides={'train.lr': 0.5, 'data.tfds_data_dir': '/tmp/x'})
  config = make('sampler')
  assert config.data.shot == 3 and config.train.lr == 0.5
  assert config.data.tfds_data_dir == '/tmp/x'
  assert config.model.sampler.enabled and config.model.backbone == 'resnet_tiny'
  assert table_4 == list(vim_config.TABLE_4)
  with pytest.raises(ValueError, match='nope'):
    make('nope')


def test_baseline_row_is_exactly_the_foundation_protonet():
  base = test_config.get_config()
  row = vim_config.get_config('row=baseline,base=test')
  # Only the weights of the (absent) MI terms differ.
  a, b = _flat(base), _flat(row)
  assert {k for k in a if a[k] != b[k]} == {'train.mu1', 'train.mu2'}
  devices = jax.devices()[:1]
  (state_a, metrics_a, init_a), (state_b, metrics_b, init_b) = (
      _train(c, devices, num_steps=2) for c in (base, row))
  assert set(state_b.params) == {'backbone'}  # no sampler, no alignment
  for x, y in zip(jax.tree.leaves((init_a, state_a)),
                  jax.tree.leaves((init_b, state_b))):
    np.testing.assert_array_equal(x, y)
  assert max(float(np.abs(x - y).max()) for x, y in zip(
      jax.tree.leaves(state_b.params), jax.tree.leaves(init_b.params))) > 1e-4
  assert [m['loss'] for m in metrics_a] == [m['loss'] for m in metrics_b]
  assert 'intra_loss' not in metrics_b[0] and 'inter_loss' not in metrics_b[0]


def _random_state(experiment):
  """A TrainState drawn with numpy on init's shapes (no compiled init)."""
  shapes = jax.eval_shape(experiment.init_state)
  return steps.TrainState(
      step=np.zeros((), np.int32), apply_fn=None, tx=shapes.tx,
      params=random_variables(shapes.params),
      batch_stats=random_variables(shapes.batch_stats, seed=1),
      opt_state=jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                             shapes.opt_state),
      rng=np.asarray(jax.random.PRNGKey(0)))


def test_full_vim_step_on_four_devices_equals_one():
  config = vim_config.get_config('row=full,base=test')
  config.train.lr = 0.01  # as tests/test_parallel.py: keeps the runs close
  init = _random_state(train.Experiment(
      config, parallel.Runner('shard_map', jax.devices()[:1])))
  state_4, metrics_4, _ = _train(config, jax.devices(), 2, init)
  state_1, metrics_1, _ = _train(config, jax.devices()[:1], 2, init)
  for key in ('loss', 'cls_loss', 'intra_loss', 'inter_loss'):
    values = [m[key] for m in metrics_1]
    assert np.all(np.isfinite(values)), key
    # Same maths, different reduction order and batching: float32 rounding.
    np.testing.assert_allclose(values, [m[key] for m in metrics_4], rtol=1e-5,
                               atol=1e-6, err_msg=key)
  assert metrics_1[0]['intra_loss'] > 0
  # Two steps of batch norm and the scan distillation on random pixels
  # amplify rounding, by how much depends on the CPU (the summation order
  # of its kernels): the largest parameter difference measured was 8e-6 on
  # one machine and 1e-3 on another, in the scan net, whose two updates were
  # 0.3 there. So each leaf's difference is bounded relative to its own
  # update (measured: at most 1.3 %); a step that mis-reduces over devices
  # (a sum for a mean, a missing all-reduce) is off by the order of the
  # update itself. The running statistics move little: absolute bound.
  for path, x in jax.tree_util.tree_flatten_with_path(state_1.params)[0]:
    y = _get(state_4.params, tuple(k.key for k in path))
    start = _get(init.params, tuple(k.key for k in path))
    update = np.abs(x - start).max()
    assert np.abs(x - y).max() <= 0.05 * update + 1e-6, (
        jax.tree_util.keystr(path), np.abs(x - y).max(), update)
  for x, y in zip(jax.tree.leaves(state_1.batch_stats),
                  jax.tree.leaves(state_4.batch_stats)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)
  # Every module was trained by the step.
  for path in (('sampler', 'evaluator_w1'), ('sampler', 'generator_t'),
               ('alignment', 'rearrange'), ('alignment', 'offsets'),
               ('backbone',)):
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(),
                         _get(state_1.params, path), _get(init.params, path))
    assert max(jax.tree.leaves(moved)) > 0, path


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _with_test_off(make):
  """make plus 'tt_only_test_off', a test-time isolation row of a cheap
  module: trained as tt_only, TT off at test."""
  def make_config(row):
    if row == 'tt_only_test_off':
      config = make('tt_only')
      config.model.alignment.test_transform = False
      return config
    return make(row)
  return make_config


def test_ablate_runs_resumes_and_tabulates(tmp_path):
  make, _ = ablate.config_maker(
      f'{ROOT}/configs/vim.py:base=test',
      overrides={'train.num_steps': 2, 'data.tfds_data_dir': str(tmp_path)})

  make_config = _with_test_off(make)
  workdir = tmp_path / 'ablation'
  rows = ['tt_only_test_off', 'tt_only']  # trained second, tested first
  table = ablate.run(str(workdir), rows, make_config)

  lines = (workdir / 'ablation.md').read_text().splitlines()
  body = [l for l in lines if l.startswith('| ') and not l.startswith('| row')]
  assert [l.split(' | ')[0][2:] for l in body] == rows
  for line, row in zip(body, table):
    results = json.loads(
        (workdir / row['row'] / 'test_results.json').read_text())
    assert f"{results['accuracy']:.2f} ± {results['ci95']:.2f}" in line
    assert f"| {results['alignment_cost']:.2f} |" in line
    assert results['num_episodes'] == 8
    assert ' | 2 | ' in line  # train steps
    assert row['wall_s'] > 0
  assert '| TT, L_inter x1, off at test: TT |' in body[0]
  # The alignment off at test, two ways: the test-time row's accuracy, and
  # the accuracy tt_only records from its unaligned logits.
  off, on = (json.loads((workdir / r / 'test_results.json').read_text())
             for r in rows)
  assert off['unaligned_accuracy'] == pytest.approx(off['accuracy'])
  assert on['unaligned_accuracy'] == pytest.approx(off['accuracy'])
  assert f"| {on['unaligned_accuracy']:.2f} |" in body[1]
  # TT is on and SC off in both rows: 2 training steps leave every warp far
  # from its bound, and an off module has nothing at its bound.
  assert on['warps_at_bound'] == on['offsets_at_bound'] == 0.0
  assert '| 0 / 0 |' in body[1]
  # The paired difference to the first row, by hand from the episodes.
  first, second = (json.loads((workdir / r / 'test_results.json').read_text())
                   ['episode_accuracy'] for r in rows)
  diff = np.subtract(second, first)
  assert '| +0.00 ± 0.00 |' in body[0]
  assert f'| {diff.mean():+.2f} ± {1.96 * diff.std() / np.sqrt(8):.2f} |' in (
      body[1])
  assert '| TT, L_inter x1 |' in body[1]
  assert (workdir / 'ablation.png').stat().st_size > 1000
  # The test-time row was tested from tt_only's checkpoints, not trained.
  shared = workdir / 'tt_only_test_off'
  assert (shared / 'checkpoints').is_symlink()
  assert table[0]['checkpoint'].startswith('tt_only/')
  assert (json.loads((shared / 'test_results.json').read_text())['checkpoint']
          == json.loads((workdir / 'tt_only' / 'test_results.json').read_text())
          ['checkpoint'])

  # A second run reuses every row: nothing is trained or tested again.
  stamps = {r: (workdir / r / 'test_results.json').stat().st_mtime_ns
            for r in rows}
  again = ablate.run(str(workdir), rows, make_config)
  assert again == table
  assert stamps == {r: (workdir / r / 'test_results.json').stat().st_mtime_ns
                    for r in rows}

  # The command line, on the same folder: flags, overrides, reuse.
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
      [sys.executable, '-m', 'vim_jax.ablate',
       f'--config={ROOT}/configs/vim.py:base=test', f'--workdir={workdir}',
       '--rows=tt_only', '--config.train.num_steps=2',
       f'--config.data.tfds_data_dir={tmp_path}'],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'reusing' in proc.stderr and 'another config' not in proc.stderr
  # Alone in the table, tt_only is its own reference (Δ = 0).
  assert json.loads((workdir / 'ablation.json').read_text()) == [
      dict(table[1], vs={'tt_only': [0.0, 0.0]})]
  assert stamps == {r: (workdir / r / 'test_results.json').stat().st_mtime_ns
                    for r in rows}


def test_ablate_finds_pretrained_rows(tmp_path, caplog):
  """With pretraining, a row's config.json names the weight folders that
  `pretrain.resolve` chose: reuse and test-time isolation still match it."""
  from vim_jax.weights import pretrain  # pylint: disable=g-import-not-at-top
  make, _ = ablate.config_maker(
      f'{ROOT}/configs/vim.py:base=test',
      overrides={'train.num_steps': 2, 'data.tfds_data_dir': str(tmp_path),
                 'pretrain.steps': 2})
  make_config = _with_test_off(make)
  workdir = tmp_path / 'ablation'
  rows = ['tt_only_test_off', 'tt_only']
  table = ablate.run(str(workdir), rows, make_config)
  saved = json.loads((workdir / 'tt_only' / 'config.json').read_text())
  assert saved['model']['backbone_weights'] == pretrain.cache_folder(
      make('tt_only'), 'backbone')
  assert os.path.isdir(saved['model']['backbone_weights'])
  # Tested from tt_only's checkpoints, not trained a second time.
  assert (workdir / 'tt_only_test_off' / 'checkpoints').is_symlink()
  assert table[0]['checkpoint'].startswith('tt_only/')
  with caplog.at_level('INFO'):
    assert ablate.run(str(workdir), rows, make_config) == table
  assert 'reusing' in caplog.text and 'another config' not in caplog.text


def test_ablate_tests_trained_rows_on_more_ways(tmp_path):
  """Fig. 20: rows trained at 3-way, tested again on 4-way episodes from
  their own checkpoints; the 3-way column is the rows' own test."""
  make, _ = ablate.config_maker(
      f'{ROOT}/configs/vim.py:base=test',
      overrides={'train.num_steps': 2, 'data.tfds_data_dir': str(tmp_path)})
  workdir = tmp_path / 'many_way'
  rows = ['baseline', 'otam']
  ablate.run(str(workdir), rows, make)
  result = ablate.run_many_way(str(workdir), rows, make, [4, 3])
  read = lambda name: json.loads(
      (workdir / name / 'test_results.json').read_text())
  for row in rows:
    own, wide = read(row), read(f'{row}-way4')
    assert list(result[row]) == [3, 4]
    assert result[row][3]['accuracy'] == own['accuracy']
    # 8 episodes of 3 (then 4) classes with one query each.
    assert sum(c['queries'] for c in own['per_class'].values()) == 8 * 3
    assert sum(c['queries'] for c in wide['per_class'].values()) == 8 * 4
    # Tested from the row's own checkpoint, not trained again.
    assert (workdir / f'{row}-way4' / 'checkpoints').is_symlink()
    assert wide['checkpoint'] == own['checkpoint']
    assert result[row][4]['checkpoint'] == f'{row}/{own["checkpoint"]}'
    assert result[row][4]['train_steps'] == 2
  lines = (workdir / 'many_way.md').read_text().splitlines()
  accuracy_rows = [l for l in lines if l.startswith('| otam |')]
  assert accuracy_rows[0] == '| otam | {:.2f} ± {:.2f} | {:.2f} ± {:.2f} |'.format(
      read('otam')['accuracy'], read('otam')['ci95'],
      read('otam-way4')['accuracy'], read('otam-way4')['ci95'])
  # The paired difference at 4-way, by hand from the episodes.
  diff = np.subtract(read('otam-way4')['episode_accuracy'],
                     read('baseline-way4')['episode_accuracy'])
  assert accuracy_rows[1].endswith(
      f'| {diff.mean():+.2f} ± {1.96 * diff.std() / np.sqrt(8):.2f} |')
  saved = json.loads((workdir / 'many_way.json').read_text())
  assert saved['otam']['4']['accuracy'] == read('otam-way4')['accuracy']
  assert (workdir / 'many_way.png').stat().st_size > 1000
  # A second call reuses every folder.
  stamps = {p: p.stat().st_mtime_ns
            for p in workdir.glob('*/test_results.json')}
  assert len(stamps) == 4
  assert ablate.run_many_way(str(workdir), rows, make, [4]) == result
  assert stamps == {p: p.stat().st_mtime_ns
                    for p in workdir.glob('*/test_results.json')}


def test_ablate_over_seeds(tmp_path):
  from scipy import stats  # pylint: disable=g-import-not-at-top
  make, _ = ablate.config_maker(
      f'{ROOT}/configs/vim.py:base=test',
      overrides={'train.num_steps': 2, 'data.tfds_data_dir': str(tmp_path)})
  workdir = tmp_path / 'seeds'
  rows, seeds = ['baseline', 'tt_only'], [3, 0]
  # Δ against both rows: the first row's column, and tt_only's.
  summary = ablate.run_seeds(str(workdir), rows, make, seeds,
                             vs=['baseline', 'tt_only'])

  def results(seed, row):
    return json.loads(
        (workdir / f'seed_{seed}' / row / 'test_results.json').read_text())

  for seed in seeds:  # each seed is an ordinary ablation folder
    for row in rows:
      saved = json.loads(
          (workdir / f'seed_{seed}' / row / 'config.json').read_text())
      assert saved['seed'] == seed
    assert (workdir / f'seed_{seed}' / 'ablation.md').exists()
  # The seeds trained different models (same test episodes).
  assert (results(0, 'tt_only')['episode_accuracy']
          != results(3, 'tt_only')['episode_accuracy'])

  order = sorted(seeds)
  lines = (workdir / 'ablation.md').read_text().splitlines()
  body = [l for l in lines if l.startswith('| ') and not l.startswith('| row')]
  assert [l.split(' | ')[0][2:] for l in body] == rows
  assert 'over training seeds 0, 3' in lines[0]
  for line, entry in zip(body, summary):
    acc = [results(s, entry['row'])['accuracy'] for s in order]
    # Against scipy's t-interval over the seeds.
    half = stats.t.ppf(0.975, len(acc) - 1) * stats.sem(acc)
    assert entry['seed_accuracy'] == acc
    np.testing.assert_allclose([entry['accuracy'], entry['ci95']],
                               [np.mean(acc), half], atol=1e-3)
    assert f'{np.mean(acc):.2f} ± {half:.2f}' in line
    # Δ per seed: paired against the same seed's reference row, by hand.
    for ref in ('baseline', 'tt_only'):
      deltas = [np.mean(np.subtract(
          results(s, entry['row'])['episode_accuracy'],
          results(s, ref)['episode_accuracy'])) for s in order]
      np.testing.assert_allclose(entry['seed_vs'][ref], deltas, atol=1e-9)
      np.testing.assert_allclose(entry['vs'][ref], [
          np.mean(deltas),
          stats.t.ppf(0.975, len(deltas) - 1) * stats.sem(deltas)], atol=1e-9)
      assert ', '.join(f'{d:+.1f}' for d in deltas) in line
    # The diagnostics: means of the seeds' test results, '-' without them.
    for key in ablate.SEED_MEANS:
      values = [results(s, entry['row']).get(key) for s in order]
      if entry['row'] == 'baseline' and key != 'frames_in_span':
        assert entry[key] is None
      else:
        np.testing.assert_allclose(entry[key], np.mean(values), atol=1e-9)
    unaligned = entry['unaligned_accuracy']
    assert line.endswith(' | - | - / - |' if unaligned is None else
                         f' | {unaligned:.2f} | 0 / 0 |'), line
  assert summary[0]['vs']['baseline'] == summary[1]['vs']['tt_only'] == [
      0.0, 0.0]
  assert 'Δ vs baseline | per seed | Δ vs tt_only | per seed |' in lines[4]
  # Each seed's own table has the same two Δ columns, paired by hand.
  seed_lines = (workdir / 'seed_0' / 'ablation.md').read_text().splitlines()
  diff = np.subtract(results(0, 'baseline')['episode_accuracy'],
                     results(0, 'tt_only')['episode_accuracy'])
  assert (f'| {-diff.mean():+.2f} ± {1.96 * diff.std() / np.sqrt(8):.2f} | '
          '+0.00 ± 0.00 |') in seed_lines[-1]
  assert json.loads((workdir / 'ablation.json').read_text()) == summary
  assert (workdir / 'ablation.png').stat().st_size > 1000
  with pytest.raises(ValueError, match='twice'):
    ablate.run_seeds(str(workdir), rows, make, [0, 0])
  # A reference row that is not a row fails before anything trains.
  with pytest.raises(ValueError, match='both of --vs'):
    ablate.run(str(tmp_path / 'bad_vs'), rows, make, vs=['both'])
  assert not (tmp_path / 'bad_vs').exists()


def test_seed_table_of_one_seed_says_so(tmp_path):
  """A table over one training seed has no t-interval: it says '(1 seed)'
  where two seeds give '± HALF', never 'nan'."""
  def entry(row, acc, delta):
    return dict(row=row, description=row, seeds=[0], seed_accuracy=[acc],
                accuracy=acc, ci95=float('nan'), seed_vs={'trx': [delta]},
                vs={'trx': [delta, float('nan')]}, frames_in_span=58.3,
                unaligned_accuracy=None, warps_at_bound=None,
                offsets_at_bound=None)
  ablate.write_seed_table(str(tmp_path), [entry('trx', 55.28, 0.0),
                                          entry('trx_vim', 31.52, -23.76)],
                          'a title')
  text = (tmp_path / 'ablation.md').read_text()
  assert 'nan' not in text
  assert ('| trx_vim | trx_vim | 31.52 (1 seed) | 31.5 | -23.76 (1 seed) |'
          in text)
  assert '| trx | trx | 55.28 (1 seed) | 55.3 | +0.00 (1 seed) |' in text


def test_gradient_norms_per_module_and_term():
  """The logged gradient norms: per module against the first SGD update
  (update = -lr (g + wd p) with zero momentum), per term against each
  other (the triangle inequality, and exact zeros where a term cannot
  reach)."""
  config = vim_config.get_config('row=full,base=test')
  config.train.term_grad_norms = True
  config.train.scan_distill_weight = 1.0
  state, metrics, init = _train(config, jax.devices()[:1], 1)
  m, train_config = metrics[0], config.train
  for module in ('backbone', 'alignment'):
    grad = jax.tree.map(
        lambda new, old: (old - new) / train_config.lr
        - train_config.weight_decay * old,
        state.params[module], init.params[module])
    np.testing.assert_allclose(
        m[f'grad_norm_{module}'],
        np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(grad))),
        rtol=2e-3)
  for module in ('backbone', 'scan', 'sampler', 'alignment'):
    total = m[f'grad_norm_{module}']
    terms = [m[f'grad_{t}_{module}'] for t in steps.TERMS]
    assert total <= sum(terms) * (1 + 1e-5), (module, total, terms)
  # L_intra trains the sampler only, the distillation the scan net only, and
  # L_inter (routed through everything by default) reaches the alignment.
  assert m['grad_intra_loss_backbone'] == 0.0
  assert m['grad_intra_loss_alignment'] == 0.0
  assert m['grad_intra_loss_sampler'] > 0
  assert m['grad_distill_loss_backbone'] == 0.0
  assert m['grad_distill_loss_sampler'] == 0.0
  assert m['grad_distill_loss_scan'] > 0
  assert m['grad_inter_loss_alignment'] > 0


@pytest.mark.parametrize('inter_grad', ['all', 'alignment'])
def test_the_training_step_routes_l_inter(inter_grad):
  """train.inter_grad through the whole training step: L_inter's gradient
  reaches the backbone under the alignment with 'all' and nothing but the
  alignment with 'alignment' (the step's second pass), at the same loss."""
  config = maps_config('alignment_inter')
  config.train.episodes_per_step = config.eval.episodes_per_step = 1
  config.train.term_grad_norms = True
  config.train.inter_grad = inter_grad
  _, metrics, _ = _train(config, jax.devices()[:1], 1)
  m = metrics[0]
  assert m['grad_inter_loss_alignment'] > 1e-6
  if inter_grad == 'alignment':
    assert m['grad_inter_loss_backbone'] == 0.0
  else:
    assert m['grad_inter_loss_backbone'] > 1e-6
