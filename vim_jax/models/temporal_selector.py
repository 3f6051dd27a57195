"""Temporal selector TS of the video sampler (paper 3.3.2, Eqs. 1-6).

  s_i = w2 . ReLU(w1 (Avg(Cat(f(X_i), g)) + PE(i)))                  Eq. 1
  min-max of s over the M frames of a video                          Eq. 2
  perturbed top-k (training) / hard top-k (evaluation) ─► I [T, M]   Eq. 3-6

w2 comes from the task-adaptive learner (`vim_jax.models.task_adaptive`);
f(X_i) and g are the scan features of `VideoSampler`'s scan.

Choices the paper leaves open (see DESIGN.md 2):

- Scores are min-max normalised per video, the range guarded by
  max(range, 1e-6 max|x| + 1e-12) (`vim_jax.ops.minmax_normalise`): a
  constant input maps to all zeros and never to NaN. w1 has a bias, w2 none
  (the min-max normalisation would remove it).
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
- Uniform prior (the `prior` argument, `train.uniform_prior_steps`; see
  `vim_jax.models.sampler`): in training TS ranks `(1 - lambda) s +
  lambda u`, u the indicator of the T uniform frames. Evaluation never uses
  it.
- In training the frames are selected with `indicators @ frames` (soft, so
  gradients reach the scores); wherever the indicators are hard
  (evaluation, TS off, baselines) the frames are gathered instead, which is
  exact and cheaper (`select`). The soft product runs at HIGHEST precision
  (TPUs would otherwise round the frames to bfloat16).
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
- `indices` in training is the argmax of each (soft) indicator row; with a
  large sigma two rows can share their argmax, so the indices are strictly
  increasing only for hard selections.
- The baselines' temporal rules replace TS: 'uniform' takes the segment
  centres, 'mgsampler' (Table 11, Zhi et al. 2021) the frames at uniform
  quantiles of the motion, the mean absolute difference of the scan maps of
  adjacent frames ("feature difference", paper 4.4.4; `motion_indices`).

Randomness: `make_rng('sampler')` in training with TS only (the perturbed
top-k's noise, one key per video).
"""
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.ops import frames as frames_ops
from vim_jax.ops import topk as topk_ops
from vim_jax.ops import vectors

Dtype = Any


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


class Selection(NamedTuple):
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


def select(videos, selection: Selection):
  """X = I X_D (Eq. 3): [V, M, ...] -> [V, T, ...]."""
  if selection.soft:
    return jnp.einsum('vtm,vm...->vt...',
                      selection.indicators.astype(videos.dtype), videos,
                      precision=jax.lax.Precision.HIGHEST)
  return jax.vmap(lambda x, i: x[i])(videos, selection.indices)


class TemporalSelector(nn.Module):
  """TS: the evaluator's frame scores (Eq. 1-2), then the top-k (Eq. 3-6).

  The fields are `VideoSampler`'s of the same names. Its parameters are
  `evaluator_w1` (Dense(2c -> hidden)) and `position_scale` (with
  `position_embedding`), in the scope of the sampler that shares its scope.

  Attributes:
    frames: T, frames selected per video.
    method: 'vim' (TS), 'mgsampler' or 'uniform' (the baselines' rules).
    hidden: width of the evaluator's hidden layer (w1's output).
    position_embedding: adds Eq. 1's PE(i), scaled by `position_scale`.
    num_samples: perturbed top-k samples.
    straight_through: hard top-k forward in training (see the module
      docstring).
    dtype: computation dtype of w1.
    param_dtype: parameter dtype.
  """
  frames: int
  method: str = 'vim'
  hidden: int = 128
  position_embedding: bool = True
  num_samples: int = 500
  straight_through: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, pooled, video, maps, w2, *, run, temporal, train, prior,
               sigma) -> Selection:
    """T frames of every video.

    Args:
      pooled: [V, M, c] Avg(f(X_i)) of every dense frame, as TS reads it.
      video: [V, c] Avg(g) of every video, as TS reads it.
      maps: [V, M, h, w, c] scan maps (MGSampler's motion).
      w2: [hidden] last evaluator weight (None without TS).
      run: whether the evaluator runs (TS in force, or `init` of the other
        mode's TS).
      temporal: TS in force (else the method's baseline rule).
      train: mixes the uniform prior into the scores and takes the
        perturbed (or straight-through) top-k, with one key per video.
      prior: the prior's weight lambda.
      sigma: the perturbed top-k's noise scale.
    """
    scores = self._scores(pooled, video, w2, run=run, temporal=temporal,
                          train=train, prior=prior)
    return self._select(scores, maps, temporal=temporal, train=train,
                        sigma=sigma)

  def _scores(self, pooled, video, w2, *, run, temporal, train, prior):
    """The evaluator (Eq. 1-2): [V, M] scores in [0, 1] (zeros without TS)."""
    v, m, c = pooled.shape
    scores = jnp.zeros((v, m), jnp.float32)
    if not run:
      return scores
    x = jnp.concatenate(
        [pooled, jnp.broadcast_to(video[:, None], pooled.shape)], -1)
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
      scores = vectors.minmax_normalise(raw, axis=1)  # [V, M] in [0, 1], Eq. 2
      if train:  # prior = 0 leaves the scores exactly as they are
        uniform = np.zeros(m, np.float32)
        uniform[frames_ops.dense_frame_indices(m, self.frames)] = 1.0
        scores = (1.0 - prior) * scores + prior * uniform
    return scores

  def _select(self, scores, maps, *, temporal, train, sigma) -> Selection:
    """The top-k of the scores (Eq. 3-6), or a baseline's temporal rule."""
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
      scores = vectors.minmax_normalise(frame_motion(maps), axis=1)
      indicators = jax.nn.one_hot(indices, m, dtype=jnp.float32)
    else:
      uniform = frames_ops.dense_frame_indices(m, t)  # [T] numpy
      indices = jnp.broadcast_to(jnp.asarray(uniform, jnp.int32), (v, t))
      indicators = jax.nn.one_hot(indices, m, dtype=jnp.float32)
    return Selection(scores, indicators, indices, soft)
