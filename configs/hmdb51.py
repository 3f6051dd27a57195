"""HMDB51, ARN split: 31/10/10 classes, 4280/1194/1292 videos (paper 4.1).

Paper results (Table 1, HMDB51; 5-way, accuracy %, 10,000 test episodes),
one command per cell; $DATA holds the frames (or videos, then add
--config.data.source=videos), $WEIGHTS the converted ImageNet weights (README,
"Real datasets"):

VIM, 5-way 1-shot (paper: 61.1):

  python main.py --config=configs/hmdb51.py:shot=1 \
      --workdir=runs/hmdb51_vim_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

VIM, 5-way 5-shot (paper: 76.5):

  python main.py --config=configs/hmdb51.py:shot=5 \
      --workdir=runs/hmdb51_vim_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

ProtoNet*, 5-way 1-shot (paper: 54.2):

  python main.py --config=configs/hmdb51.py:shot=1,method=protonet \
      --workdir=runs/hmdb51_protonet_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

ProtoNet*, 5-way 5-shot (paper: 68.4):

  python main.py --config=configs/hmdb51.py:shot=5,method=protonet \
      --workdir=runs/hmdb51_protonet_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

Table 3 (VIM extended to other methods): each method's metric alone
(method=otam, trx, hyrsm: ProtoNet* with that metric; paper: the method's
result in Table 1, from which Table 3 measures its gains) and
behind full VIM (method=otam_vim, trx_vim, hyrsm_vim; paper: Table 3).

OTAM, 5-way 1-shot (paper: 54.5):

  python main.py --config=configs/hmdb51.py:shot=1,method=otam \
      --workdir=runs/hmdb51_otam_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM, 5-way 5-shot (paper: 66.1):

  python main.py --config=configs/hmdb51.py:shot=5,method=otam \
      --workdir=runs/hmdb51_otam_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM + VIM, 5-way 1-shot (paper: 59.3):

  python main.py --config=configs/hmdb51.py:shot=1,method=otam_vim \
      --workdir=runs/hmdb51_otam_vim_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

OTAM + VIM, 5-way 5-shot (paper: 74.2):

  python main.py --config=configs/hmdb51.py:shot=5,method=otam_vim \
      --workdir=runs/hmdb51_otam_vim_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX, 5-way 1-shot (paper: 53.1):

  python main.py --config=configs/hmdb51.py:shot=1,method=trx \
      --workdir=runs/hmdb51_trx_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX, 5-way 5-shot (paper: 75.6):

  python main.py --config=configs/hmdb51.py:shot=5,method=trx \
      --workdir=runs/hmdb51_trx_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX + VIM, 5-way 1-shot (paper: 55.5):

  python main.py --config=configs/hmdb51.py:shot=1,method=trx_vim \
      --workdir=runs/hmdb51_trx_vim_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX + VIM, 5-way 5-shot (paper: 76.3):

  python main.py --config=configs/hmdb51.py:shot=5,method=trx_vim \
      --workdir=runs/hmdb51_trx_vim_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM, 5-way 1-shot (paper: 60.3):

  python main.py --config=configs/hmdb51.py:shot=1,method=hyrsm \
      --workdir=runs/hmdb51_hyrsm_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM, 5-way 5-shot (paper: 76.0):

  python main.py --config=configs/hmdb51.py:shot=5,method=hyrsm \
      --workdir=runs/hmdb51_hyrsm_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM + VIM, 5-way 1-shot (paper: 60.9):

  python main.py --config=configs/hmdb51.py:shot=1,method=hyrsm_vim \
      --workdir=runs/hmdb51_hyrsm_vim_1shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM + VIM, 5-way 5-shot (paper: 75.6):

  python main.py --config=configs/hmdb51.py:shot=5,method=hyrsm_vim \
      --workdir=runs/hmdb51_hyrsm_vim_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('hmdb_ARN', arg)
