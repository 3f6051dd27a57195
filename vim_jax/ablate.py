"""Trains and tests rows of configs/vim.py and tabulates them (paper Table 4).

  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/ablate \\
      --rows=baseline,sampler,sampler_intra,alignment,alignment_inter,both,full
  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/ablate_5shot \\
      --shot=5 --config.train.num_steps=300      # overrides apply to every row
  python -m vim_jax.ablate --config=configs/vim.py:base=test \\
      --workdir=/tmp/ablate_test --rows=baseline,sampler --config.train.num_steps=2

Over training seeds (the sampler rows' results depend on them far more than
on the test episodes):

  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/seeds \
      --rows=baseline,sampler_intra --seeds=0,1,2,3,4

runs the whole ablation once per seed in WORKDIR/seed_N (config.seed = N;
each is an ordinary single-seed ablation folder, resumed the same way) and
writes the table over seeds to WORKDIR: each row's mean test accuracy with
a 95% t-interval over the seeds (`evaluate.seed_interval`), its accuracy at
each seed, and its difference to the first row *of the same seed* (paired
over the episodes), averaged over the seeds with its own t-interval.

Δ against other rows too: `--vs=baseline,both,full` gives a paired Δ column
per reference row (each among --rows), in the single-seed tables and in the
table over seeds, e.g. Table 4 against ProtoNet, against `both`, and
whether full VIM is the best row (every other row's Δ vs full below 0).

Many-way (Fig. 20): `--test_ways=6,7,8,9,10` then tests every trained row
again on N-way episodes from its own checkpoints (WORKDIR/ROW-wayN;
`run_many_way`) and writes WORKDIR/many_way.md, .json and .png:

  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/fig20 \
      --rows=baseline,otam,hyrsm,full --test_ways=6,7,8,9,10

Every row is `configs/vim.py:row=ROW` plus the rest of --config's argument
(base, way, shot, query), then --shot, then the --config.x=... overrides.
Rows run one after the other in WORKDIR/ROW with `train.train_and_evaluate`
(train.py's workdir layout), each after the pretraining phase as in main.py
(`train.pretraining_phase`: the rows share its cached folders); all rows
are tested on the same fixed episodes, episodes 0..n-1 of (eval.seed,
'test'), as every config's test is.

Resuming: a row whose WORKDIR/ROW/test_results.json exists is reused as it
is; a row with checkpoints but no results resumes its training. Test-time
isolation rows (Table 17) are not trained again: a row whose config differs
from an already trained row's (in WORKDIR) only in the `test_*` switches is
tested from that row's checkpoints (linked as WORKDIR/ROW/checkpoints and
best) with `train.evaluate_only`; such rows run after the others. This is
the paper's protocol (one model, a module removed at test); the checkpoint
tested is the one the trained row's own validation picked. A reused row
whose saved config.json differs from the one asked for is logged as a
warning, not retrained.

Writes WORKDIR/ablation.md (row, what is on, test accuracy +- 95% CI, the
difference to the first row (or to each --vs row) paired over the episodes,
frames in the action span, alignment cost, train steps, wall time,
checkpoint tested),
WORKDIR/ablation.png (bar chart with the CIs) and WORKDIR/ablation.json (the
same numbers); each row's wall time and description are kept in
WORKDIR/ROW/ablation_row.json. A row whose results lack per-episode
accuracies (older runs) or cover another number of episodes gets no
difference ('-').
"""
import importlib.util
import json
import logging
import math
import os
import time
from typing import Callable, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

from vim_jax import evaluate

ROW_RECORD = 'ablation_row.json'
# `config.model.head` in the table's descriptions.
HEAD_NAMES = {'otam': 'OTAM', 'trx': 'TRX', 'hyrsm': 'HyRSM'}

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined on demand: importing defines none)."""
  flags.DEFINE_string('workdir', None, 'One folder per row, and the table.')
  flags.DEFINE_list('rows', None, 'Rows of configs/vim.py (default: Table 4).')
  flags.DEFINE_integer('shot', None, "K, replacing the --config argument's.")
  flags.DEFINE_list('seeds', None, 'Training seeds (config.seed): the '
                    'ablation once per seed, and the table over seeds.')
  flags.DEFINE_list('vs', None, 'Rows (among --rows) every row is compared '
                    'with, a paired Δ column each (default: the first row).')
  flags.DEFINE_list('test_ways', None, 'Also test every trained row on '
                    'N-way episodes for each N (Fig. 20; `run_many_way`).')
  config_flags.DEFINE_config_file(
      'config', None, 'configs/vim.py[:base=...,shot=...]; --config.x=... '
      'overrides apply to every row.', lock_config=True)
  flags.mark_flags_as_required(['config', 'workdir'])


def _load_module(path):
  spec = importlib.util.spec_from_file_location('ablation_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config_maker(config_file: str, shot=None, overrides=None):
  """(row -> config, default rows) from a 'configs/vim.py:args' string.

  Args:
    config_file: path of a config module with `ROWS`, `TABLE_4` and
      `get_config('row=...,...')`, optionally followed by ':key=value,...'.
    shot: replaces the argument's shot when given.
    overrides: flat {'train.num_steps': 2} set on every row's config.
  """
  path, _, arg = config_file.partition(':')
  module = _load_module(path)
  replaced = ('row=',) + (('shot=',) if shot is not None else ())
  items = [item for item in arg.split(',')
           if item and not item.startswith(replaced)]
  if shot is not None:
    items.append(f'shot={shot}')

  def make(row):
    if row not in module.ROWS:
      raise ValueError(f'Unknown row {row!r}; rows of {path}: '
                       f'{", ".join(module.ROWS)}.')
    config = module.get_config(','.join(items + [f'row={row}']))
    config.update_from_flattened_dict(dict(overrides or {}))
    return config

  return make, list(module.TABLE_4)


def describe(config) -> str:
  """What is on in a config, in the paper's module names."""
  # pylint: disable=g-import-not-at-top
  from vim_jax.models import build
  from vim_jax.models import few_shot
  # pylint: enable=g-import-not-at-top
  model, train = config.model, config.train
  parts, at_test = [], []
  if few_shot.uses_sampler(model):
    sampler = build.sampler(model.sampler, frames=model.frames)
    names = ('TS', 'SA', 'Ada')
    on = sampler.switches(True)
    if model.sampler.method == 'vim':
      parts.append('+'.join(n for n, s in zip(names, on) if s) or
                   'sampler (uniform)')
    else:
      parts.append({'mgsampler': 'MGSampler'}.get(model.sampler.method,
                                                   model.sampler.method))
    at_test += [n for n, s, t in zip(names, on, sampler.switches(False))
                if s and not t]
  if few_shot.uses_alignment(model):
    alignment = build.alignment(model.alignment, way=2)
    names = ('TT', 'TR', 'SC')
    on, off = alignment.switches(True)[0], alignment.switches(False)[0]
    text = '+'.join(n for n, s in zip(names, on) if s)
    if model.alignment.order == 'spatial_first' and on[2] and any(on[:2]):
      text += ' (SC first)'
    parts.append(text)
    at_test += [n for n, s, t in zip(names, on, off) if s and not t]
  if few_shot.uses_sampler(model) and train.mu1:
    parts.append(f'L_intra x{train.mu1:g}')
  if few_shot.uses_sampler(model) and train.scan_distill_weight:
    parts.append(f'scan distill x{train.scan_distill_weight:g} '
                 f'({train.scan_distill_frames})')
  if few_shot.uses_alignment(model) and train.mu2:
    beta = train.inter_kl_weight
    notes = ([f'KL x{beta:g}'] if beta != 1 else []) + (
        ['to the alignment only'] if train.inter_grad == 'alignment' else [])
    parts.append(f'L_inter x{train.mu2:g}'
                 + (f' ({", ".join(notes)})' if notes else ''))
  head = model.get('head', 'protonet')
  if head != 'protonet':
    parts.append(f'{HEAD_NAMES.get(head, head)} metric')
  if at_test:
    parts.append('off at test: ' + '+'.join(at_test))
  return ', '.join(parts) or 'ProtoNet (all off)'


def training_signature(config_dict: dict) -> str:
  """A config without its test-time switches: equal means equal training."""
  config_dict = json.loads(json.dumps(config_dict))
  for module in ('sampler', 'alignment'):
    fields = config_dict['model'][module]
    for key in [k for k in fields if k.startswith('test_')]:
      del fields[key]
  return json.dumps(config_dict, sort_keys=True)


def _has_test_switches(config) -> bool:
  return any(value is not None
             for module in (config.model.sampler, config.model.alignment)
             for key, value in module.items() if key.startswith('test_'))


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _write_json(path, value):
  with open(path, 'w') as f:
    json.dump(value, f, indent=2)


def _trained_source(workdir: str, config) -> str | None:
  """A row folder of `workdir` trained like `config` (test switches aside)."""
  wanted = training_signature(_config_json(config))
  for name in sorted(os.listdir(workdir)):
    row_dir = os.path.join(workdir, name)
    checkpoints = os.path.join(row_dir, 'checkpoints')
    if (os.path.isdir(checkpoints) and not os.path.islink(checkpoints)
        and os.path.exists(os.path.join(row_dir, 'test_results.json'))
        and os.path.exists(os.path.join(row_dir, 'config.json'))
        and training_signature(_read_json(
            os.path.join(row_dir, 'config.json'))) == wanted):
      return name
  return None


def _config_json(config) -> dict:
  """The config.json that training `config` writes (`train.py`).

  With pretraining that is the resolved config: it names the weight folders
  `pretrain.resolve` gives (`pretrain.planned_folders`: nothing is trained).
  """
  from vim_jax.weights import pretrain  # pylint: disable=g-import-not-at-top
  config_dict = json.loads(config.to_json_best_effort())
  for kind, path in pretrain.planned_folders(config).items():
    config_dict['model'][pretrain.WEIGHT_FIELDS[kind]] = path
  return config_dict


def _run_row(workdir, row, config, source=None):
  """Trains (or reuses, or tests from a shared checkpoint) one row.

  `source`: a row of `workdir` whose checkpoints this row is tested from
  (found from the test switches when None).
  """
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  row_dir = os.path.join(workdir, row)
  record = dict(row=row, description=describe(config),
                train_steps=int(config.train.num_steps), trained_as=row)
  if os.path.exists(os.path.join(row_dir, 'test_results.json')):
    saved = os.path.join(row_dir, 'config.json')
    if os.path.exists(saved) and _read_json(saved) != _config_json(config):
      logging.warning('Row %s: reusing %s, trained with another config than '
                      'the one asked for (see its config.json).', row, row_dir)
    logging.info('Row %s: reusing %s', row, row_dir)
    return
  checkpoints = os.path.join(row_dir, 'checkpoints')
  if os.path.islink(checkpoints):  # an interrupted shared test: test again
    source = os.path.normpath(os.readlink(checkpoints)).split(os.sep)[1]
  elif (source is None and _has_test_switches(config)
        and not os.path.isdir(checkpoints)):
    source = _trained_source(workdir, config)
  start = time.time()
  if source is None:
    logging.info('Row %s: training in %s (%s)', row, row_dir,
                 record['description'])
    # The pretraining phase first, as main.py runs it (its folders are
    # shared by the rows: only the first row that needs them pretrains).
    train.train_and_evaluate(train.pretraining_phase(config, row_dir),
                             row_dir)
  else:
    logging.info('Row %s: testing the checkpoints of row %s', row, source)
    os.makedirs(row_dir, exist_ok=True)
    for name in ('checkpoints', 'best'):
      link = os.path.join(row_dir, name)
      if (os.path.isdir(os.path.join(workdir, source, name))
          and not os.path.islink(link)):
        os.symlink(os.path.join('..', source, name), link)
    _write_json(os.path.join(row_dir, 'config.json'), _config_json(config))
    train.evaluate_only(config, row_dir)
    record['trained_as'] = source
  record['wall_s'] = time.time() - start
  _write_json(os.path.join(row_dir, ROW_RECORD), record)


def _gather(workdir, rows, make_config, vs=None):
  """One dict per row: the record, the test results and the description.

  Each row's 'vs' maps every reference row of `vs` (rows of `rows`; default
  the first row) to [mean, 95% half-width] of the difference paired over the
  shared test episodes, or None where they are not the same episodes.
  """
  vs = _references(rows, vs)
  table, episodes = [], []
  for row in rows:
    row_dir = os.path.join(workdir, row)
    results = _read_json(os.path.join(row_dir, 'test_results.json'))
    record_path = os.path.join(row_dir, ROW_RECORD)
    record = _read_json(record_path) if os.path.exists(record_path) else {}
    saved = os.path.join(row_dir, 'config.json')
    config = make_config(row)
    steps = (_read_json(saved)['train']['num_steps'] if os.path.exists(saved)
             else int(config.train.num_steps))
    checkpoint = results.get('checkpoint', '')
    if record.get('trained_as', row) != row:
      checkpoint = f'{record["trained_as"]}/{checkpoint}'
    table.append(dict(
        row=row, description=record.get('description', describe(config)),
        accuracy=results['accuracy'], ci95=results['ci95'],
        num_episodes=results['num_episodes'],
        frames_in_span=results.get('frames_in_span'),
        alignment_cost=results.get('alignment_cost'),
        unaligned_accuracy=results.get('unaligned_accuracy'),
        warps_at_bound=results.get('warps_at_bound'),
        offsets_at_bound=results.get('offsets_at_bound'),
        train_steps=record.get('train_steps', steps),
        wall_s=record.get('wall_s'), checkpoint=checkpoint))
    episodes.append(results.get('episode_accuracy'))
  by_row = dict(zip(rows, episodes))
  for r, acc in zip(table, episodes):
    r['vs'] = {ref: _paired(acc, by_row[ref]) for ref in vs}
  return table


def _references(rows, vs):
  """The reference rows of the Δ columns: `vs`, or the first row."""
  vs = list(vs or rows[:1])
  missing = [ref for ref in vs if ref not in rows]
  if missing:
    raise ValueError(f'Reference row(s) {", ".join(missing)} of --vs are not '
                     f'among the rows ({", ".join(rows)}).')
  return vs


def _paired(acc, ref):
  """[mean, 95% half-width] of acc - ref paired over the episodes, or None
  (a row without per-episode accuracies, or on other episodes)."""
  if acc is None or ref is None or len(acc) != len(ref):
    return None
  return list(evaluate.paired_difference(acc, ref))


def _delta(value):
  return '-' if value is None else '{:+.2f} ± {:.2f}'.format(*value)


def _number(value, fmt):
  return '-' if value is None else format(value, fmt)


def write_table(workdir, table, title):
  """WORKDIR/ablation.md and ablation.json."""
  refs = list(table[0]['vs'])
  lines = [f'# {title}', '',
           'Δ vs R: accuracy minus row R\'s, with the 95% interval of the '
           'difference paired over the same test episodes. In span: % of '
           'the frames used that lie inside the action (procedural data). '
           'Cost: mean alignment cost (Eq. 35). Unaligned: the same '
           'model\'s test accuracy with the alignment off at test (Table '
           '17), on the same episodes. At bound: % of the TT warps / SC '
           'offsets at their bound (within 1 %).', '',
           '| row | what is on | test accuracy (%) | '
           + ''.join(f'Δ vs {ref} | ' for ref in refs)
           + 'in span (%) | cost | unaligned (%) | at bound TT / SC (%) | '
           'train steps | wall time (s) | checkpoint tested |',
           '|---|---|---|' + '---|' * len(refs) + '---|' * 7]
  for r in table:
    deltas = ''.join(f'{_delta(r["vs"][ref])} | ' for ref in refs)
    lines.append(
        f'| {r["row"]} | {r["description"]} | {r["accuracy"]:.2f} '
        f'± {r["ci95"]:.2f} | {deltas}'
        f'{_number(r.get("frames_in_span"), ".1f")} | '
        f'{_number(r.get("alignment_cost"), ".2f")} | '
        f'{_number(r.get("unaligned_accuracy"), ".2f")} | '
        f'{_number(r.get("warps_at_bound"), ".0f")} / '
        f'{_number(r.get("offsets_at_bound"), ".0f")} | {r["train_steps"]} | '
        f'{_number(r["wall_s"], ".0f")} | {r["checkpoint"]} |')
  with open(os.path.join(workdir, 'ablation.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  _write_json(os.path.join(workdir, 'ablation.json'), table)


def plot(workdir, table, title):
  """WORKDIR/ablation.png: test accuracy per row with 95% CI error bars."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  acc = [r['accuracy'] for r in table]
  ci = [r['ci95'] for r in table]
  fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(table) + 1.5), 4.0))
  x = range(len(table))
  ax.bar(x, acc, yerr=ci, capsize=4, color='tab:blue', alpha=0.8)
  bottom = max(0.0, min(a - c for a, c in zip(acc, ci)) - 5.0)
  for i, a in enumerate(acc):
    ax.text(i, (bottom + a) / 2, f'{a:.1f}', ha='center', va='center',
            fontsize=8, color='white')
  ax.set_xticks(list(x))
  ax.set_xticklabels([r['row'] for r in table], rotation=40, ha='right')
  ax.set_ylabel('test accuracy (%), 95% CI')
  ax.set_ylim(bottom, min(100.0, max(a + c for a, c in zip(acc, ci)) + 5.0))
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'ablation.png'), dpi=120)
  plt.close(fig)


def _title(config) -> str:
  """The tables' and the chart's title: the episodes every row is tested on."""
  return (f'{config.data.way}-way {config.data.shot}-shot, '
          f'{config.eval.test_episodes} test episodes (seed {config.eval.seed})')


def run(workdir: str, rows: Sequence[str],
        make_config: Callable[[str], object],
        vs: Sequence[str] = ()) -> list:
  """Runs (or reuses) every row, then writes the table and the chart.

  Args:
    workdir: the rows' parent folder.
    rows: row names, in the table's order.
    make_config: row -> its full config.
    vs: rows every row is compared with (a Δ column each, paired over the
      episodes); default the first row.

  Returns:
    The table: one dict per row (see `_gather`).
  """
  configs = {row: make_config(row) for row in rows}  # bad rows fail first
  vs = _references(rows, vs)
  os.makedirs(workdir, exist_ok=True)
  # Rows trained as another row (test-time isolation) go after it.
  for row in sorted(rows, key=lambda r: _has_test_switches(configs[r])):
    _run_row(workdir, row, configs[row])
  table = _gather(workdir, rows, make_config, vs)
  title = _title(configs[rows[0]])
  write_table(workdir, table, title)
  plot(workdir, table, title)
  logging.info('Wrote %s', os.path.join(workdir, 'ablation.md'))
  return table


def way_row(row: str, way: int) -> str:
  """The folder of `row` tested on `way`-way episodes (`run_many_way`)."""
  return f'{row}-way{way}'


def run_many_way(workdir: str, rows: Sequence[str],
                 make_config: Callable[[str], object],
                 ways: Sequence[int]) -> dict:
  """The trained rows of `workdir` tested again on N-way episodes (Fig. 20).

  Each row, trained (and tested) by `run` at its config's way, is tested at
  each other N of `ways` in WORKDIR/ROW-wayN, from the row's own checkpoints (linked, as a
  test-time isolation row is; `train.evaluate_only`): the metrics are
  way-agnostic (no parameter depends on N), so this measures how one model
  copes with more classes per episode, on the fixed N-way test episodes
  (episodes 0..n-1 of (eval.seed, 'test') at N-way). The paper does not say
  whether its many-way models were trained at N-way; testing one model is the
  choice that needs no training per N.

  Writes WORKDIR/many_way.md (accuracy ± 95% CI per row and way, and the
  difference to the first row paired over each way's episodes),
  many_way.json ({row: {way: table entry}}) and many_way.png.

  Returns:
    {row: {way: the `_gather` entry of that row at that way}}.
  """
  first = make_config(rows[0])
  own = int(first.data.way)
  ways = [own] + sorted({int(w) for w in ways} - {own})

  def at_way(row, way):
    config = make_config(row)
    config.data.way = way
    return config

  tables = {own: _gather(workdir, rows, make_config)}
  for way in ways[1:]:
    names = {way_row(row, way): row for row in rows}
    for name, row in names.items():
      _run_row(workdir, name, at_way(row, way), source=row)
    tables[way] = _gather(workdir, list(names),
                          lambda name, way=way: at_way(names[name], way))
  result = {row: {way: tables[way][i] for way in ways}
            for i, row in enumerate(rows)}
  _write_many_way(workdir, result, ways, first)
  return result


def _write_many_way(workdir, result, ways, config):
  """WORKDIR/many_way.md, .json and .png from `run_many_way`'s result."""
  rows = list(result)
  trained = f'{config.data.way}-way {config.data.shot}-shot'
  episodes = (f'{config.eval.test_episodes} test episodes (seed '
              f'{config.eval.seed})')
  head = ' | '.join(f'{way}-way' for way in ways)
  rule = '|---|' + '---|' * len(ways)
  cells = lambda fmt: [
      f'| {row} | ' + ' | '.join(fmt(result[row][way]) for way in ways)
      + ' |' for row in rows]
  lines = [f'# Many-way: {trained}-trained rows tested on N-way episodes',
           '', f'{episodes} per way. Accuracy (%) ± 95% CI:', '', f'| row | {head} |', rule,
           *cells(lambda r: f'{r["accuracy"]:.2f} ± {r["ci95"]:.2f}'), '',
           f'Δ vs {rows[0]}, paired over the same episodes of each way:', '',
           f'| row | {head} |', rule,
           # Each way's table has one reference: its first row at that way.
           *cells(lambda r: _delta(next(iter(r['vs'].values()))))]
  with open(os.path.join(workdir, 'many_way.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  _write_json(os.path.join(workdir, 'many_way.json'),
              {row: {str(w): e for w, e in v.items()}
               for row, v in result.items()})
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5.0, 4.0))
  for row in rows:
    ax.errorbar(ways, [result[row][w]['accuracy'] for w in ways],
                yerr=[result[row][w]['ci95'] for w in ways], marker='o',
                capsize=3, label=row)
  ax.set_xticks(ways)
  ax.set_xlabel('classes per test episode (N)')
  ax.set_ylabel('test accuracy (%), 95% CI')
  ax.set_title(f'{trained}-trained, N-way test', fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'many_way.png'), dpi=120)
  plt.close(fig)


# The per-row diagnostics of `_gather` that the table over seeds averages.
SEED_MEANS = ('frames_in_span', 'unaligned_accuracy', 'warps_at_bound',
              'offsets_at_bound')


def summarise_seeds(tables: dict) -> list:
  """The table over seeds from `run`'s tables, {seed: table}.

  Returns:
    One dict per row, in the first table's order: 'row', 'description',
    'seeds', 'accuracy' and 'ci95' (mean over seeds and its 95% t
    half-width), 'seed_accuracy' (per seed), 'vs' ({reference row: [mean,
    t half-width] over seeds of the paired difference to that row of the
    same seed, or None}, the references of the seeds' tables), 'seed_vs'
    ({reference row: the per-seed differences}), and the means over the
    seeds of `SEED_MEANS` (None where a seed's table lacks one).
  """
  seeds = sorted(tables)
  rows = [r['row'] for r in tables[seeds[0]]]
  summary = []
  for i, row in enumerate(rows):
    entries = [tables[seed][i] for seed in seeds]
    if any(e['row'] != row for e in entries):
      raise ValueError(f'row {row}: the seeds\' tables list other rows')
    accuracy = [e['accuracy'] for e in entries]
    deltas = {ref: [e['vs'][ref][0] if e['vs'][ref] else None
                    for e in entries] for ref in entries[0]['vs']}
    mean, half = evaluate.seed_interval(accuracy)
    summary.append(dict(
        row=row, description=entries[0]['description'], seeds=seeds,
        accuracy=mean, ci95=half, seed_accuracy=accuracy,
        vs={ref: (list(evaluate.seed_interval(d)) if None not in d else None)
            for ref, d in deltas.items()},
        seed_vs=deltas))
    for key in SEED_MEANS:
      values = [e.get(key) for e in entries]
      summary[-1][key] = (None if None in values
                          else sum(values) / len(values))
  return summary


def _mean_interval(mean, half, sign=''):
  """'MEAN ± HALF', or 'MEAN (1 seed)' where one seed has no interval
  (`evaluate.seed_interval`'s NaN)."""
  if math.isnan(half):
    return f'{mean:{sign}.2f} (1 seed)'
  return f'{mean:{sign}.2f} ± {half:.2f}'


def write_seed_table(workdir, summary, title):
  """WORKDIR/ablation.md and ablation.json for the table over seeds."""
  refs = list(summary[0]['vs'])
  seeds = ', '.join(str(s) for s in summary[0]['seeds'])
  lines = [f'# {title}, over training seeds {seeds}', '',
           'Accuracy: mean over the seeds ± the 95% t-interval over the '
           'seeds. Δ vs R: accuracy minus row R\'s of the same seed '
           '(paired over the same test episodes), mean over the seeds ± its '
           't-interval. Per seed: in the order of the seeds. In span, '
           'unaligned, at bound: means over the seeds of the single-seed '
           'tables\' columns.', '',
           '| row | what is on | test accuracy (%) | per seed | '
           + ''.join(f'Δ vs {ref} | per seed | ' for ref in refs)
           + 'in span (%) | unaligned (%) | at bound TT / SC (%) |',
           '|---|---|---|---|' + '---|---|' * len(refs) + '---|---|---|']
  for r in summary:
    per_seed = ', '.join(f'{a:.1f}' for a in r['seed_accuracy'])
    deltas = ''
    for ref in refs:
      if r['vs'][ref] is None:
        deltas += '- | - | '
      else:
        deltas += (_mean_interval(*r['vs'][ref], sign='+') + ' | '
                   + ', '.join(f'{d:+.1f}' for d in r['seed_vs'][ref])
                   + ' | ')
    means = (_number(r['frames_in_span'], '.1f'),
             _number(r['unaligned_accuracy'], '.2f'),
             _number(r['warps_at_bound'], '.0f'),
             _number(r['offsets_at_bound'], '.0f'))
    accuracy = _mean_interval(r['accuracy'], r['ci95'])
    lines.append(f'| {r["row"]} | {r["description"]} | {accuracy} | '
                 f'{per_seed} | {deltas}'
                 '{} | {} | {} / {} |'.format(*means))
  with open(os.path.join(workdir, 'ablation.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  _write_json(os.path.join(workdir, 'ablation.json'), summary)


def run_seeds(workdir: str, rows: Sequence[str],
              make_config: Callable[[str], object],
              seeds: Sequence[int], test_ways: Sequence[int] = (),
              vs: Sequence[str] = ()) -> list:
  """`run` once per training seed in WORKDIR/seed_N, then the table over
  seeds (`summarise_seeds`) in WORKDIR: ablation.md, .json and .png (the
  chart's bars are the means, its error bars the t-intervals). With
  `test_ways`, each seed's folder also gets `run_many_way`'s tables."""
  if len(set(seeds)) != len(seeds):
    raise ValueError(f'--seeds lists a seed twice: {list(seeds)}')
  tables = {}
  for seed in seeds:
    def make(row, seed=seed):
      config = make_config(row)
      config.seed = int(seed)
      return config
    tables[int(seed)] = run(os.path.join(workdir, f'seed_{seed}'), rows, make,
                            vs)
    if test_ways:
      run_many_way(os.path.join(workdir, f'seed_{seed}'), rows, make,
                   test_ways)
  summary = summarise_seeds(tables)
  title = _title(make_config(rows[0]))
  write_seed_table(workdir, summary, title)
  if len(seeds) > 1:
    plot(workdir, summary, title + f', mean over {len(seeds)} training seeds')
  logging.info('Wrote %s', os.path.join(workdir, 'ablation.md'))
  return summary


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  overrides = config_flags.get_override_values(FLAGS['config'])
  make_config, table_4 = config_maker(
      config_flags.get_config_filename(FLAGS['config']), FLAGS.shot,
      overrides)
  try:
    test_ways = [int(way) for way in FLAGS.test_ways or ()]
  except ValueError:
    raise app.UsageError(f'--test_ways must be integers, got {FLAGS.test_ways}')
  rows, vs = FLAGS.rows or table_4, FLAGS.vs or ()
  if FLAGS.seeds is None:
    run(FLAGS.workdir, rows, make_config, vs)
    if test_ways:
      run_many_way(FLAGS.workdir, rows, make_config, test_ways)
    return
  if 'seed' in overrides:
    raise app.UsageError('--seeds sets config.seed: leave out --config.seed.')
  try:
    seeds = [int(seed) for seed in FLAGS.seeds]
  except ValueError:
    raise app.UsageError(f'--seeds must be integers, got {FLAGS.seeds}')
  run_seeds(FLAGS.workdir, rows, make_config, seeds, test_ways, vs)


if __name__ == '__main__':
  define_flags()
  app.run(main)
