"""Seconds per episode of the train step, the eval step and the input pipeline.

Prints a Markdown table; each row is a config (with overrides). The train-step
time of the first row is the baseline of the `x baseline` column, measured in
the same run; `pipeline headroom` is how many times faster the input pipeline
alone produces episodes than the train step consumes them (< 1: input-bound).
Each step's FLOPs are XLA's count of the compiled program
(`cost_analysis()`), so `TFLOP/s` is what the step achieved, and with
`--peak_tflops` (the device's peak at the row's dtype) the table adds the
model FLOP utilisation, achieved / peak.

  python benchmarks/step_time.py                      # test + synthetic configs
  python benchmarks/step_time.py --rows=synthetic,synthetic_sampler --steps=10
  python benchmarks/step_time.py --rows=paper_protonet,paper_vim \
      --peak_tflops=989                               # paper size (H100 bf16)

`benchmarks/accelerator.sh` runs the paper-size rows in float32 and bfloat16.
"""
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_FULL_VIM = {'model.sampler.enabled': True,
             'model.alignment.transform': True,
             'model.alignment.rearrange': True,
             'model.alignment.spatial': True}

# name -> (config module, config argument, overrides)
ROWS = {
    'test': ('test', None, {}),
    'synthetic': ('synthetic', None, {}),  # full VIM
    'synthetic_protonet': ('synthetic', None, {}),
    'synthetic_5shot': ('synthetic', 'shot=5', {}),
    # full VIM with the scan distillation on the selected dense frames
    'distill_selected': ('synthetic', None, {
        'train.scan_distill_frames': 'selected'}),
    'synthetic_ts': ('synthetic', None, {
        'model.sampler.enabled': True, 'model.sampler.spatial': False,
        'model.sampler.adaptive': False}),
    'synthetic_sampler': ('synthetic', None, {'model.sampler.enabled': True}),
    'synthetic_sampler_x0_5': ('synthetic', None, {
        'model.sampler.enabled': True, 'model.sampler.scan_kwargs': {}}),
    'synthetic_alignment': ('synthetic', None, {
        'model.alignment.transform': True, 'model.alignment.rearrange': True,
        'model.alignment.spatial': True}),
    # The paper's size (configs/default.py: ResNet-50 at 224 px, the 0.5x
    # ShuffleNetV2 scan net at 64 px, M = 20, T = 8, 5-way 1-shot, Q = 5).
    'paper_protonet': ('default', None, {}),
    'paper_vim': ('default', None, _FULL_VIM),
    'paper_protonet_bf16': ('default', None, {'model.dtype': 'bfloat16'}),
    'paper_vim_bf16': ('default', None, {**_FULL_VIM,
                                         'model.dtype': 'bfloat16'}),
}

flags.DEFINE_list('rows', ['test', 'synthetic'], f'Rows, from {sorted(ROWS)}.')
flags.DEFINE_integer('steps', 5, 'Timed train steps (after one warm-up step).')
flags.DEFINE_integer('eval_batches', 5, 'Timed eval batches.')
flags.DEFINE_integer('pipeline_batches', 10, 'Timed pipeline batches.')
flags.DEFINE_string('tfds_data_dir', None, 'TFDS data dir (default: TFDS).')
flags.DEFINE_float('peak_tflops', None, "The device's peak TFLOP/s at the "
                   "rows' dtype: adds model FLOP utilisation (MFU) columns.")
FLAGS = flags.FLAGS


def _config(name):
  import importlib  # pylint: disable=g-import-not-at-top
  module, arg, overrides = ROWS[name]
  config = importlib.import_module(f'configs.{module}').get_config(arg)
  if name.startswith('synthetic_'):  # ProtoNet plus the row's modules
    from configs import vim  # pylint: disable=g-import-not-at-top
    overrides = {**vim.MODULES_OFF, **overrides}
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  if FLAGS.tfds_data_dir:
    config.data.tfds_data_dir = FLAGS.tfds_data_dir
  # The episode stream ends at num_steps; timing needs more than a tiny
  # config's few steps (the step function does not depend on it).
  config.train.num_steps = 10**6
  return config


def _timed(fn, count):
  start = time.perf_counter()
  for _ in range(count):
    fn()
  return (time.perf_counter() - start) / count


def _compiled(step, *args):
  """(the compiled `step` for `args`, XLA's FLOPs of one call).

  The timed calls run this executable, so each step compiles once.
  """
  compiled = step.lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, float(cost['flops'])


def measure(name):
  """Seconds per episode for one row."""
  import jax  # pylint: disable=g-import-not-at-top
  from vim_jax import parallel  # pylint: disable=g-import-not-at-top
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  config = _config(name)
  runner = parallel.Runner(config.parallel, jax.devices()[:1])
  experiment = train.Experiment(config, runner)
  episodes = config.train.episodes_per_step

  # The input pipeline alone (decode, crop, batch).
  batches = experiment.train_batches(0)
  next(batches)
  pipeline = _timed(lambda: next(batches), FLAGS.pipeline_batches) / episodes

  # The train step on batches already in memory.
  batches = experiment.train_batches(0)
  cached = [next(batches) for _ in range(FLAGS.steps + 1)]
  state = runner.put_state(experiment.init_state())
  train_step, train_flops = _compiled(
      experiment._train_step, state, runner.put_batch(cached[0]))  # pylint: disable=protected-access
  train_flops /= episodes
  state, metrics = train_step(state, runner.put_batch(cached[0]))  # warm-up
  jax.block_until_ready(metrics)
  it = iter(cached[1:])

  def step():
    nonlocal state
    state, metrics = train_step(state, runner.put_batch(next(it)))
    jax.block_until_ready(metrics)
  train_time = _timed(step, FLAGS.steps) / episodes

  # The eval step (same model in inference mode) on test-split episodes.
  host_state = runner.get_state(state)
  variables = runner.put_state(
      {'params': host_state.params, 'batch_stats': host_state.batch_stats})
  eval_episodes = config.eval.episodes_per_step
  spec = train.episode_spec(config, 'test')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from input_pipeline import episodes as episodes_lib  # pylint: disable=g-import-not-at-top
  eval_batches = episodes_lib.episode_dataset(
      experiment.source('test'), spec, seed=0, split='test',
      indices=tf.data.Dataset.range(eval_episodes * (FLAGS.eval_batches + 1)),
      batch=eval_episodes).as_numpy_iterator()
  eval_cached = [runner.put_batch(b) for b in eval_batches]
  eval_step, eval_flops = _compiled(experiment._eval_step,  # pylint: disable=protected-access
                                    variables, eval_cached[0])
  eval_flops /= eval_episodes
  jax.block_until_ready(eval_step(variables, eval_cached[0]))  # warm-up
  eval_it = iter(eval_cached[1:])
  eval_time = _timed(lambda: jax.block_until_ready(
      eval_step(variables, next(eval_it))), FLAGS.eval_batches) / eval_episodes
  return dict(train=train_time, eval=eval_time, pipeline=pipeline,
              train_flops=train_flops, eval_flops=eval_flops,
              shape=f'{config.data.way}w{config.data.shot}s{config.data.query}q '
                    f'T={config.model.frames} {config.data.frame_size}px '
                    f'{config.model.backbone}/{config.model.backbone_width} '
                    f'{config.model.dtype}')


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  logging.set_verbosity(logging.WARNING)
  results = {name: measure(name) for name in FLAGS.rows}
  base = results[FLAGS.rows[0]]['train']
  print(f'\ndevice: {jax.devices()[0].device_kind}, 1 device; seconds per '
        f'episode\n')
  peak = FLAGS.peak_tflops
  mfu_head = ' train MFU | eval MFU |' if peak else ''
  print('| row | episode | train step s/ep | train ep/s | x baseline | '
        'eval ms/ep | train GFLOP/ep | eval GFLOP/ep | train TFLOP/s | '
        'eval TFLOP/s |' + mfu_head + ' pipeline s/ep | pipeline ep/s | '
        'pipeline headroom |')
  print('|---' * (13 + 2 * bool(peak)) + '|')
  for name, r in results.items():
    achieved = [r[f'{k}_flops'] / r[k] / 1e12 for k in ('train', 'eval')]
    mfu = ''.join(f' {100 * a / peak:.3g}% |' for a in achieved) if peak else ''
    print(f"| {name} | {r['shape']} | {r['train']:.4f} | {1 / r['train']:.2f} "
          f"| {r['train'] / base:.2f} | {1e3 * r['eval']:.1f} | "
          f"{r['train_flops'] / 1e9:.3g} | {r['eval_flops'] / 1e9:.3g} | "
          f"{achieved[0]:.3g} | {achieved[1]:.3g} |{mfu} "
          f"{r['pipeline']:.4f} | {1 / r['pipeline']:.1f} | "
          f"{r['train'] / r['pipeline']:.1f} |")


if __name__ == '__main__':
  app.run(main)
