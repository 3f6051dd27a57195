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

Variants: append `,limit=50` or `,limit=20` to the config argument for the
limit test (Fig. 19), use `way=6` ... `way=10` for many-way 1-shot (Fig. 20);
every argument is described in configs/real.py.
"""
from configs import real


def get_config(arg=None):
  return real.make_config('hmdb_ARN', arg)
