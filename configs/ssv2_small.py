"""Something-Something v2 small, CMN split (the SSv2 of Table 1).

64/12/24 classes, 6400/1200/2400 videos (paper 4.1; SSv2 with a dagger).

Paper results (Table 1, SSv2; 5-way, accuracy %, 10,000 test episodes),
one command per cell; $DATA holds the frames (or videos, then add
--config.data.source=videos), $WEIGHTS the converted ImageNet weights (README,
"Real datasets"):

VIM, 5-way 1-shot (paper: 40.8):

  python main.py --config=configs/ssv2_small.py:shot=1 \
      --workdir=runs/ssv2_small_vim_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

VIM, 5-way 5-shot (paper: 54.9):

  python main.py --config=configs/ssv2_small.py:shot=5 \
      --workdir=runs/ssv2_small_vim_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

ProtoNet*, 5-way 1-shot (paper: 34.2):

  python main.py --config=configs/ssv2_small.py:shot=1,method=protonet \
      --workdir=runs/ssv2_small_protonet_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

ProtoNet*, 5-way 5-shot (paper: 46.5):

  python main.py --config=configs/ssv2_small.py:shot=5,method=protonet \
      --workdir=runs/ssv2_small_protonet_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

Table 3 (VIM extended to other methods): each method's metric alone
(method=otam, trx, hyrsm: ProtoNet* with that metric; paper: the method's
result in Table 1, from which Table 3 measures its gains) and
behind full VIM (method=otam_vim, trx_vim, hyrsm_vim; paper: Table 3).

OTAM, 5-way 1-shot (paper: 36.4):

  python main.py --config=configs/ssv2_small.py:shot=1,method=otam \
      --workdir=runs/ssv2_small_otam_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM, 5-way 5-shot (paper: 48.0):

  python main.py --config=configs/ssv2_small.py:shot=5,method=otam \
      --workdir=runs/ssv2_small_otam_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

OTAM + VIM, 5-way 1-shot (paper: 38.9):

  python main.py --config=configs/ssv2_small.py:shot=1,method=otam_vim \
      --workdir=runs/ssv2_small_otam_vim_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

OTAM + VIM, 5-way 5-shot (paper: 51.4):

  python main.py --config=configs/ssv2_small.py:shot=5,method=otam_vim \
      --workdir=runs/ssv2_small_otam_vim_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX, 5-way 1-shot (paper: 36.0):

  python main.py --config=configs/ssv2_small.py:shot=1,method=trx \
      --workdir=runs/ssv2_small_trx_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX, 5-way 5-shot (paper: 59.1):

  python main.py --config=configs/ssv2_small.py:shot=5,method=trx \
      --workdir=runs/ssv2_small_trx_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

TRX + VIM, 5-way 1-shot (paper: 39.6):

  python main.py --config=configs/ssv2_small.py:shot=1,method=trx_vim \
      --workdir=runs/ssv2_small_trx_vim_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

TRX + VIM, 5-way 5-shot (paper: 58.0):

  python main.py --config=configs/ssv2_small.py:shot=5,method=trx_vim \
      --workdir=runs/ssv2_small_trx_vim_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM, 5-way 1-shot (paper: 40.6):

  python main.py --config=configs/ssv2_small.py:shot=1,method=hyrsm \
      --workdir=runs/ssv2_small_hyrsm_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM, 5-way 5-shot (paper: 56.1):

  python main.py --config=configs/ssv2_small.py:shot=5,method=hyrsm \
      --workdir=runs/ssv2_small_hyrsm_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

HyRSM + VIM, 5-way 1-shot (paper: 41.0):

  python main.py --config=configs/ssv2_small.py:shot=1,method=hyrsm_vim \
      --workdir=runs/ssv2_small_hyrsm_vim_1shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

HyRSM + VIM, 5-way 5-shot (paper: 56.8):

  python main.py --config=configs/ssv2_small.py:shot=5,method=hyrsm_vim \
      --workdir=runs/ssv2_small_hyrsm_vim_5shot \
      --config.data.split_dir=../shared/splits/ssv2_CMN \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

Horizontal flips are off (data.hflip=False): left and right are part of the
classes. SSv2 is flat on disk: $DATA/ssv2/<video_id>/*.jpg or <video_id>.webm.

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('ssv2_CMN', arg)
