"""Entry point: train and evaluate, evaluate only, or predict, from a config.

--mode=train runs two phases: the pretraining phase (`train.pretraining_phase`:
with `config.pretrain.steps`, the weight folders of the backbone and the scan
net, pretrained on the training classes or reused from the cache), then
`train.train_and_evaluate` from those folders.

  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic
  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic --mode=eval
  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic \
      --mode=predict --support=my_classes/ --query=clip.mp4 --output=out.json
  python main.py --config=configs/default.py:shot=5 --config.train.lr=0.001 ...

Several processes run one job with --distributed; on a cluster that JAX
detects (TPU, Slurm, Open MPI) nothing else is needed, elsewhere each process
is told the coordinator (process 0's host and a free port), the number of
processes and its own id; every process uses the same --workdir:

  python main.py --config=... --workdir=/shared/run --distributed \
      --coordinator_address=10.0.0.1:8476 --num_processes=2 --process_id=0
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
                  'Call jax.distributed.initialize() first (multi-process '
                  'jobs). Settings not given by the three flags below come '
                  'from JAX_COORDINATOR_ADDRESS or the cluster (TPU, Slurm, '
                  'Open MPI).')
flags.DEFINE_string('coordinator_address', None,
                    '--distributed: host:port of the coordinator service, '
                    'which process 0 starts (the same for every process).')
flags.DEFINE_integer('num_processes', None,
                     '--distributed: processes in the job.')
flags.DEFINE_integer('process_id', None,
                     '--distributed: this process, 0..num_processes-1.')
config_flags.DEFINE_config_file('config', None, 'Config file (file.py:args).',
                                lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietLibraries(logging.logging.Filter):
  """Drops orbax's and TFDS's per-operation INFO lines; keeps their warnings."""

  def filter(self, record):
    return record.levelno >= logging.logging.WARNING or not any(
        lib in record.pathname for lib in ('/orbax/', '/tensorflow_datasets/'))


def _initialize_distributed():
  """`jax.distributed.initialize` with the coordinator flags that are set.

  Unset ones are left to JAX (environment variables, cluster detection).
  Processes on CPU exchange collectives (the gradient `pmean`, the
  evaluation's gather) through `jax_cpu_collectives_implementation`: without
  one, every step fails with "Multiprocess computations aren't implemented on
  the CPU backend". JAX 0.10 defaults it to 'gloo' (TCP, peers found through
  the coordinator); it is set here when unset so that a CPU job does not
  depend on that default, and an explicit choice ('mpi') is kept. It only
  configures the CPU client: GPU and TPU collectives are unaffected. It must
  be set before the first use of a device, like the initialisation itself.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if not jax.config.jax_cpu_collectives_implementation:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                             num_processes=FLAGS.num_processes,
                             process_id=FLAGS.process_id)


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
  coordinator_flags = ('coordinator_address', 'num_processes', 'process_id')
  if not FLAGS.distributed and any(FLAGS[name].present
                                   for name in coordinator_flags):
    raise app.UsageError(f'--{"/--".join(coordinator_flags)} go with '
                         '--distributed.')
  if (FLAGS.num_processes is not None and FLAGS.process_id is not None and
      not 0 <= FLAGS.process_id < FLAGS.num_processes):
    raise app.UsageError(
        f'--process_id={FLAGS.process_id} must be in 0..'
        f'{FLAGS.num_processes - 1} (--num_processes={FLAGS.num_processes}).')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  # TensorFlow feeds the input pipeline only: it must not take the GPU/TPU.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  tf.config.set_visible_devices([], 'TPU')
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed:
    _initialize_distributed()
  from vim_jax import train  # pylint: disable=g-import-not-at-top
  logging.info('JAX process %d/%d, devices: %s', jax.process_index(),
               jax.process_count(), jax.devices())
  if FLAGS.mode == 'train':
    from vim_jax import trainer  # pylint: disable=g-import-not-at-top
    try:
      config = train.pretraining_phase(FLAGS.config, FLAGS.workdir)
      train.train_and_evaluate(config, FLAGS.workdir)
    except trainer.Preempted as stop:
      logging.warning('%s', stop)
      sys.exit(trainer.PREEMPTED_EXIT_STATUS)
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
