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

Table 3 (VIM extended to other methods): each method's metric alone
(method=otam, trx, hyrsm: ProtoNet* with that metric; paper: the method's
result in Table 1, from which Table 3 measures its gains) and
behind full VIM (method=otam_vim, trx_vim, hyrsm_vim; paper: Table 3).

OTAM, 5-way 1-shot (paper: 73.0):

  python main.py --config=configs/kinetics100.py:shot=1,method=otam \
      --workdir=runs/kinetics100_otam_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM, 5-way 5-shot (paper: 85.8):

  python main.py --config=configs/kinetics100.py:shot=5,method=otam \
      --workdir=runs/kinetics100_otam_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM + VIM, 5-way 1-shot (paper: 74.3):

  python main.py --config=configs/kinetics100.py:shot=1,method=otam_vim \
      --workdir=runs/kinetics100_otam_vim_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

OTAM + VIM, 5-way 5-shot (paper: 86.1):

  python main.py --config=configs/kinetics100.py:shot=5,method=otam_vim \
      --workdir=runs/kinetics100_otam_vim_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX, 5-way 1-shot (paper: 63.6):

  python main.py --config=configs/kinetics100.py:shot=1,method=trx \
      --workdir=runs/kinetics100_trx_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX, 5-way 5-shot (paper: 85.9):

  python main.py --config=configs/kinetics100.py:shot=5,method=trx \
      --workdir=runs/kinetics100_trx_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX + VIM, 5-way 1-shot (paper: 68.8):

  python main.py --config=configs/kinetics100.py:shot=1,method=trx_vim \
      --workdir=runs/kinetics100_trx_vim_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX + VIM, 5-way 5-shot (paper: 86.0):

  python main.py --config=configs/kinetics100.py:shot=5,method=trx_vim \
      --workdir=runs/kinetics100_trx_vim_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM, 5-way 1-shot (paper: 73.7):

  python main.py --config=configs/kinetics100.py:shot=1,method=hyrsm \
      --workdir=runs/kinetics100_hyrsm_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM, 5-way 5-shot (paper: 86.1):

  python main.py --config=configs/kinetics100.py:shot=5,method=hyrsm \
      --workdir=runs/kinetics100_hyrsm_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM + VIM, 5-way 1-shot (paper: 73.9):

  python main.py --config=configs/kinetics100.py:shot=1,method=hyrsm_vim \
      --workdir=runs/kinetics100_hyrsm_vim_1shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM + VIM, 5-way 5-shot (paper: 86.6):

  python main.py --config=configs/kinetics100.py:shot=5,method=hyrsm_vim \
      --workdir=runs/kinetics100_hyrsm_vim_5shot \
      --config.data.split_dir=../shared/splits/kinetics_CMN \
      --config.data.manual_dir=$DATA/kinetics100 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

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
