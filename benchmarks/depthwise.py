"""The scan net's depthwise 3x3 convolutions: ours against XLA's grouped conv.

`vim_jax.ops.depthwise.depthwise_conv3x3` (nine shifted multiply-adds and a
hand-written VJP) against the baseline `lax.conv_general_dilated(...,
feature_group_count=C)` that `nn.Conv` lowers to, measured in the same run:
one row per depthwise layer shape of the scan network on one episode's
frames (V videos x M dense frames at scan_size), then the whole scan network
(forward + backward of the parameters) built both ways.

  python benchmarks/depthwise.py                      # configs/synthetic.py
  python benchmarks/depthwise.py --config=default     # the 0.5x network
"""
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_string('config', 'synthetic', 'A module of configs/.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement.')
FLAGS = flags.FLAGS


def _grouped(x, kernel, stride):
  """The baseline: XLA's grouped convolution (what nn.Conv lowers to)."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.lax.conv_general_dilated(
      x, kernel[:, :, None, :], (stride, stride), ((1, 1), (1, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=x.shape[-1])


def _seconds(fn, *args):
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn(*args))  # compile
  start = time.perf_counter()
  for _ in range(FLAGS.repeats):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / FLAGS.repeats


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import importlib  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from vim_jax.models import shufflenet  # pylint: disable=g-import-not-at-top
  from vim_jax.ops import depthwise  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f'configs.{FLAGS.config}').get_config()
  sampler = config.model.sampler
  d = config.data
  frames = d.way * (d.shot + d.query) * d.dense_frames
  size = sampler.scan_size
  scan = shufflenet.build_scan_network(sampler.scan_net).clone(
      **dict(sampler.get('scan_kwargs') or {}))
  x = jax.random.normal(jax.random.key(0), (frames, size, size, 3))
  variables = scan.init(jax.random.key(1), x[:1], train=False)

  # The depthwise layers' input shapes and strides, as the network calls them.
  layers = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, shufflenet.DepthwiseConv3x3):
      layers.append((tuple(args[0].shape), context.module.strides))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: scan.apply(v, x, train=False), variables)

  def replace_with_grouped(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, shufflenet.DepthwiseConv3x3):
      kernel = module.get_variable('params', 'kernel')[:, :, 0]
      return _grouped(args[0], kernel, module.strides)
    return next_fun(*args, **kwargs)

  print(f'\n{jax.devices()[0].device_kind}; configs/{FLAGS.config}.py scan '
        f'net on {frames} frames at {size} px; ms per call (forward + '
        f'backward: gradients of input and kernel)\n')
  print('| layer input | stride | grouped fwd | ours fwd | x faster | '
        'grouped fwd+bwd | ours fwd+bwd | x faster |')
  print('|---|---|---|---|---|---|---|---|')
  for shape, stride in dict.fromkeys(layers):  # distinct, in call order
    inputs = jax.random.normal(jax.random.key(2), shape)
    kernel = jax.random.normal(jax.random.key(3), (3, 3, shape[-1]))
    row = []
    for fn in (_grouped, depthwise.depthwise_conv3x3):
      fwd = jax.jit(lambda a, k, fn=fn: fn(a, k, stride))
      bwd = jax.jit(jax.grad(
          lambda a, k, fn=fn: jnp.sum(fn(a, k, stride) ** 2), argnums=(0, 1)))
      row.append((_seconds(fwd, inputs, kernel),
                  _seconds(bwd, inputs, kernel)))
    (gf, gb), (of, ob) = row
    print(f'| {shape} | {stride} | {gf * 1e3:.1f} | {of * 1e3:.1f} | '
          f'{gf / of:.1f} | {gb * 1e3:.1f} | {ob * 1e3:.1f} | {gb / ob:.1f} |')

  def loss(params, batch_stats, intercept):
    def apply():
      out, _ = scan.apply({'params': params, 'batch_stats': batch_stats}, x,
                          train=True, mutable=['batch_stats'])
      return jnp.mean(out ** 2)
    if intercept:
      with nn.intercept_methods(replace_with_grouped):
        return apply()
    return apply()

  times = {}
  for name, intercept in (('grouped', True), ('ours', False)):
    fn = jax.jit(jax.grad(lambda p, s, i=intercept: loss(p, s, i)))
    times[name] = _seconds(fn, variables['params'], variables['batch_stats'])
  print(f"\nwhole scan network, train-mode forward + backward: grouped "
        f"{times['grouped'] * 1e3:.0f} ms, ours {times['ours'] * 1e3:.0f} ms "
        f"({times['grouped'] / times['ours']:.1f}x faster)")


if __name__ == '__main__':
  app.run(main)
