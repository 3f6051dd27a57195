"""Task-adaptive spatial-temporal video sampler (paper 3.3).

For each video of an episode the sampler scans its M dense frames with a light
scan network f (3.3.1), picks T of them with the temporal selector TS (3.3.2)
and amplifies the salient regions of each picked frame with the spatial
amplifier SA (3.3.3). The task-adaptive learner (3.3.4) generates the last
evaluator weight w2 of TS and the channel weights w_s of SA from the episode's
support set, so the sampling criterion changes from task to task.

  frames [V, M, H, W, 3] ─► resize to scan_size ─► f: maps [V, M, h, w, c]
     TS:  s_i = w2 . ReLU(w1 (Avg(Cat(f(X_i), g)) + PE(i)))          Eq. 1-2
          min-max to [0, 1] ─► perturbed top-k (train) / hard top-k (eval)
          ─► indicators I [V, T, M] ─► X = I X_D                      Eq. 3-6
     SA:  f_sel = I f; alpha = f f^T / sqrt(hw); f' = alpha f           Eq. 7
          M_s = mean_c(w_s[c] f'[c]) ─► min-max ─► inverse-CDF grid     Eq. 8-11
          ─► resample each selected frame at the grid
     task learner: support Avg(g) ─► E ─► mean ─► (mu, log_var)        Eq. 12
          f_t = mu + exp(log_var / 2) eps ─► w2 = G_t(f_t) / |.|,
          w_s = G_s(f_t) / |.|                                          Eq. 13-14

Choices the paper leaves open (see DESIGN.md 2):

- Eq. 7 has no softmax on alpha and none is added. The saliency map is
  min-max normalised before it is used, and the normalised map does not
  change when the raw map is scaled by a positive factor (nor does its
  gradient with respect to w_s), so the large magnitude of f f^T (a sum over
  h w positions of products of c activations) does no harm. A softmax is not
  scale-free: its sharpness would depend on that magnitude (it would need a
  temperature, and rows over c = 1024 channels can saturate to one-hot).
  Without it the product also reassociates: w_s^T (f f^T) f =
  (w_s^T f)(f^T f), O(c (hw)^2) instead of O(c^2 hw)
  (`channel_attention_saliency`). SA runs in float32.
- Scores and saliency maps are min-max normalised per video / per frame, the
  range guarded by max(range, 1e-6 max|x| + 1e-12): a constant input maps to
  all zeros (for a saliency map: the identity grid) and never to NaN.
- The position embedding of Eq. 1 is multiplied by a learned scalar
  `position_scale`, initialised to 0. Added at full scale to randomly
  initialised scan features (of magnitude ~0.1-1, against the embedding's
  ~1), it makes the initial scores a function of the position alone: every
  video's scores fall from its first frame to its last, TS picks roughly
  the first half of every clip, and a TS-only model trained so on the
  procedural data stays at chance (its frames miss the action). Starting
  at 0, the initial selection follows the content and the model learns how
  much position matters. It can learn too much: in every procedural
  sampler run with the embedding that lost to ProtoNet the scale grew to
  |1.1-3.2| (0.74 in the one from-scratch run that won) and TS picked a
  fixed block of 8 of the 16 frames of every video, whatever they showed:
  a consistent position keeps frame t of a query and of a prototype
  comparable, which the frame-wise metric rewards (docs/results.md, "What
  TS learns"). `position_embedding=False` leaves the embedding out: TS can
  then only rank frames by content; configs/synthetic.py does so.
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
  constant map is the identity warp). With pretrained networks this is what
  makes the sampler robust over training seeds on the procedural data
  (mean gain over ProtoNet +9.2 +- 5.1 points over five seeds with it,
  +3.1 +- 18.3 without; docs/results.md).
- Scan-net distillation (`train.scan_distill_weight`, beyond the paper,
  whose scan net starts from ImageNet). From scratch nothing gives the scan
  net a signal that tells the actor from the clutter: its features, used as
  a ProtoNet, stay at chance (20.6-22.7 % at 5-way), so TS ranks frames by
  noise and finds the action in some seeds only. With the weight set, the
  scan net also learns to reproduce the backbone's angles between the
  selected frames (`losses.scan_distillation`; its features then reach
  26.9-28.9 %, docs/results.md); `aux['scan_frames']` feeds it.
- w1 has a bias, w2 none (the min-max normalisation would remove it). The
  plain (non-adaptive) w2 is initialised like a Dense kernel; the plain w_s to
  1/sqrt(c) (the channel mean, unit norm like the generated one). The
  generated weights are divided by max(|theta|, 1e-6).
- The task encoder E is Dense(task_dim), ReLU, Dense(2 task_dim); log_var is
  the second half of its output plus `LOG_VAR_OFFSET` (2 log 0.05), clipped
  to [-8, 8] so exp(log_var / 2) cannot overflow. Without the offset a
  randomly initialised E gives log_var ~ 0, a noise std of ~1 against mu's
  ~0.3: the training-time task feature is then mostly eps, so the
  generated w2 and w_s (and with them TS's scores and SA's saliency) are a
  fresh random direction every episode, unlike the eps = 0 evaluation, and
  a TS+SA+Ada sampler trained so on the procedural data stayed near chance
  while TS alone learned. With the offset the noise starts at std ~0.05
  and E learns how much it needs. No prior (KL) term is put on
  (mu, log_var): the paper has none.
- In training with TS the frames are selected with `indicators @ frames`
  (soft, so gradients reach the scores); wherever the indicators are hard
  (evaluation, TS off, baselines) the frames are gathered instead, which is
  exact and cheaper. The soft product runs at HIGHEST precision (TPUs would
  otherwise round the frames to bfloat16).
- `straight_through` (beyond the paper, whose Eq. 3-5 select the smoothed
  expectation of the perturbed top-k): the training forward takes the hard
  top-k of the training scores, the frames evaluation would pick, and the
  backward keeps Eq. 6's gradient (`ops.straight_through_topk`). Smoothed
  indicators blend frames whose scores lie within about sigma of each
  other, and min-max scores of M frames in [0, 1] are about 1/M apart, less
  than sigma = 0.1. Measured on the procedural data (configs/synthetic.py,
  docs/results.md): while the uniform prior holds (lambda >= 0.5) a
  training slot's largest indicator averages 0.997; after it, 0.66-0.72,
  with 72-84 % of the slots under 0.9, i.e. the backbone trains on mixtures
  of frames that evaluation never shows it, and the accuracy falls at the
  handover.
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
- `aux['indices']` in training with TS is the argmax of each (soft) indicator
  row; with a large sigma two rows can share their argmax, so the indices are
  strictly increasing only for hard selections.
- method 'mgsampler' (Table 11, Zhi et al. 2021) and 'uniform' are baselines
  on their own: their temporal rule replaces TS and no SA or task adaptation
  is applied (Table 11's "ProtoNet + MGSampler"). For uniform frames with SA,
  use method 'vim' with temporal=False. `enabled=False` behaves like
  'uniform' (the caller normally skips the sampler then).
- MGSampler motion: mean absolute difference of the scan maps of adjacent
  frames ("feature difference", paper 4.4.4), see `motion_indices`.
- Parameters are created for every part that the training or the test
  switches use, whichever mode `init` runs in, so a model initialised with
  train=False can be trained and evaluated with test-time isolation.

Randomness: `self.make_rng('sampler')` only when training (perturbed top-k
noise, one key per video; the task feature's eps). At evaluation no rng is
needed and the output is deterministic (hard top-k, eps = 0). The scan
network's BatchNorm follows `train` (batch statistics, 'batch_stats' mutable).
The generated weights are also sown as 'intermediates' 'w2' and 'w_s'.

Parameter tree (under the module's name):

  scan/                      ShuffleNet V2 (`build_scan_network`)
  evaluator_w1               Dense(2c -> hidden), TS
  position_scale []          TS, scale of the position embedding (init 0;
                             absent with position_embedding=False)
  evaluator_w2 [hidden, 1]   TS, without adaptation
  saliency_w_s [c]           SA, without adaptation
  task_encoder/dense_{0,1}   with adaptation (TS or SA)
  generator_t                Dense(task_dim -> hidden), with adaptation and TS
  generator_s                Dense(task_dim -> c), with adaptation and SA
"""
from typing import Any, Mapping, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.models import shufflenet
from vim_jax.models import switches
from vim_jax.ops import frames as frames_ops
from vim_jax.ops import saliency as saliency_ops
from vim_jax.ops import topk as topk_ops
from vim_jax.ops import vectors

Dtype = Any
METHODS = ('vim', 'mgsampler', 'uniform')
# Added to the task encoder's log-variance: the task feature's noise starts
# at std 0.05 (see the module docstring).
LOG_VAR_OFFSET = 2 * float(np.log(0.05))


def position_embedding(length: int, width: int) -> np.ndarray:
  """Sinusoidal position embedding (Vaswani et al., 2017) of Eq. 1.

  Args:
    length: number of positions (M).
    width: embedding width (even or odd).

  Returns:
    [length, width] float32: column 2i is sin(pos / 10000^(2i / width)),
    column 2i + 1 the cosine at the same frequency.
  """
  pos = np.arange(length, dtype=np.float64)[:, None]  # [length, 1]
  i = np.arange(width)[None, :]  # [1, width]
  angle = pos / np.power(10000.0, (i - i % 2) / width)
  return np.where(i % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


def minmax_normalise(x, axis):
  """Min-max normalisation of `x` to [0, 1] over `axis`, guarded.

  A constant input gives zeros (never NaN); the range is floored at
  1e-6 max|x| + 1e-12 so a near-constant input is not blown up from rounding.
  """
  low = x.min(axis=axis, keepdims=True)
  high = x.max(axis=axis, keepdims=True)
  guard = 1e-6 * jnp.abs(x).max(axis=axis, keepdims=True) + 1e-12
  return (x - low) / jnp.maximum(high - low, guard)


def channel_attention_saliency(maps, w_s):
  """Raw saliency of Eq. 7-8 from scan maps: mean_c(w_s[c] (alpha f)[c]).

  With F = f as [c, hw], alpha = F F^T / sqrt(hw), F' = alpha F and
  M_s = (1/c) w_s^T F'. Reassociated as (w_s^T F)(F^T F) / (c sqrt(hw)):
  the same numbers, but never forms the c x c matrix.

  Args:
    maps: [..., h, w, c] scan feature maps.
    w_s: [c] channel weights.

  Returns:
    [..., h, w] float32 saliency, not normalised.
  """
  *lead, h, w, c = maps.shape
  f = maps.astype(jnp.float32).reshape(*lead, h * w, c)  # [..., hw, c]
  hp = jax.lax.Precision.HIGHEST
  u = jnp.einsum('...pc,c->...p', f, w_s.astype(jnp.float32), precision=hp)
  gram = jnp.einsum('...pc,...qc->...pq', f, f, precision=hp)  # [..., hw, hw]
  m = jnp.einsum('...p,...pq->...q', u, gram, precision=hp)
  return (m / (c * np.sqrt(h * w))).reshape(*lead, h, w)


def amplify(frames, saliency, *, floor):
  """Spatial amplification of frames by their saliency (Eq. 9-11).

  Args:
    frames: [..., H, W, C] frames.
    saliency: [..., h, w] saliency in [0, 1], one map per frame (any h, w).
    floor: uniform floor of `saliency_grid`.

  Returns:
    [..., H, W, C] resampled frames; a constant map returns the frames
    (identity grid).
  """
  lead = frames.shape[:-3]
  out_hw = frames.shape[-3:-1]
  f = frames.reshape((-1,) + frames.shape[-3:])
  s = saliency.reshape((-1,) + saliency.shape[-2:])
  grids = jax.vmap(
      lambda m: saliency_ops.saliency_grid(m, out_hw, floor=floor))(s)
  out = jax.vmap(saliency_ops.resample)(f, grids)
  return out.reshape(lead + out.shape[1:])


def frame_motion(features):
  """Motion of each frame: mean |features[m] - features[m - 1]|, 0 for m = 0.

  Args:
    features: [V, M, ...] per-frame features.

  Returns:
    [V, M] float32.
  """
  v, m = features.shape[:2]
  f = features.reshape(v, m, -1).astype(jnp.float32)
  diff = jnp.abs(f[:, 1:] - f[:, :-1]).mean(-1)  # [V, M - 1]
  return jnp.concatenate([jnp.zeros((v, 1), diff.dtype), diff], 1)


def motion_indices(features, k):
  """MGSampler (Zhi et al., 2021): k frames at uniform quantiles of motion.

  The motion of frame m >= 1 is the mean absolute difference between its
  features and those of frame m - 1; frame 0 has none. A small floor
  (1e-3 of the mean motion, plus 1e-12) is added to every frame. In units of
  the mean motion, frame m spans [cum[m - 1], cum[m]) of the cumulative
  motion (total M), and frame j of the output is the one whose span holds
  (j + 0.5) M / k, the centre of the j-th of k equal shares of motion. A
  static video has equal shares (exactly: the units make them 1) and gets the
  segment centres of `dense_frame_indices`. Repeats, which a burst of motion
  in one frame causes, are pushed to the nearest free frames so that the k
  frames are distinct.

  Args:
    features: [V, M, ...] per-frame features (scan maps, or pixels).
    k: static number of frames, 1 <= k <= M.

  Returns:
    [V, k] int32 frame indices, strictly increasing.
  """
  v, m = features.shape[:2]
  if not 1 <= k <= m:
    raise ValueError(f'k={k} must be in [1, {m}].')
  motion = frame_motion(features)  # [V, M]
  motion = motion + 1e-3 * motion.mean(1, keepdims=True) + 1e-12
  cum = jnp.cumsum(motion / motion.mean(1, keepdims=True), 1)  # [V, M]
  target = jnp.asarray((np.arange(k) + 0.5) * m / k, jnp.float32)  # [k]
  idx = jax.vmap(lambda c: jnp.searchsorted(c, target, side='right'))(cum)
  idx = jnp.minimum(idx, m - 1).astype(jnp.int32)  # [V, k]
  # Distinct frames: push repeats right, then back left from the last frame.
  cols = [idx[:, 0]]
  for j in range(1, k):
    cols.append(jnp.maximum(idx[:, j], cols[-1] + 1))
  cols[-1] = jnp.minimum(cols[-1], m - 1)
  for j in range(k - 2, -1, -1):
    cols[j] = jnp.minimum(cols[j], cols[j + 1] - 1)
  return jnp.stack(cols, 1)


def _select(videos, indicators, indices, soft):
  """X = I X_D (Eq. 3): [V, M, ...] -> [V, T, ...]."""
  if soft:
    return jnp.einsum('vtm,vm...->vt...', indicators.astype(videos.dtype),
                      videos, precision=jax.lax.Precision.HIGHEST)
  return jax.vmap(lambda x, i: x[i])(videos, indices)


def _resize(frames, size):
  """[B, H, W, 3] -> [B, size, size, 3], bilinear (as is at that size)."""
  if frames.shape[1:3] == (size, size):
    return frames
  return jax.image.resize(frames, (frames.shape[0], size, size, 3),
                          'bilinear')


class TaskEncoder(nn.Module):
  """Task encoder E of Eq. 12: support features -> (mu, log_var).

  Attributes:
    task_dim: size of f_t (paper: 128).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  task_dim: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, support_features):  # [V_s, c] -> ([task_dim], [task_dim])
    dense = lambda n, name: nn.Dense(
        n, dtype=self.dtype, param_dtype=self.param_dtype, name=name)
    x = nn.relu(dense(self.task_dim, 'dense_0')(support_features))
    x = dense(2 * self.task_dim, 'dense_1')(x)  # [V_s, 2 task_dim]
    x = x.astype(jnp.float32).mean(0)  # Eq. 12: average over the support
    mu, log_var = jnp.split(x, 2)
    return mu, jnp.clip(log_var + LOG_VAR_OFFSET, -8.0, 8.0)


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


class _Selection(NamedTuple):
  """T frames per video, picked by TS or by a baseline's temporal rule.

  Attributes:
    scores: [V, M] in [0, 1] (zeros for uniform sampling; normalised motion
      for MGSampler).
    indicators: [V, T, M].
    indices: [V, T] int32.
    soft: whether the indicators may be soft (training with TS): frames are
      then selected by the product with them, otherwise gathered.
  """
  scores: jax.Array
  indicators: jax.Array
  indices: jax.Array
  soft: bool


class VideoSampler(nn.Module):
  """The task-adaptive spatial-temporal video sampler of one episode.

  The parts follow paper 3.3: `_scan` (3.3.1 video scanning),
  `_temporal_selector` and `_select_frames` (3.3.2 TS: the evaluator's
  scores, then the top-k; the baselines' temporal rules), `_spatial_amplifier`
  and `_rescan` (3.3.3 SA) and `_task_adaptive_learner` (3.3.4, which runs
  before TS and SA: it makes their weights w2 and w_s).

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
        (traced scalar allowed): TS ranks `(1 - lambda) s + lambda u`, s
        the min-max scores and u 1 on the T uniform frames (segment centres)
        and 0 elsewhere. lambda >= 0.5 selects the uniform frames whatever
        the scores (up to the top-k noise); 0, and always at evaluation,
        leaves the scores alone. With `spatial_prior` SA amplifies by
        `(1 - lambda) a + lambda` instead of the min-max saliency a, so
        lambda = 1 is the identity warp (uniform sampling in space too).
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
      'scan_selected' [V, c] (see `rescan`).
    """
    del support_labels
    temporal, spatial, adaptive = self.switches(train)
    units = self._units(train)
    num_support = support.shape[0]
    videos = jnp.concatenate([support, query], 0)  # [V, M, H, W, 3]
    v, m = videos.shape[:2]
    if not 1 <= self.frames <= m:
      raise ValueError(f'frames={self.frames} must be in [1, M={m}].')

    scan = self._scan(videos, train)
    w2, w_s = self._task_adaptive_learner(
        scan.read_video[:num_support], units, adaptive=adaptive, train=train)
    scores = self._temporal_selector(scan, w2, run=units.w1, temporal=temporal,
                                     train=train, prior=prior)
    selection = self._select_frames(scores, scan.maps, temporal=temporal,
                                    train=train, sigma=sigma)
    selected = _select(videos, selection.indicators, selection.indices,
                       selection.soft)  # [V, T, H, W, 3]
    scan_selected = jnp.einsum(
        'vtm,vmc->vtc', selection.indicators, scan.pooled,
        precision=jax.lax.Precision.HIGHEST).mean(1)  # [V, c]
    saliency = jnp.zeros((v, self.frames) + scan.maps.shape[2:4], jnp.float32)
    if spatial:
      saliency, selected = self._spatial_amplifier(
          scan.maps, selected, selection, w_s, train=train, prior=prior)
      if rescan:
        scan_selected = self._rescan(scan.net, selected, train)

    selected = selected.astype(self.dtype)
    aux = dict(indices=selection.indices, indicators=selection.indicators,
               scores=selection.scores, saliency=saliency,
               scan_frames=scan.pooled, scan_dense=scan.dense,
               scan_selected=scan_selected)
    return selected[:num_support], selected[num_support:], aux

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

  def _task_adaptive_learner(self, support_features, units, *, adaptive,
                             train):
    """3.3.4 Task-adaptive learner (Eq. 12-14): TS's w2 and SA's w_s.

    With adaptation the weights are generated from the support (and sown
    as 'intermediates' 'w2' and 'w_s'); without, they are TS's and SA's
    plain parameters 'evaluator_w2' and 'saliency_w_s'.

    Args:
      support_features: [V_s, c] Avg(g) of every support video, as read.
      units: `_Units`, which of the weights are made.
      adaptive: adaptation in force.
      train: draws the task feature's eps (0 otherwise).

    Returns:
      w2 [hidden] and w_s [c], each None where no unit makes it.
    """
    c = support_features.shape[-1]
    w2 = w_s = None
    if units.encoder:
      mu, log_var = TaskEncoder(
          self.task_dim, dtype=self.dtype, param_dtype=self.param_dtype,
          name='task_encoder')(support_features)
      task = mu  # eps = 0 at evaluation
      if train and adaptive:
        eps = jax.random.normal(self.make_rng('sampler'), mu.shape, mu.dtype)
        task = mu + jnp.exp(log_var / 2) * eps  # [task_dim], Eq. 13
      if units.gen_t:  # Eq. 14
        w2 = vectors.l2_normalise(nn.Dense(
            self.hidden, param_dtype=self.param_dtype,
            name='generator_t')(task))  # [hidden], float32
        self.sow('intermediates', 'w2', w2)
      if units.gen_s:
        w_s = vectors.l2_normalise(nn.Dense(
            c, param_dtype=self.param_dtype, name='generator_s')(task))  # [c]
        self.sow('intermediates', 'w_s', w_s)
    if units.w2:
      plain = self.param('evaluator_w2', nn.initializers.lecun_normal(),
                         (self.hidden, 1), self.param_dtype)[:, 0]
      w2 = w2 if adaptive else plain
    if units.w_s:
      plain = self.param('saliency_w_s', nn.initializers.constant(c ** -0.5),
                         (c,), self.param_dtype)
      w_s = w_s if adaptive else plain
    return w2, w_s

  def _temporal_selector(self, scan, w2, *, run, temporal, train, prior):
    """3.3.2 Temporal selector TS, its evaluator (Eq. 1-2): frame scores.

    Args:
      scan: `_Scan`.
      w2: [hidden] last evaluator weight (None without TS).
      run: whether the evaluator runs (TS in force, or `init` of the other
        mode's TS).
      temporal: TS in force (the scores are made).
      train: mixes the uniform prior into the scores.
      prior: its weight lambda.

    Returns:
      [V, M] scores in [0, 1] (zeros without TS).
    """
    read = scan.read  # [V, M, c]
    v, m, c = read.shape
    scores = jnp.zeros((v, m), jnp.float32)
    if not run:
      return scores
    x = jnp.concatenate(
        [read, jnp.broadcast_to(scan.read_video[:, None], read.shape)], -1)
    # Eq. 1 adds PE(i) as is; here it is scaled by a learned scalar that
    # starts at 0, or left out (see the module docstring).
    if self.position_embedding:
      pe_scale = self.param('position_scale', nn.initializers.zeros, (),
                            self.param_dtype)
      x = x + pe_scale * position_embedding(m, 2 * c)  # [V, M, 2c], Eq. 1
    hidden = nn.relu(nn.Dense(
        self.hidden, dtype=self.dtype, param_dtype=self.param_dtype,
        name='evaluator_w1')(x)).astype(jnp.float32)  # [V, M, hidden]
    if temporal:
      raw = jnp.einsum('vmd,d->vm', hidden, w2.astype(jnp.float32))
      scores = minmax_normalise(raw, axis=1)  # [V, M] in [0, 1], Eq. 2
      if train:  # prior = 0 leaves the scores exactly as they are
        uniform = np.zeros(m, np.float32)
        uniform[frames_ops.dense_frame_indices(m, self.frames)] = 1.0
        scores = (1.0 - prior) * scores + prior * uniform
    return scores

  def _select_frames(self, scores, maps, *, temporal, train, sigma
                     ) -> _Selection:
    """3.3.2 TS's selection (Eq. 3-6), or a baseline's temporal rule.

    With TS: the top-k of the scores, perturbed (or straight-through) in
    training with one key per video, hard at evaluation. Without: the
    frames of MGSampler's motion quantiles ('mgsampler'), or the uniform
    frames.

    Args:
      scores: [V, M] TS's scores.
      maps: [V, M, h, w, c] scan maps (MGSampler's motion).
      temporal: TS in force.
      train: perturbed top-k.
      sigma: its noise scale.
    """
    v, m = scores.shape
    t = self.frames
    soft = False
    if temporal and train:
      keys = jax.random.split(self.make_rng('sampler'), v)
      topk = (topk_ops.straight_through_topk if self.straight_through
              else topk_ops.perturbed_topk)
      indicators = jax.vmap(
          lambda s, key: topk(
              s, t, num_samples=self.num_samples, sigma=sigma, rng=key))(
                  scores, keys)  # [V, T, M]
      indices = jnp.argmax(indicators, -1).astype(jnp.int32)
      soft = True
    elif temporal:
      indicators = topk_ops.hard_topk(scores, t)
      indices = jnp.argmax(indicators, -1).astype(jnp.int32)
    elif self.method == 'mgsampler':
      indices = motion_indices(maps, t)
      scores = minmax_normalise(frame_motion(maps), axis=1)
      indicators = jax.nn.one_hot(indices, m, dtype=jnp.float32)
    else:
      uniform = frames_ops.dense_frame_indices(m, t)  # [T] numpy
      indices = jnp.broadcast_to(jnp.asarray(uniform, jnp.int32), (v, t))
      indicators = jax.nn.one_hot(indices, m, dtype=jnp.float32)
    return _Selection(scores, indicators, indices, soft)

  def _spatial_amplifier(self, maps, frames, selection, w_s, *, train, prior):
    """3.3.3 Spatial amplifier SA (Eq. 7-11) of the selected frames.

    Args:
      maps: [V, M, h, w, c] scan maps.
      frames: [V, T, H, W, 3] the selected frames.
      selection: `_Selection` that picked them (and picks their maps).
      w_s: [c] channel weights.
      train: with `spatial_prior`, mixes the prior into the saliency.
      prior: its weight lambda.

    Returns:
      saliency [V, T, h, w] in [0, 1] and the amplified frames
      [V, T, H, W, 3] float32.
    """
    maps_sel = _select(maps, selection.indicators, selection.indices,
                       selection.soft)  # [V, T, h, w, c]
    raw = channel_attention_saliency(maps_sel, w_s)  # [V, T, h, w]
    saliency = minmax_normalise(raw, axis=(2, 3))
    if train and self.spatial_prior:
      # The prior's spatial half: a constant map is the identity warp.
      saliency = (1.0 - prior) * saliency + prior
    frames = amplify(frames.astype(jnp.float32), saliency,
                     floor=self.saliency_floor)
    return saliency, frames

  def _rescan(self, net, frames, train):
    """The scan features [V, c] of the amplified frames [V, T, H, W, 3]:
    the scan net f (`_Scan.net`) on them, pooled over space and time."""
    v, t = frames.shape[:2]
    amplified = net(_resize(frames.reshape((v * t,) + frames.shape[2:]),
                            self.scan_size).astype(self.dtype),
                    train=train)
    return amplified.astype(jnp.float32).mean((1, 2)).reshape(
        v, t, -1).mean(1)
