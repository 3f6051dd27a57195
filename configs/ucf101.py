"""UCF101, ARN split: 70/10/21 classes, 9154/1421/2745 videos (paper 4.1).

Paper results (Table 1, UCF101; 5-way, accuracy %, 10,000 test episodes),
one command per cell; $DATA holds the frames (or videos, then add
--config.data.source=videos), $WEIGHTS the converted ImageNet weights (README,
"Real datasets"):

VIM, 5-way 1-shot (paper: 86.2):

  python main.py --config=configs/ucf101.py:shot=1 \
      --workdir=runs/ucf101_vim_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

VIM, 5-way 5-shot (paper: 96.1):

  python main.py --config=configs/ucf101.py:shot=5 \
      --workdir=runs/ucf101_vim_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

ProtoNet*, 5-way 1-shot (paper: 78.7):

  python main.py --config=configs/ucf101.py:shot=1,method=protonet \
      --workdir=runs/ucf101_protonet_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

ProtoNet*, 5-way 5-shot (paper: 89.6):

  python main.py --config=configs/ucf101.py:shot=5,method=protonet \
      --workdir=runs/ucf101_protonet_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('ucf_ARN', arg)
