"""ActivityNet, 100 classes of 70 videos, 64/12/24 (paper 4.3.2).

Paper results (Table 2, ActivityNet; 5-way, accuracy %, 10,000 test episodes),
one command per cell; $DATA holds the frames (or videos, then add
--config.data.source=videos), $WEIGHTS the converted ImageNet weights (README,
"Real datasets"):

VIM, 5-way 1-shot (paper: 74.7):

  python main.py --config=configs/activitynet.py:shot=1 \
      --workdir=runs/activitynet_vim_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

VIM, 5-way 3-shot (paper: 79.3):

  python main.py --config=configs/activitynet.py:shot=3 \
      --workdir=runs/activitynet_vim_3shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

VIM, 5-way 5-shot (paper: 89.6):

  python main.py --config=configs/activitynet.py:shot=5 \
      --workdir=runs/activitynet_vim_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

ProtoNet*, 5-way 1-shot (paper: 66.5):

  python main.py --config=configs/activitynet.py:shot=1,method=protonet \
      --workdir=runs/activitynet_protonet_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

ProtoNet*, 5-way 3-shot (paper: 73.4):

  python main.py --config=configs/activitynet.py:shot=3,method=protonet \
      --workdir=runs/activitynet_protonet_3shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

ProtoNet*, 5-way 5-shot (paper: 80.3):

  python main.py --config=configs/activitynet.py:shot=5,method=protonet \
      --workdir=runs/activitynet_protonet_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('activitynet_VIM', arg)
