"""Entry point: train and evaluate, evaluate only, or predict, from a config.

  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic
  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic --mode=eval
  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic \
      --mode=predict --support=my_classes/ --query=clip.mp4 --output=out.json
  python main.py --config=configs/default.py:shot=5 --config.train.lr=0.001 ...
"""
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Checkpoints, summaries and results go here.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'predict'],
                  'train: train (resuming if possible), validate and test; '
                  'eval: test a checkpoint of --workdir (config.eval.checkpoint); '
                  'predict: classify --query videos against --support with it.')
flags.DEFINE_string('support', None,
                    'predict: a folder with one folder per class, named for '
                    'the class, holding its example videos or frame folders.')
flags.DEFINE_multi_string('query', None,
                          'predict: a video file, a frame folder, or a folder '
                          'of them (repeatable).')
flags.DEFINE_string('output', None, 'predict: write the results to this JSON.')
flags.DEFINE_string('figures', None,
                    'predict: one PNG per query (sampler, alignment) here.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() first (multi-host jobs).')
config_flags.DEFINE_config_file('config', None, 'Config file (file.py:args).',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries(logging.logging.Filter):
  """Drops orbax's and TFDS's per-operation INFO lines; keeps their warnings."""

  def filter(self, record):
    return record.levelno >= logging.logging.WARNING or not any(
        lib in record.pathname for lib in ('/orbax/', '/tensorflow_datasets/'))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  predict_flags = ('support', 'query', 'output', 'figures')
  if FLAGS.mode == 'predict':
    if not (FLAGS.support and FLAGS.query):
      raise app.UsageError('--mode=predict needs --support and --query.')
  elif any(FLAGS[name].present for name in predict_flags):
    raise app.UsageError(f'--{"/--".join(predict_flags)} go with '
                         '--mode=predict.')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # TensorFlow feeds the input pipeline only: it must not take the GPU/TPU.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed:
    jax.distributed.initialize()
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  logging.info('JAX process %d/%d, devices: %s', jax.process_index(),
               jax.process_count(), jax.devices())
  if FLAGS.mode == 'train':
    try:
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except train.Preempted as stop:
      logging.warning('%s', stop)
      sys.exit(train.PREEMPTED_EXIT_STATUS)
  elif FLAGS.mode == 'eval':
    train.evaluate_only(FLAGS.config, FLAGS.workdir)
  else:
    from vim_jax import predict  # pylint: disable=g-import-not-at-top
    report = predict.run(FLAGS.config, FLAGS.workdir, support_dir=FLAGS.support,
                         queries=FLAGS.query, output=FLAGS.output,
                         figures_dir=FLAGS.figures)
    print(predict.format_table(report))


if __name__ == '__main__':
  app.run(main)
