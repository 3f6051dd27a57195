"""Complexity of VIM and the other methods against ProtoNet (paper 4.4.10,
Fig. 22, and the extensions of Table 3).

Rows (`configs/vim.py` rows): ProtoNet ('baseline'), the sampler alone
('sampler'), the alignment alone ('alignment'), full VIM ('full'), the
OTAM, TRX and HyRSM metrics alone ('otam', 'trx', 'hyrsm': Fig. 22's
other methods) and full VIM with each ('otam_vim', 'trx_vim', 'hyrsm_vim').

Three Markdown tables:
  1. parameter counts, split into backbone, sampler (its scan network
     apart), alignment and metric head, for each base of --param_bases:
     the paper's size (`default`: ResNet-50 at 224 x 224) and the
     synthetic config (counted from `jax.eval_shape`, nothing is run),
     with Fig. 22's totals beside the paper-size rows;
  2. XLA's compiled FLOPs and temporary memory per train and eval episode
     (`compiled_costs`; nothing runs) for each base of --flops_bases: the
     paper's size (`default`: ResNet-50 at 224 px, scan net 0.5x at 64 px,
     M = 20, T = 8) and the synthetic config, with ratios to ProtoNet;
  3. on --time_base (the synthetic config) and one device, measured in the
     same run: evaluation seconds per episode, train-step seconds per
     episode, and the temporary memory of the compiled train and eval steps
     (`jit(...).lower(...).compile().memory_analysis()`), each with its
     ratio to ProtoNet's, the share of the step that the model's additions
     to ProtoNet take, 1 - ProtoNet's / the model's, and Fig. 22's
     inference-time ratio to ProtoNet (V100, ResNet-50) where it has one.

  python benchmarks/complexity.py
  python benchmarks/complexity.py --steps=5 --eval_batches=5 --shot=5
  python benchmarks/complexity.py --flops_bases=default --notime
  python benchmarks/complexity.py --rows=baseline,otam,trx,hyrsm,full
  # a variant: --config.FIELD=VALUE overrides every row's config, as in
  # main.py and vim_jax.ablate (parsed and type-checked by ml_collections)
  python benchmarks/complexity.py --rows=baseline,full --flops_bases=synthetic \
      --param_bases=synthetic --notime --query=3 \
      --config.model.sampler.scan_kwargs.stages_out_channels='(8,16,32,64,128)'
  # the smallest setting (configs/test.py's data), to check that it runs:
  python benchmarks/complexity.py --param_bases=test --flops_bases=test \\
      --time_base=test --way=3 --query=1 --steps=1 --eval_batches=1

Timed steps run on episodes already in memory (from the input pipeline of
the synthetic data, which is built on first use), after one warm-up call.
"""
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_integer('steps', 3, 'Timed train steps (after one warm-up step).')
flags.DEFINE_integer('eval_batches', 3, 'Timed eval batches (after one).')
flags.DEFINE_integer('way', 5, 'N of the episodes.')
flags.DEFINE_integer('shot', 1, 'K of the episodes.')
flags.DEFINE_integer('query', 5, 'Queries per class of the episodes.')
flags.DEFINE_string('tfds_data_dir', None, 'TFDS data dir (default: TFDS).')
config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), 'configs', 'vim.py'),
    'Only for its --config.FIELD=VALUE overrides, set on every row\'s config.',
    lock_config=True)
FLAGS = flags.FLAGS

ROWS = ('baseline', 'sampler', 'alignment', 'full', 'otam', 'trx', 'hyrsm',
        'otam_vim', 'trx_vim', 'hyrsm_vim')
NAMES = {'baseline': 'ProtoNet', 'sampler': 'sampler only',
         'alignment': 'alignment only', 'full': 'VIM (full)',
         'otam': 'OTAM', 'trx': 'TRX', 'hyrsm': 'HyRSM',
         'otam_vim': 'OTAM + VIM', 'trx_vim': 'TRX + VIM',
         'hyrsm_vim': 'HyRSM + VIM'}
# Paper, Fig. 22 (5-way 1-shot UCF101, ResNet-50, V100): parameters and
# inference seconds per task.
PAPER = {'baseline': (25.8e6, 0.67), 'otam': (25.8e6, 1.29),
         'trx': (47.1e6, 0.92), 'hyrsm': (65.6e6, 0.89),
         'full': (58.2e6, 0.85)}
flags.DEFINE_list('rows', list(ROWS), 'Rows of configs/vim.py, baseline '
                  f'first, from {list(ROWS)}.')
flags.DEFINE_list('param_bases', ['default', 'synthetic'],
                  'Bases (configs/vim.py base=) whose parameters are counted '
                  '(nothing runs).')
flags.DEFINE_list('flops_bases', ['default', 'synthetic'],
                  'Bases (configs/vim.py base=) whose compiled FLOPs and '
                  'temporaries are tabulated (nothing runs).')
flags.DEFINE_bool('time', True, 'Also time the rows on --time_base.')
flags.DEFINE_string('time_base', 'synthetic', 'Base (configs/vim.py base=) '
                    'of the timed steps.')


def _config(row, base):
  from configs import vim  # pylint: disable=g-import-not-at-top
  config = vim.get_config(f'row={row},base={base},way={FLAGS.way},'
                          f'shot={FLAGS.shot},query={FLAGS.query}')
  if FLAGS.tfds_data_dir:
    config.data.tfds_data_dir = FLAGS.tfds_data_dir
  config.update_from_flattened_dict(
      config_flags.get_override_values(FLAGS['config']))
  return config


def parameter_counts(config) -> dict:
  """Parameters per top-level module (and the sampler's scan net), unrun."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  from vim_jax.models import build  # pylint: disable=g-import-not-at-top
  model = build.model(config.model, way=config.data.way)
  episode = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
      train.example_episode(train.episode_spec(config, 'train')))
  keys = {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)}
  params = jax.eval_shape(
      lambda ep: model.init(keys, ep, train=False), episode)['params']
  size = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
  counts = {name: size(params.get(name, {}))
            for name in ('backbone', 'sampler', 'alignment', 'head')}
  counts['scan'] = size(params.get('sampler', {}).get('scan', {}))
  counts['total'] = size(params)
  return counts


def measure(config) -> dict:
  """Seconds per episode and compiled temp bytes of the train and eval steps."""
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from input_pipeline import episodes as episodes_lib  # pylint: disable=g-import-not-at-top
  from vim_jax import parallel  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  runner = parallel.Runner(config.parallel, jax.devices()[:1])
  experiment = train.Experiment(config, runner)

  batches = experiment.train_batches(0)
  cached = [runner.put_batch(next(batches)) for _ in range(FLAGS.steps + 1)]
  state = runner.put_state(experiment.init_state())
  train_step = experiment._train_step.lower(state, cached[0]).compile()  # pylint: disable=protected-access
  train_memory = train_step.memory_analysis()
  state, metrics = train_step(state, cached[0])  # warm-up
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in cached[1:]:
    state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
  train_time = ((time.perf_counter() - start) / FLAGS.steps
                / config.train.episodes_per_step)

  host = runner.get_state(state)
  variables = runner.put_state(
      {'params': host.params, 'batch_stats': host.batch_stats})
  eval_episodes = config.eval.episodes_per_step
  eval_batches = episodes_lib.episode_dataset(
      experiment.source('test'), train.episode_spec(config, 'test'),
      seed=config.eval.seed, split='test',
      indices=tf.data.Dataset.range(eval_episodes * (FLAGS.eval_batches + 1)),
      batch=eval_episodes).as_numpy_iterator()
  eval_cached = [runner.put_batch(b) for b in eval_batches]
  eval_step = experiment._eval_step.lower(variables, eval_cached[0]).compile()  # pylint: disable=protected-access
  eval_memory = eval_step.memory_analysis()
  jax.block_until_ready(eval_step(variables, eval_cached[0]))  # warm-up
  start = time.perf_counter()
  for batch in eval_cached[1:]:
    jax.block_until_ready(eval_step(variables, batch))
  eval_time = (time.perf_counter() - start) / FLAGS.eval_batches / eval_episodes
  return dict(train=train_time, eval=eval_time,
              train_temp=train_memory.temp_size_in_bytes,
              eval_temp=eval_memory.temp_size_in_bytes,
              train_episodes=config.train.episodes_per_step,
              eval_episodes=eval_episodes)


def compiled_costs(config) -> dict:
  """XLA's FLOPs and temporary bytes of one train and one eval episode.

  Nothing runs: the steps are lowered on abstract shapes (one episode per
  step, one device) and compiled; `cost_analysis()` counts the FLOPs of the
  compiled program and `memory_analysis()` its temporaries. FLOPs do not
  move with the machine's load, unlike times.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from vim_jax import parallel  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  config.train.episodes_per_step = config.eval.episodes_per_step = 1
  runner = parallel.Runner(config.parallel, jax.devices()[:1])
  experiment = train.Experiment(config, runner)
  abstract = lambda tree: jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  batch = jax.tree.map(lambda x: x[None], train.example_episode(
      train.episode_spec(config, 'train')))
  eval_batch = jax.tree.map(lambda x: x[None], train.example_episode(
      train.episode_spec(config, 'test')))
  state = jax.eval_shape(experiment.init_state)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  out = {}
  for name, step, args in (
      ('train', experiment._train_step, (state, batch)),  # pylint: disable=protected-access
      ('eval', experiment._eval_step, (variables, eval_batch))):  # pylint: disable=protected-access
    compiled = step.lower(*abstract(args)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    out[f'{name}_flops'] = float(cost['flops'])
    out[f'{name}_temp'] = compiled.memory_analysis().temp_size_in_bytes
  return out


def print_compiled_costs(base):
  """The FLOP and memory table of `FLAGS.rows` on one base config."""
  costs = {row: compiled_costs(_config(row, base)) for row in FLAGS.rows}
  ref = costs['baseline']
  config = _config('full', base)
  print(f'\n## Compiled FLOPs and memory per episode: {base} config '
        f'({config.model.backbone}, {config.data.frame_size}px, scan '
        f'{config.model.sampler.scan_size}px, M={config.data.dense_frames}, '
        f'T={config.model.frames}, {config.data.way}-way '
        f'{config.data.shot}-shot '
        f'{config.data.query}-query)\n')
  print('| model | eval GFLOP | x ProtoNet | train GFLOP | x ProtoNet | '
        'eval temp MB | train temp MB | x ProtoNet |')
  print('|---|---|---|---|---|---|---|---|')
  for row in FLAGS.rows:
    c = costs[row]
    print(f"| {NAMES[row]} | {c['eval_flops'] / 1e9:.1f} | "
          f"{c['eval_flops'] / ref['eval_flops']:.3f} | "
          f"{c['train_flops'] / 1e9:.1f} | "
          f"{c['train_flops'] / ref['train_flops']:.3f} | "
          f"{c['eval_temp'] / 2**20:.0f} | {c['train_temp'] / 2**20:.0f} | "
          f"{c['train_temp'] / ref['train_temp']:.2f} |")
  return costs


def _m(n):
  return f'{n / 1e6:.2f} M'


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  logging.set_verbosity(logging.WARNING)
  if FLAGS.rows[0] != 'baseline' or not set(FLAGS.rows) <= set(ROWS):
    raise app.UsageError(f'--rows must start with baseline (the reference) '
                         f'and come from {list(ROWS)}; got {FLAGS.rows}.')

  overrides = config_flags.get_override_values(FLAGS['config'])
  if overrides:
    print('\nSet on every row: ' + ', '.join(
        f'{field}={value}' for field, value in overrides.items()))
  print(f'\n## Parameters ({FLAGS.way}-way {FLAGS.shot}-shot episodes; '
        'counted, not run)\n')
  print('| config | model | total | backbone | sampler (scan net) | alignment '
        '| head | extra over ProtoNet | paper (Fig. 22) |')
  print('|---|---|---|---|---|---|---|---|---|')
  for base in FLAGS.param_bases:
    counts = {row: parameter_counts(_config(row, base)) for row in FLAGS.rows}
    for row in FLAGS.rows:
      c = counts[row]
      extra = c['total'] - counts['baseline']['total']
      shape = _config(row, base)
      paper = (f'{PAPER[row][0] / 1e6:.1f} M'
               if base == 'default' and row in PAPER else '')
      print(f"| {base} ({shape.model.backbone}/{shape.model.backbone_width}, "
            f"{shape.data.frame_size}px) | {NAMES[row]} | {_m(c['total'])} | "
            f"{_m(c['backbone'])} | {_m(c['sampler'])} ({_m(c['scan'])}) | "
            f"{_m(c['alignment'])} | {_m(c['head'])} | {_m(extra)} | "
            f'{paper} |')

  for base in FLAGS.flops_bases:
    print_compiled_costs(base)
  if not FLAGS.time:
    return
  results = {row: measure(_config(row, FLAGS.time_base))
             for row in FLAGS.rows}
  base = results['baseline']
  config = _config('full', FLAGS.time_base)
  print(f'\n## Time and memory: {FLAGS.time_base} config, '
        f'{config.data.way}-way {config.data.shot}-shot '
        f'{config.data.query}-query, '
        f'T={config.model.frames}, M={config.data.dense_frames}, '
        f'{config.data.frame_size}px; {jax.devices()[0].device_kind}, '
        '1 device\n')
  print('| model | eval s/episode | x ProtoNet | paper eval x ProtoNet '
        '(Fig. 22) | train s/episode | x ProtoNet | additions\' share of '
        'train step | train-step temp MB | x ProtoNet | eval-step temp MB | '
        'x ProtoNet |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  paper_base = PAPER['baseline'][1]
  for row in FLAGS.rows:
    r = results[row]
    share = 1 - base['train'] / r['train']
    paper = f'{PAPER[row][1] / paper_base:.2f}' if row in PAPER else ''
    print(f"| {NAMES[row]} | {r['eval']:.4f} | {r['eval'] / base['eval']:.2f} "
          f"| {paper} | {r['train']:.4f} | {r['train'] / base['train']:.2f} | "
          f"{'-' if row == 'baseline' else f'{100 * share:.0f}%'} | "
          f"{r['train_temp'] / 2**20:.1f} | "
          f"{r['train_temp'] / base['train_temp']:.2f} | "
          f"{r['eval_temp'] / 2**20:.1f} | "
          f"{r['eval_temp'] / base['eval_temp']:.2f} |")
  print(f"\nTrain steps hold {base['train_episodes']} episodes, eval steps "
        f"{base['eval_episodes']}; temp MB is per step; {FLAGS.steps} timed "
        f'train steps and {FLAGS.eval_batches} eval batches per model.')


if __name__ == '__main__':
  app.run(main)
