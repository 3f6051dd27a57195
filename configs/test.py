"""A tiny configuration for tests: seconds per run on a CPU.

Run:
  python main.py --config=configs/test.py --workdir=/tmp/vim_test
"""
from configs import default


def get_config(arg=None):
  config = default.get_config(arg or 'way=3,shot=1,query=1')
  data = config.data
  data.procedural.num_classes = (5, 4, 4)
  data.procedural.videos_per_class = 4
  data.procedural.num_frames = 8
  data.procedural.frame_size = 24
  data.dense_frames = 6
  data.frame_size = 16
  data.test_crop_fraction = 1.0
  data.prefetch = 1

  config.model.backbone = 'resnet_tiny'
  config.model.backbone_width = 8
  config.model.frames = 4
  config.model.sampler.scan_size = 16
  config.model.sampler.num_samples = 16
  config.model.sampler.hidden = 16
  config.model.sampler.task_dim = 16
  config.model.sampler.scan_kwargs = dict(
      stages_repeats=(1, 1, 1), stages_out_channels=(8, 16, 16, 32, 64))
  config.model.alignment.localisation_hidden = 8
  config.model.alignment.offset_hidden = 8

  train = config.train
  train.cls_reduction = 'mean'
  train.num_steps = 4
  train.episodes_per_step = 4
  train.lr = 0.05
  train.lr_decay_every = 2
  train.sigma_decay_every = 2
  train.log_every = 1
  train.checkpoint_every = 2
  train.keep_checkpoints = 2
  train.eval_every = 2
  train.val_episodes = 4

  config.eval.test_episodes = 8
  config.eval.episodes_per_step = 4
  return config
