"""The paper's protocol (4.1-4.2) on a real benchmark, for the dataset configs.

`configs/ucf101.py`, `hmdb51.py`, `kinetics100.py`, `ssv2_small.py`,
`ssv2_full.py` and `activitynet.py` are this function with their dataset;
their docstrings hold the command of each Table 1 / Table 2 cell. Directly:

  python main.py --config=configs/real.py:dataset=hmdb_ARN,shot=5 \
      --workdir=runs/hmdb_vim_5shot \
      --config.data.split_dir=../shared/splits/hmdb_ARN \
      --config.data.manual_dir=$DATA/hmdb51 \
      --config.model.backbone_weights=$WEIGHTS/resnet50 \
      --config.model.scan_weights=$WEIGHTS/shufflenet_v2_x0_5

Arguments (`file.py:key=value,...`):
  way, shot, query: N, K, Q (5, 1, 5). way=6..10 with shot=1 is the many-way
    test (paper 4.4.9, Fig. 20).
  limit: training videos per class (paper 4.4.8, Fig. 19: 50 or 20; 0 = all,
    the standard split). The same videos for every method and run.
  test_dataset: cross-domain test (paper 4.4.11, Fig. 21): train (and
    validate) on this dataset, test on the split of another builder config,
    e.g. `kinetics100.py:test_dataset=ucf_ARN`; then also pass
    --config.data.test_split_dir and --config.data.test_manual_dir.
  method: 'vim' (default: the full model, sampler with TS, SA and the
    task-adaptive learner on M=20 dense frames, alignment with TT, TR and SC,
    L_intra and L_inter) or 'protonet' (the paper's ProtoNet* baseline: T=8
    frames at the segment centres, frame-wise cosine metric, no VIM module);
    'otam', 'trx', 'hyrsm': ProtoNet* with that method's metric in place of
    the cosine (vim_jax/models/heads.py); 'otam_vim', 'trx_vim',
    'hyrsm_vim': full VIM with that metric (Table 3). The heads train under
    this protocol (SGD, the schedule below), not their papers' own recipes.

Fixed here (paper 4.2): ImageNet ResNet-50 at 224x224, M=20, T=8, SGD lr 0.01
x 0.9 every 5000 'epochs' of 200 episodes, sigma 0.1 x 0.8 every 2000,
mu1=0.5, mu2=1, 15,000 epochs, 10,000 test episodes (all from
`configs/default.py`); frames stored at 256 px short side (the 224 test crop
is 0.875 of it) and at most 64 per video; no horizontal flip on SSv2.

Needed on the command line: --config.data.split_dir (the split folder, e.g.
../shared/splits/ucf_ARN) and --config.data.manual_dir (frames, or videos with
--config.data.source=videos); for the paper's numbers also
--config.model.backbone_weights and --config.model.scan_weights (folders from
`python -m vim_jax.weights.convert`).
"""
from configs import default
from input_pipeline import real_datasets

# method -> (config.model.head, whether VIM's modules are on).
METHODS = {
    'vim': ('protonet', True), 'protonet': ('protonet', False),
    'otam': ('otam', False), 'trx': ('trx', False), 'hyrsm': ('hyrsm', False),
    'otam_vim': ('otam', True), 'trx_vim': ('trx', True),
    'hyrsm_vim': ('hyrsm', True),
}


def make_config(dataset: str, arg=None):
  """The protocol on `dataset` (a `real_datasets.DATASETS` key), with `arg`."""
  if dataset not in real_datasets.DATASETS:
    raise ValueError(f'dataset={dataset!r} is not one of '
                     f'{sorted(real_datasets.DATASETS)}.')
  args = default.parse_arg(arg, way=5, shot=1, query=5, limit=0,
                           test_dataset='', method='vim')
  config = default.get_config(
      f'way={args["way"]},shot={args["shot"]},query={args["query"]}')

  data = config.data
  data.dataset = dataset
  # Direction is part of the SSv2 classes: no mirrored training videos.
  data.hflip = real_datasets.HORIZONTAL_FLIP_OK[dataset]
  data.resize_short_side = 256
  data.max_frames = 64
  data.limit = args['limit']
  if args['test_dataset']:
    if args['test_dataset'] not in real_datasets.DATASETS:
      raise ValueError(
          f'test_dataset={args["test_dataset"]!r} is not one of '
          f'{sorted(real_datasets.DATASETS)}.')
    data.test_dataset = args['test_dataset']

  model = config.model
  if args['method'] not in METHODS:
    raise ValueError(f'method={args["method"]!r} is not one of '
                     f'{tuple(METHODS)}.')
  model.head, vim = METHODS[args['method']]
  if vim:
    model.sampler.enabled = True
    model.sampler.temporal = model.sampler.spatial = True
    model.sampler.adaptive = True
    model.alignment.transform = model.alignment.rearrange = True
    model.alignment.spatial = True
  return config


def get_config(arg=None):
  """`configs/real.py:dataset=<name>,...`; the other arguments as above."""
  items = [item for item in (arg or '').split(',') if item]
  dataset = 'ucf_ARN'
  rest = []
  for item in items:
    key, _, value = item.partition('=')
    if key == 'dataset':
      dataset = value
    else:
      rest.append(item)
  return make_config(dataset, ','.join(rest))
