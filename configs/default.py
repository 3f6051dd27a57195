"""Default configuration: the paper's protocol (section 4.2) on the procedural data.

Paper symbols and their fields: N = data.way, K = data.shot, Q = data.query,
M = data.dense_frames, T = model.frames, mu1 = train.mu1, mu2 = train.mu2,
sigma = train.sigma (with its decay fields).

Run:
  python main.py --config=configs/default.py --workdir=/tmp/vim_default

Arguments after a colon set the episode shape, e.g. `configs/default.py:shot=5`
or `configs/default.py:way=5,shot=5,query=3`.
"""
import ml_collections


def parse_arg(arg, **defaults):
  """Parses 'key=value,key=value' into a dict, cast to the defaults' types."""
  parsed = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, sep, value = item.partition('=')
    if not sep or key not in defaults:
      raise ValueError(
          f'Config argument {item!r}: expected key=value with key in '
          f'{sorted(defaults)}.')
    kind = type(defaults[key])
    if kind is bool:
      parsed[key] = value.lower() in ('1', 'true', 'yes')
    else:
      parsed[key] = kind(value)
  return parsed


def get_config(arg=None):
  """The full-size configuration (ResNet-50, 224x224, 10,000 test episodes)."""
  args = parse_arg(arg, way=5, shot=1, query=5)
  config = ml_collections.ConfigDict()
  config.seed = 0
  # 'shard_map': jit(shard_map) over a ('data',) mesh; 'pmap': jax.pmap.
  config.parallel = 'shard_map'

  config.data = data = ml_collections.ConfigDict()
  data.dataset = 'procedural'
  # TFDS data_dir; None means TFDS's default (~/tensorflow_datasets).
  data.tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  # Real datasets only: the folder of the user's videos or frames, the split
  # folder (e.g. ../shared/splits/ucf_ARN) and whether it holds frames or videos.
  data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  data.split_dir = ml_collections.FieldReference(None, field_type=str)
  data.source = 'frames'
  data.procedural = ml_collections.ConfigDict(dict(
      num_classes=(64, 12, 24), videos_per_class=30, num_frames=32,
      frame_size=64, seed=0))
  data.way = args['way']  # N
  data.shot = args['shot']  # K
  data.query = args['query']  # Q, per class
  data.dense_frames = 20  # M: frames the sampler scans; = T without a sampler
  data.frame_size = 224  # backbone input (and stored-frame crop) size
  data.train_crop_scale = (0.8, 1.0)  # side of the random crop, fraction of the short side
  data.test_crop_fraction = 0.875  # centre crop at test time
  data.hflip = True  # never for SSv2 (direction is the label there)
  data.prefetch = 2
  # Real datasets only (see configs/real.py). Build options of the TFDS builder
  # (`input_pipeline/real_datasets.py`); each choice is prepared once into its
  # own folder: frames kept per video (uniformly subsampled; 0 = all), short
  # side of the stored frames (0 = as is), JPEG quality, reading threads.
  data.max_frames = 64
  data.resize_short_side = 128
  data.jpeg_quality = 90
  data.build_workers = 4
  # Limit test (paper 4.4.8, Fig. 19): train on at most this many videos per
  # training class (0 = all), the same ones for every method and run: a fixed
  # permutation per class from `limit_seed`, so limit=20 is inside limit=50.
  data.limit = 0
  data.limit_seed = 0
  # Cross-domain test (paper 4.4.11, Fig. 21): the test split comes from this
  # builder config (e.g. 'ucf_ARN') with its own split folder and manual folder;
  # training and validation stay on `dataset`. None: test on `dataset`.
  data.test_dataset = ml_collections.FieldReference(None, field_type=str)
  data.test_split_dir = ml_collections.FieldReference(None, field_type=str)
  data.test_manual_dir = ml_collections.FieldReference(None, field_type=str)
  # None: `source`.
  data.test_source = ml_collections.FieldReference(None, field_type=str)

  config.model = model = ml_collections.ConfigDict()
  model.backbone = 'resnet50'
  model.backbone_width = 64  # channels of the first stage (64 = standard)
  model.frames = 8  # T
  # Eq. 22 uses exp(-d); a scale s gives exp(-s d). 1.0 is the paper's.
  model.logit_scale = 1.0
  model.dtype = 'float32'
  # Pretrained weights (vim_jax/weights/load.py): folders written by
  # `python -m vim_jax.weights.convert`; None = random initialisation.
  model.backbone_weights = ml_collections.FieldReference(None, field_type=str)
  model.scan_weights = ml_collections.FieldReference(None, field_type=str)
  # Backbone variant and input convention; they must match the weights:
  # torchvision (stride_in_1x1=False, bn_epsilon=1e-5, 'imagenet': RGB minus
  # mean over std) or Keras ResNet50 (True, 1.001e-5, 'caffe': BGR minus mean).
  model.stride_in_1x1 = False
  model.bn_epsilon = 1e-5
  model.normalisation = 'imagenet'

  # The metric: 'protonet' (frame-wise cosine to class prototypes, Eq. 23),
  # or the heads of OTAM, TRX and HyRSM (vim_jax/models/heads.py; alone, or
  # behind the alignment on its aligned videos, Table 3), with
  # `head_kwargs` overriding the head's fields.
  model.head = 'protonet'
  model.head_kwargs = ml_collections.ConfigDict()

  # Video sampler (paper 3.3). Off: T frames at the segment centres (ProtoNet).
  # Every `test_*` switch that is None follows its training switch; set it to
  # evaluate without (or with) a module (test-time isolation, Table 17).
  model.sampler = sampler = ml_collections.ConfigDict()
  sampler.enabled = False
  sampler.method = 'vim'  # 'vim' | 'mgsampler' (Table 11) | 'uniform'
  sampler.temporal = True  # TS
  sampler.spatial = True  # SA
  sampler.adaptive = True  # task-adaptive learner
  sampler.test_temporal = ml_collections.FieldReference(None, field_type=bool)
  sampler.test_spatial = ml_collections.FieldReference(None, field_type=bool)
  sampler.test_adaptive = ml_collections.FieldReference(None, field_type=bool)
  sampler.scan_net = 'shufflenet_v2_x0_5'
  sampler.scan_size = 64  # frames are scanned at this size
  sampler.num_samples = 500  # perturbed top-k noise draws (n)
  # Training forward of TS: False, the smoothed indicators of Eq. 5 (the
  # paper; frames with close scores are blended); True, the hard top-k that
  # evaluation uses, with Eq. 6's gradient (ops.straight_through_topk).
  sampler.straight_through = False
  # Whether TS, SA and the task learner read the scan maps behind a
  # stop-gradient, so that the scan net learns from the scan distillation
  # and L_intra only (vim_jax/models/sampler.py). False: the paper trains
  # the scan net end to end.
  sampler.detach_scan = False
  sampler.hidden = 128  # d, the evaluator's hidden width
  sampler.task_dim = 128  # size of the task feature f_t
  sampler.saliency_floor = 0.05  # uniform floor under the saliency profile
  # Whether train.uniform_prior_steps also starts SA at the identity warp.
  sampler.spatial_prior = False
  # Whether train.uniform_prior_steps mixes the uniform frames into TS's
  # ranking (False: TS selects by its own scores from the first step, while
  # SA keeps its prior if `spatial_prior`).
  sampler.temporal_prior = True
  # Eq. 1's position embedding in TS's evaluator (its scale learned from 0).
  sampler.position_embedding = True
  # ShuffleNetV2 fields overriding `scan_net`'s (tests use a tiny scan net).
  sampler.scan_kwargs = ml_collections.ConfigDict()

  # Action alignment (paper 3.4). TC = TT (transform) + TR (rearrangement).
  model.alignment = alignment = ml_collections.ConfigDict()
  alignment.transform = False  # TT
  alignment.rearrange = False  # TR
  alignment.spatial = False  # SC
  alignment.order = 'temporal_first'  # or 'spatial_first' (Table 14)
  alignment.test_transform = ml_collections.FieldReference(None, field_type=bool)
  alignment.test_rearrange = ml_collections.FieldReference(None, field_type=bool)
  alignment.test_spatial = ml_collections.FieldReference(None, field_type=bool)
  alignment.channels = 0  # 0: keep the backbone's; else a 1x1 reduction first
  alignment.max_shift = 0.5  # SC offsets in units of the map side (tanh * this)
  alignment.perturbations = 4  # SC offset perturbations averaged in training
  alignment.perturbation_scale = 0.1  # their std, in units of the map side
  alignment.locality = 1.0  # TR: initial beta of the prior -beta (t - s)^2; 0: off
  alignment.localisation_hidden = 64  # width of TT's localisation net
  alignment.max_warp = 0.5  # TT bounds: |a - 1| <= this, |b| <= this
  alignment.offset_hidden = 64  # width of SC's offset predictor

  config.train = train = ml_collections.ConfigDict()
  # One step = one update on `episodes_per_step` episodes spread over devices.
  train.num_steps = 15_000 * 200 // 16
  train.episodes_per_step = 16
  train.lr = 0.01
  train.lr_decay = 0.9  # multiply the lr by this ...
  train.lr_decay_every = 5000 * 200 // 16  # ... every this many steps
  train.momentum = 0.9  # the paper says "SGD"; momentum is our choice
  train.weight_decay = 5e-4
  train.grad_clip_norm = 0.0  # clip gradients to this global norm; 0: off
  # Per-module learning rates: 'PATH=SCALE,...' multiplies the updates of the
  # parameters at or under each '/'-joined path (e.g.
  # 'sampler/evaluator_w1=0.1'); '' (the paper): one lr for all.
  train.lr_scales = ''
  train.sigma = 0.1  # perturbed top-k noise scale
  train.sigma_decay = 0.8
  train.sigma_decay_every = 2000 * 200 // 16
  train.sigma_min = 0.0
  # TS's uniform prior falls from 1 to 0 over these steps (0: none; see
  # vim_jax/models/sampler.py). For training from scratch.
  train.uniform_prior_steps = 0
  # L_cls over an episode's queries (vim_jax/losses.py): 'sum' is the
  # authors' code, where the MI terms are means, so mu1 and mu2 weigh them
  # against L_cls as the paper's Table 16 does; 'mean' divides L_cls (and
  # its gradient) by V_q, and with it the step size the lr gives it.
  train.cls_reduction = 'sum'
  train.mu1 = 0.5  # weight of L_intra
  train.mu2 = 1.0  # weight of L_inter
  # Multiplies mu1 and mu2 (vim_jax/losses.py `term_weight`): with
  # cls_reduction='mean', 1 / (N Q) weighs the MI terms as 'sum' does.
  train.mi_weight_scale = 1.0
  # Weight of the scan net's distillation from the backbone (not in the
  # paper; vim_jax/losses.py `scan_distillation`).
  train.scan_distill_weight = 0.0
  # Whose scan features it pairs with the backbone's: 'selected' (the
  # selected dense frames before SA, from the scan of all M frames) or
  # 'amplified' (the frames the backbone sees, the amplified ones scanned
  # again, as L_intra's are: only these T frames then need the scan net's
  # backward, and with model.sampler.detach_scan the M-frame scan none).
  train.scan_distill_frames = 'selected'
  # L_inter's estimator (vim_jax/losses.py): 'features' (the authors' code:
  # KL of the query frames' channel distributions after the alignment from
  # before it, minimised) or 'prediction' (VSD on class distributions:
  # CE - beta KL(p_unaligned || p_aligned), beta = inter_kl_weight).
  train.inter_estimator = 'features'
  train.inter_temperature = 1.0  # of the 'features' channel softmaxes
  train.inter_kl_weight = 1.0
  # What L_inter's gradient reaches (`few_shot.INTER_GRADS`): 'all' (the
  # alignment and the backbone under it) or 'alignment' (the alignment's own
  # parameters only; L_cls alone trains the backbone).
  train.inter_grad = 'all'
  # Also log each weighted loss term's gradient norm in each module (one
  # more backward pass per term; vim_jax/steps.py `train_step`).
  train.term_grad_norms = False
  # Trace this many training steps with jax.profiler into WORKDIR/profile
  # (from the run's second step; 0: off).
  train.profile_steps = 0
  train.log_every = 50
  train.checkpoint_every = 1000
  train.keep_checkpoints = 3
  train.eval_every = 2000  # validation (val split) for model selection
  train.val_episodes = 500

  # Pretraining of the backbone (and the scan net) as ProtoNets on the
  # training split before the few-shot model is trained, a stand-in for
  # ImageNet weights where there are none (vim_jax/weights/pretrain.py). It
  # uses the train fields' optimiser and episodes; 0 steps: off. The folders
  # are cached under cache_dir (None: <tfds data_dir>/vim_jax_pretrained).
  config.pretrain = pretrain = ml_collections.ConfigDict()
  pretrain.steps = 0
  pretrain.seed = 100  # its training episodes: this seed's stream
  pretrain.val_episodes = 100  # validation episodes it reports
  pretrain.cache_dir = ml_collections.FieldReference(None, field_type=str)

  config.eval = ev = ml_collections.ConfigDict()
  ev.test_episodes = 10_000
  ev.episodes_per_step = 16
  ev.seed = 1  # the fixed test episodes are episodes 0..n-1 of this seed
  # Which checkpoint --mode=eval and the final test use: 'best' (highest
  # validation accuracy; if unreadable, the closest readable state, named in
  # the log and test_results.json), 'latest', or a step number as a string
  # (unreadable, these two are errors).
  ev.checkpoint = 'best'
  return config
