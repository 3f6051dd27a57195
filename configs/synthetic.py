"""The embedded default: the procedural dataset on a laptop CPU in minutes.

Run (train, validate, test):
  python main.py --config=configs/synthetic.py --workdir=/tmp/vim_synthetic
  python main.py --config=configs/synthetic.py:shot=5 --workdir=/tmp/vim_synthetic_5shot
"""
from configs import default


def get_config(arg=None):
  config = default.get_config(arg)
  data = config.data
  data.procedural.num_classes = (64, 12, 24)
  data.procedural.videos_per_class = 20
  data.procedural.num_frames = 32
  data.procedural.frame_size = 64
  data.dense_frames = 16
  data.frame_size = 56
  data.test_crop_fraction = 1.0
  data.train_crop_scale = (0.85, 1.0)

  config.model.backbone = 'resnet18'
  config.model.backbone_width = 16
  config.model.frames = 8

  train = config.train
  train.num_steps = 600
  train.episodes_per_step = 4
  train.lr = 0.05
  train.lr_decay_every = 200
  train.lr_decay = 0.5
  train.sigma_decay_every = 200
  train.log_every = 50
  train.checkpoint_every = 200
  train.eval_every = 200
  train.val_episodes = 100

  config.eval.test_episodes = 1000
  config.eval.episodes_per_step = 8
  return config
