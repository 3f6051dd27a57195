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

Table 3 (VIM extended to other methods): each method's metric alone
(method=otam, trx, hyrsm: ProtoNet* with that metric; paper: the
method's result in Table 2, the paper's re-implementation, from which
Table 3 measures its gains) and behind full VIM (method=otam_vim, trx_vim,
hyrsm_vim; paper: Table 3; no 3-shot column there).

OTAM, 5-way 1-shot (paper: 69.9):

  python main.py --config=configs/activitynet.py:shot=1,method=otam \
      --workdir=runs/activitynet_otam_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM, 5-way 3-shot (paper: 75.9):

  python main.py --config=configs/activitynet.py:shot=3,method=otam \
      --workdir=runs/activitynet_otam_3shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM, 5-way 5-shot (paper: 85.2):

  python main.py --config=configs/activitynet.py:shot=5,method=otam \
      --workdir=runs/activitynet_otam_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM + VIM, 5-way 1-shot (paper: 75.4):

  python main.py --config=configs/activitynet.py:shot=1,method=otam_vim \
      --workdir=runs/activitynet_otam_vim_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

OTAM + VIM, 5-way 5-shot (paper: 87.7):

  python main.py --config=configs/activitynet.py:shot=5,method=otam_vim \
      --workdir=runs/activitynet_otam_vim_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX, 5-way 1-shot (paper: 69.9):

  python main.py --config=configs/activitynet.py:shot=1,method=trx \
      --workdir=runs/activitynet_trx_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX, 5-way 3-shot (paper: 77.6):

  python main.py --config=configs/activitynet.py:shot=3,method=trx \
      --workdir=runs/activitynet_trx_3shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX, 5-way 5-shot (paper: 88.7):

  python main.py --config=configs/activitynet.py:shot=5,method=trx \
      --workdir=runs/activitynet_trx_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX + VIM, 5-way 1-shot (paper: 72.2):

  python main.py --config=configs/activitynet.py:shot=1,method=trx_vim \
      --workdir=runs/activitynet_trx_vim_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX + VIM, 5-way 5-shot (paper: 89.9):

  python main.py --config=configs/activitynet.py:shot=5,method=trx_vim \
      --workdir=runs/activitynet_trx_vim_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM, 5-way 1-shot (paper: 72.1):

  python main.py --config=configs/activitynet.py:shot=1,method=hyrsm \
      --workdir=runs/activitynet_hyrsm_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM, 5-way 3-shot (paper: 78.0):

  python main.py --config=configs/activitynet.py:shot=3,method=hyrsm \
      --workdir=runs/activitynet_hyrsm_3shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM, 5-way 5-shot (paper: 87.5):

  python main.py --config=configs/activitynet.py:shot=5,method=hyrsm \
      --workdir=runs/activitynet_hyrsm_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM + VIM, 5-way 1-shot (paper: 73.8):

  python main.py --config=configs/activitynet.py:shot=1,method=hyrsm_vim \
      --workdir=runs/activitynet_hyrsm_vim_1shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM + VIM, 5-way 5-shot (paper: 88.1):

  python main.py --config=configs/activitynet.py:shot=5,method=hyrsm_vim \
      --workdir=runs/activitynet_hyrsm_vim_5shot \
      --config.data.split_dir=../shared/splits/activitynet_VIM \
      --config.data.manual_dir=$DATA/activitynet \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('activitynet_VIM', arg)
