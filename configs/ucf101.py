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

Table 3 (VIM extended to other methods): each method's metric alone
(method=otam, trx, hyrsm: ProtoNet* with that metric; paper: the method's
result in Table 1, from which Table 3 measures its gains) and
behind full VIM (method=otam_vim, trx_vim, hyrsm_vim; paper: Table 3).

OTAM, 5-way 1-shot (paper: 79.9):

  python main.py --config=configs/ucf101.py:shot=1,method=otam \
      --workdir=runs/ucf101_otam_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM, 5-way 5-shot (paper: 88.9):

  python main.py --config=configs/ucf101.py:shot=5,method=otam \
      --workdir=runs/ucf101_otam_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM + VIM, 5-way 1-shot (paper: 83.6):

  python main.py --config=configs/ucf101.py:shot=1,method=otam_vim \
      --workdir=runs/ucf101_otam_vim_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

OTAM + VIM, 5-way 5-shot (paper: 94.5):

  python main.py --config=configs/ucf101.py:shot=5,method=otam_vim \
      --workdir=runs/ucf101_otam_vim_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX, 5-way 1-shot (paper: 78.6):

  python main.py --config=configs/ucf101.py:shot=1,method=trx \
      --workdir=runs/ucf101_trx_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX, 5-way 5-shot (paper: 96.1):

  python main.py --config=configs/ucf101.py:shot=5,method=trx \
      --workdir=runs/ucf101_trx_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX + VIM, 5-way 1-shot (paper: 83.7):

  python main.py --config=configs/ucf101.py:shot=1,method=trx_vim \
      --workdir=runs/ucf101_trx_vim_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX + VIM, 5-way 5-shot (paper: 95.6):

  python main.py --config=configs/ucf101.py:shot=5,method=trx_vim \
      --workdir=runs/ucf101_trx_vim_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM, 5-way 1-shot (paper: 83.9):

  python main.py --config=configs/ucf101.py:shot=1,method=hyrsm \
      --workdir=runs/ucf101_hyrsm_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM, 5-way 5-shot (paper: 94.7):

  python main.py --config=configs/ucf101.py:shot=5,method=hyrsm \
      --workdir=runs/ucf101_hyrsm_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM + VIM, 5-way 1-shot (paper: 85.3):

  python main.py --config=configs/ucf101.py:shot=1,method=hyrsm_vim \
      --workdir=runs/ucf101_hyrsm_vim_1shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM + VIM, 5-way 5-shot (paper: 95.2):

  python main.py --config=configs/ucf101.py:shot=5,method=hyrsm_vim \
      --workdir=runs/ucf101_hyrsm_vim_5shot \
      --config.data.split_dir=../shared/splits/ucf_ARN \
      --config.data.manual_dir=$DATA/ucf101 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('ucf_ARN', arg)
