"""Kinetics-100, CMN split: 64/12/24 classes of 100 videos (paper 4.1).

Paper results (Table 1, Kinetics; 5-way, accuracy %, 10,000 test episodes),
one command per cell; $DATA holds the frames (or videos, then add
--config.data.source=videos), $WEIGHTS the converted ImageNet weights (README,
"Real datasets"):

VIM, 5-way 1-shot (paper: 73.8):

  python main.py --config=configs/kinetics100.py:shot=1 \
      --workdir=runs/kinetics100_vim_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

VIM, 5-way 5-shot (paper: 87.1):

  python main.py --config=configs/kinetics100.py:shot=5 \
      --workdir=runs/kinetics100_vim_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

ProtoNet*, 5-way 1-shot (paper: 64.5):

  python main.py --config=configs/kinetics100.py:shot=1,method=protonet \
      --workdir=runs/kinetics100_protonet_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

ProtoNet*, 5-way 5-shot (paper: 77.9):

  python main.py --config=configs/kinetics100.py:shot=5,method=protonet \
      --workdir=runs/kinetics100_protonet_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

Cross-domain test (paper 4.4.11, Fig. 21, 1-shot): train on Kinetics, test on
another benchmark (VIM / ProtoNet in the paper: UCF 83.5 / 78.5, HMDB
58.1 / 53.9, SSv2 32.4 / 31.6), e.g. UCF101:

  python main.py --config=configs/kinetics100.py:shot=1,test_dataset=ucf_ARN \
      --workdir=runs/kinetics100_to_ucf101_vim_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5 \
      --config.data.test_split_dir=../shared/splits/ucf_ARN \
      --config.data.test_manual_dir=$DATA/ucf101

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('kinetics_CMN', arg)
