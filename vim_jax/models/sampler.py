"""Task-adaptive spatial-temporal video sampler (paper 3.3).

For each video of an episode the sampler scans its M dense frames with a light
scan network f (3.3.1), picks T of them with the temporal selector TS (3.3.2)
and amplifies the salient regions of each picked frame with the spatial
amplifier SA (3.3.3). The task-adaptive learner (3.3.4) generates the last
evaluator weight w2 of TS and the channel weights w_s of SA from the episode's
support set, so the sampling criterion changes from task to task.

  frames [V, M, H, W, 3] ─► resize to scan_size ─► f: maps [V, M, h, w, c]
     task learner (`task_adaptive`): support Avg(g) ─► w2, w_s     Eq. 12-14
     TS (`temporal_selector`): scores, top-k ─► I [V, T, M], X = I X_D  Eq. 1-6
     SA (`spatial_amplifier`): saliency of the selected maps ─► resample
          each selected frame at its inverse-CDF grid                Eq. 7-11

`VideoSampler` runs the scan and composes the three parts, each a module of
its own file with the choices it makes. The parts share the sampler's
parameter scope (`flax.linen.share_scope`), so the parameter tree is the one
below whatever module holds a parameter: checkpoints, pretrained scan
folders and `train.lr_scales` paths name parameters by these paths.

Choices the paper leaves open that concern the whole sampler (see DESIGN.md
2):

- Uniform prior (`train.uniform_prior_steps`, a curriculum the paper does
  not need: it starts from ImageNet weights). Trained from scratch, TS and
  the backbone wait on each other: with random scan features the selection
  is random, frame t of a query and frame t of a prototype are from
  unrelated moments, the frame-wise metric compares noise and the backbone
  does not learn (a TS-only model stayed at chance for its first 100
  steps); with an untrained backbone the classification loss has nothing to
  tell TS. So in training TS ranks `(1 - lambda) s + lambda u`, u the
  indicator of the uniform frames, lambda falling linearly from 1 to 0 over
  the first `uniform_prior_steps`: the model starts as uniform-sampling
  ProtoNet and TS takes over as the backbone learns. Evaluation never uses
  the prior. The prior alone leaves SA amplifying from step 0, from a
  saliency the backbone was not trained with (random, or from a scan net
  pretrained apart), so the start is not ProtoNet; `spatial_prior` gives SA
  the same curriculum: it amplifies by `(1 - lambda) a + lambda` (a
  constant map is the identity warp). With pretrained networks SA's prior
  made `sampler_intra` robust over training seeds on the procedural data,
  as measured on earlier code with TS's prior kept (mean gain over
  ProtoNet +9.2 +- 5.1 points over five seeds with it, +3.1 +- 18.3
  without; docs/results.md, machine 1). Its cost, measured
  (docs/results.md, Table 4): TS's direction is set in its first training
  steps, and the gradient that points it at the action comes through SA
  (choosing a frame also chooses the saliency by which SA amplifies it),
  which the spatial prior scales by `1 - lambda`; through the selected
  frames' pixels alone the direction is the seed's (without SA seeds 0
  and 1 went to the clip's ends in one step). Without any prior the
  `sampler` row stays on the action at every seed (67.0 % over seeds 0-2
  against 45.9 % with the prior), but full VIM turns off it at seeds 1
  and 2 (within 20 steps at seed 2), so configs/synthetic.py keeps the
  prior, for full VIM.
  `temporal_prior=False` keeps the prior out of TS's ranking and leaves SA
  its spatial prior; it does not help (seed 2 went to the clip's ends in
  one step).
- Scan-net distillation (`train.scan_distill_weight`, beyond the paper,
  whose scan net starts from ImageNet). From scratch nothing gives the scan
  net a signal that tells the actor from the clutter: its features, used as
  a ProtoNet, stay at chance (20.6-22.7 % at 5-way), so TS ranks frames by
  noise and finds the action in some seeds only. With the weight set, the
  scan net also learns to reproduce the backbone's angles between the
  selected frames (`losses.scan_distillation`; its features then reach
  26.9-28.9 %, docs/results.md); `aux['scan_frames']` feeds it, or with
  `train.scan_distill_frames='amplified'` the rescan of the frames the
  backbone saw (`aux['scan_amplified']`), so that both networks are
  compared on the same pixels once SA amplifies, and the scan of the M
  dense frames needs no backward pass under `detach_scan`.
- `detach_scan` (beyond the paper, which trains the scan net end to end
  from ImageNet weights): TS's evaluator, SA's saliency and the task
  encoder read the scan maps behind a stop-gradient, so the scan net learns
  only from the scan distillation and L_intra ('scan_frames', 'scan_dense'
  and 'scan_selected' keep their gradient). Measured on the procedural data
  (configs/synthetic.py, docs/results.md): L_cls's gradient on TS's scores
  has no preference for the action's frames (in-span minus out-of-span
  -0.003 +- 0.005 against a mean magnitude of 0.066), yet through the shared
  scan features it moved the scores by as much per step as the
  distillation did; once the uniform prior ended the selection walked off
  the action (frames in span 88 % -> 20 %) although the loss clearly
  prefers those frames (CE 1.11 forced in span, 1.62 forced out).
- method 'mgsampler' (Table 11, Zhi et al. 2021) and 'uniform' are baselines
  on their own: their temporal rule replaces TS and no SA or task adaptation
  is applied (Table 11's "ProtoNet + MGSampler"). For uniform frames with SA,
  use method 'vim' with temporal=False. `enabled=False` behaves like
  'uniform' (the caller normally skips the sampler then).
- Parameters are created for every part that the training or the test
  switches use, whichever mode `init` runs in, so a model initialised with
  train=False can be trained and evaluated with test-time isolation.

Randomness: `self.make_rng('sampler')` only when training (the task
feature's eps, then the perturbed top-k noise, one key per video). At
evaluation no rng is needed and the output is deterministic (hard top-k,
eps = 0). The scan network's BatchNorm follows `train` (batch statistics,
'batch_stats' mutable). The generated weights are also sown as
'intermediates' 'w2' and 'w_s'.

Parameter tree (under the module's name):

  scan/                      ShuffleNet V2 (`build_scan_network`)
  evaluator_w1               Dense(2c -> hidden), TS
  position_scale []          TS, scale of the position embedding (init 0;
                             absent with position_embedding=False)
  evaluator_w2 [hidden, 1]   TS's w2 without adaptation (the learner's)
  saliency_w_s [c]           SA's w_s without adaptation (the learner's)
  task_encoder/dense_{0,1}   with adaptation (TS or SA)
  generator_t                Dense(task_dim -> hidden), with adaptation and TS
  generator_s                Dense(task_dim -> c), with adaptation and SA
"""
from typing import Any, Mapping, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vim_jax.models import shufflenet
from vim_jax.models import spatial_amplifier
from vim_jax.models import switches
from vim_jax.models import task_adaptive
from vim_jax.models import temporal_selector

Dtype = Any
METHODS = ('vim', 'mgsampler', 'uniform')


def _resize(frames, size):
  """[B, H, W, 3] -> [B, size, size, 3], bilinear (as is at that size)."""
  if frames.shape[1:3] == (size, size):
    return frames
  return jax.image.resize(frames, (frames.shape[0], size, size, 3),
                          'bilinear')


class _Units(NamedTuple):
  """Which parameterised units of the sampler run (`VideoSampler._units`)."""
  w1: bool  # evaluator_w1 and position_scale (TS)
  encoder: bool  # task_encoder
  gen_t: bool  # generator_t
  gen_s: bool  # generator_s
  w2: bool  # evaluator_w2 (TS without adaptation)
  w_s: bool  # saliency_w_s (SA without adaptation)


class _Scan(NamedTuple):
  """The scan of one episode's dense frames (3.3.1).

  Attributes:
    net: the scan network f (also rescans the amplified frames).
    maps: [V, M, h, w, c] float32 maps as TS, SA and the task learner read
      them: behind a stop-gradient with `detach_scan`.
    pooled: [V, M, c] Avg(f(X_i)) of every dense frame, with its gradient.
    dense: [V, c] Avg(g_X) of every video, with its gradient.
    read: [V, M, c] and read_video [V, c]: `pooled` and `dense` as TS and
      the task learner read them (behind a stop-gradient with `detach_scan`).
  """
  net: nn.Module
  maps: jax.Array
  pooled: jax.Array
  dense: jax.Array
  read: jax.Array
  read_video: jax.Array


class VideoSampler(nn.Module):
  """The task-adaptive spatial-temporal video sampler of one episode.

  `_scan` is 3.3.1 (video scanning) and `_rescan` scans the amplified
  frames again for L_intra; `__call__` runs the task-adaptive learner
  (3.3.4, first: it makes TS's and SA's weights), TS (3.3.2) and SA
  (3.3.3), each a submodule in the sampler's own parameter scope.

  The fields are `config.model.sampler`'s of the same names (documented in
  configs/default.py; `vim_jax.models.build.sampler` makes one from it), and:

  Attributes:
    frames: T, frames selected per video.
    scan_kwargs: `ShuffleNetV2` fields that override the network `scan_net`
      names, e.g. a tiny one for tests.
    dtype: computation dtype of the scan network and of the output frames.
    param_dtype: parameter dtype.
  """
  frames: int
  method: str = 'vim'
  temporal: bool = True
  spatial: bool = True
  adaptive: bool = True
  test_temporal: Optional[bool] = None
  test_spatial: Optional[bool] = None
  test_adaptive: Optional[bool] = None
  scan_net: str = 'shufflenet_v2_x0_5'
  scan_size: int = 64
  scan_kwargs: Optional[Mapping[str, Any]] = None
  num_samples: int = 500
  straight_through: bool = False
  detach_scan: bool = False
  hidden: int = 128
  task_dim: int = 128
  saliency_floor: float = 0.05
  spatial_prior: bool = False
  temporal_prior: bool = True
  position_embedding: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f'config.model.sampler.method={self.method!r} is not '
                       f'one of {METHODS}.')
    super().__post_init__()

  def switches(self, train: bool):
    """(temporal, spatial, adaptive) in force for this mode."""
    if self.method != 'vim':
      return False, False, False
    return tuple(switches.in_force(self, name, train)
                 for name in ('temporal', 'spatial', 'adaptive'))

  def _units(self, train: bool) -> _Units:
    """The parameterised units that run in this mode.

    A unit gets parameters when the training or the test switches use it,
    whichever mode `init` runs in; at apply only the units in force run.
    """
    in_force = self.switches(train)
    modes = (self.switches(True), self.switches(False))
    init = self.is_initializing()

    def runs(rule):
      return rule(*in_force) or (init and any(rule(*mode) for mode in modes))
    return _Units(
        w1=runs(lambda ts, sa, ad: ts),
        encoder=runs(lambda ts, sa, ad: ad and (ts or sa)),
        gen_t=runs(lambda ts, sa, ad: ad and ts),
        gen_s=runs(lambda ts, sa, ad: ad and sa),
        w2=runs(lambda ts, sa, ad: ts and not ad),
        w_s=runs(lambda ts, sa, ad: sa and not ad))

  @nn.compact
  def __call__(self, support, support_labels, query, *, train: bool,
               sigma=0.0, prior=0.0, rescan=False):
    """Samples T frames of every support and query video of one episode.

    Args:
      support: [V_s, M, H, W, 3] ImageNet-normalised frames.
      support_labels: [V_s] labels (unused: the task encoder averages over
        the whole support, Eq. 12).
      query: [V_q, M, H, W, 3] ImageNet-normalised frames.
      train: perturbed top-k, random task feature and batch statistics in
        the scan network when True (then a 'sampler' rng is needed).
      sigma: noise scale of the perturbed top-k in training (traced scalar
        allowed); a Python 0 selects the hard top-k.
      prior: weight lambda in [0, 1] of the uniform prior in training
        (traced scalar allowed): with `temporal_prior` TS ranks
        `(1 - lambda) s + lambda u`, s the min-max scores and u 1 on the T
        uniform frames (segment centres) and 0 elsewhere. lambda >= 0.5
        selects the uniform frames whatever the scores (up to the top-k
        noise); 0, and always at evaluation, leaves the scores alone. With
        `spatial_prior` SA amplifies by `(1 - lambda) a + lambda` instead of
        the min-max saliency a, so lambda = 1 is the identity warp (uniform
        sampling in space too).
      rescan: with SA in force, 'scan_selected' are the scan features of the
        amplified frames, scanned again (the frames the backbone sees,
        X = Sampler(X_D) of Eq. 27), so that L_intra reaches SA and w_s;
        otherwise, and without SA, the selection of the dense frames' scan
        features. The second scan runs the scan net's batch norm in the same
        mode (in training it also updates the running statistics).

    Returns:
      (support_frames [V_s, T, H, W, 3], query_frames [V_q, T, H, W, 3], aux)
      with aux over the V = V_s + V_q videos, support first: 'indices' [V, T]
      int32, 'indicators' [V, T, M], 'scores' [V, M] in [0, 1] (zeros for
      uniform sampling; normalised motion for MGSampler), 'saliency'
      [V, T, h, w] in [0, 1] (zeros without SA), 'scan_frames' [V, M, c]
      (the pooled maps of every dense frame), 'scan_dense' [V, c] and
      'scan_selected' [V, c] (see `rescan`); with `rescan` and SA in force
      also 'scan_amplified' [V, T, c], the rescanned frames' features.
    """
    del support_labels
    temporal, spatial, adaptive = self.switches(train)
    units = self._units(train)
    num_support = support.shape[0]
    videos = jnp.concatenate([support, query], 0)  # [V, M, H, W, 3]
    v, m = videos.shape[:2]
    if not 1 <= self.frames <= m:
      raise ValueError(f'frames={self.frames} must be in [1, M={m}].')
    learner, selector, amplifier = self._parts()

    scan = self._scan(videos, train)
    w2, w_s = learner(scan.read_video[:num_support], units,
                      adaptive=adaptive, train=train)
    selection = selector(scan.read, scan.read_video, scan.maps, w2,
                         run=units.w1, temporal=temporal, train=train,
                         prior=prior if self.temporal_prior else 0.0,
                         sigma=sigma)
    selected = temporal_selector.select(videos, selection)  # [V, T, H, W, 3]
    scan_selected = jnp.einsum(
        'vtm,vmc->vtc', selection.indicators, scan.pooled,
        precision=jax.lax.Precision.HIGHEST).mean(1)  # [V, c]
    saliency = jnp.zeros((v, self.frames) + scan.maps.shape[2:4], jnp.float32)
    if spatial:
      saliency, selected = amplifier(scan.maps, selected, selection, w_s,
                                     train=train, prior=prior)
      if rescan:
        amplified = self._rescan(scan.net, selected, train)  # [V, T, c]
        scan_selected = amplified.mean(1)

    selected = selected.astype(self.dtype)
    aux = dict(indices=selection.indices, indicators=selection.indicators,
               scores=selection.scores, saliency=saliency,
               scan_frames=scan.pooled, scan_dense=scan.dense,
               scan_selected=scan_selected)
    if spatial and rescan:
      aux['scan_amplified'] = amplified
    return selected[:num_support], selected[num_support:], aux

  def _parts(self):
    """The task-adaptive learner, TS and SA, in this module's scope."""
    parts = (
        task_adaptive.TaskAdaptiveLearner(
            hidden=self.hidden, task_dim=self.task_dim, dtype=self.dtype,
            param_dtype=self.param_dtype, name='task_adaptive_learner'),
        temporal_selector.TemporalSelector(
            frames=self.frames, method=self.method, hidden=self.hidden,
            position_embedding=self.position_embedding,
            num_samples=self.num_samples,
            straight_through=self.straight_through, dtype=self.dtype,
            param_dtype=self.param_dtype, name='temporal_selector'),
        spatial_amplifier.SpatialAmplifier(
            saliency_floor=self.saliency_floor,
            spatial_prior=self.spatial_prior, name='spatial_amplifier'))
    for part in parts:
      nn.share_scope(self, part)
    return parts

  def _scan(self, videos, train) -> _Scan:
    """3.3.1 Video scanning: the scan net f on every dense frame.

    Args:
      videos: [V, M, H, W, 3] frames, resized to `scan_size` for f.
      train: batch statistics in f's BatchNorm.
    """
    # Built unbound (parent=None), then adopted as 'scan' with the optional
    # field overrides (build_scan_network's `name` is the network's name).
    net = shufflenet.build_scan_network(
        self.scan_net, dtype=self.dtype, param_dtype=self.param_dtype,
        parent=None).clone(
            parent=self, name='scan', **dict(self.scan_kwargs or {}))
    v, m = videos.shape[:2]
    small = _resize(videos.reshape((v * m,) + videos.shape[2:]).astype(
        self.dtype), self.scan_size)
    maps = net(small, train=train)
    maps = maps.reshape((v, m) + maps.shape[1:]).astype(
        jnp.float32)  # [V, M, h, w, c]
    pooled = maps.mean((2, 3))  # [V, M, c], Avg(f(X_i))
    dense = pooled.mean(1)  # [V, c], Avg(g_X)
    # What TS, SA and the task learner read: behind a stop-gradient with
    # `detach_scan` (the scan net then learns from the distillation and
    # L_intra only, which keep `pooled`'s and `dense`'s gradient).
    read = jax.lax.stop_gradient if self.detach_scan else lambda x: x
    return _Scan(net, read(maps), pooled, dense, read(pooled), read(dense))

  def _rescan(self, net, frames, train):
    """The scan features [V, T, c] of the amplified frames [V, T, H, W, 3]:
    the scan net f (`_Scan.net`) on them, pooled over space."""
    v, t = frames.shape[:2]
    amplified = net(_resize(frames.reshape((v * t,) + frames.shape[2:]),
                            self.scan_size).astype(self.dtype),
                    train=train)
    return amplified.astype(jnp.float32).mean((1, 2)).reshape(v, t, -1)
