"""Something-Something v2 full, OTAM split.

64/12/24 classes, 67013/1926/2857 videos (SSv2* in the paper, 4.1).

The paper reports no result on this split (its SSv2 is `ssv2_small.py`).
$DATA holds the frames (or videos, then add --config.data.source=videos),
$WEIGHTS the converted ImageNet weights (README, "Real datasets"):

VIM, 5-way 1-shot:

  python main.py --config=configs/ssv2_full.py:shot=1 \
      --workdir=runs/ssv2_full_vim_1shot \
      --config.data.split_dir=../shared/splits/ssv2_OTAM \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

ProtoNet*, 5-way 1-shot:

  python main.py --config=configs/ssv2_full.py:shot=1,method=protonet \
      --workdir=runs/ssv2_full_protonet_1shot \
      --config.data.split_dir=../shared/splits/ssv2_OTAM \
      --config.data.manual_dir=$DATA/ssv2 \
      --config.model.backbone_weights=$WEIGHTS/resnet50

The other methods of Table 3 run here as on every split (method=otam, trx,
hyrsm, otam_vim, trx_vim, hyrsm_vim; configs/real.py), e.g.:

  python main.py --config=configs/ssv2_full.py:shot=1,method=otam_vim \
      --workdir=runs/ssv2_full_otam_vim_1shot \
      --config.data.split_dir=../shared/splits/ssv2_OTAM \
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
  return real.make_config('ssv2_OTAM', arg)
