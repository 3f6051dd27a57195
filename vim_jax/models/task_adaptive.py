"""Task-adaptive learner of the video sampler (paper 3.3.4, Eqs. 12-14).

It makes the weights by which TS scores frames (w2, the evaluator's last
layer) and SA weighs channels (w_s), from the episode's support set, so the
sampling criterion changes from task to task:

  support Avg(g) ─► E ─► mean over the support ─► (mu, log_var)     Eq. 12
  f_t = mu + exp(log_var / 2) eps (eps = 0 at evaluation)            Eq. 13
  w2 = G_t(f_t) / |G_t(f_t)|,  w_s = G_s(f_t) / |G_s(f_t)|           Eq. 14

Without adaptation (the rows of Table 4 without the learner) the two weights
are plain learned parameters, and they are made here too: one place decides
where TS's w2 and SA's w_s come from.

Choices the paper leaves open (see DESIGN.md 2):

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
- The generated weights are divided by max(|theta|, 1e-6)
  (`vim_jax.ops.l2_normalise`) and sown as 'intermediates' 'w2' and 'w_s'.
- The plain w2 is initialised like a Dense kernel; the plain w_s to
  1/sqrt(c) (the channel mean, unit norm like the generated one).

Randomness: `make_rng('sampler')` for eps, in training with adaptation only.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vim_jax.ops import vectors

Dtype = Any
# Added to the task encoder's log-variance: the task feature's noise starts
# at std 0.05 (see the module docstring).
LOG_VAR_OFFSET = 2 * float(np.log(0.05))


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


class TaskAdaptiveLearner(nn.Module):
  """TS's w2 and SA's w_s: generated from the support, or plain.

  Parameters (in the scope of the sampler that shares its scope):
  'task_encoder', 'generator_t' (Dense(task_dim -> hidden)) and
  'generator_s' (Dense(task_dim -> c)) with adaptation; 'evaluator_w2'
  [hidden, 1] and 'saliency_w_s' [c] without.

  Attributes:
    hidden: width of TS's evaluator (the size of w2).
    task_dim: size of the task feature f_t.
    dtype: computation dtype of the task encoder.
    param_dtype: parameter dtype.
  """
  hidden: int = 128
  task_dim: int = 128
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, support_features, units, *, adaptive, train):
    """The weights w2 [hidden] and w_s [c], each None where none is made.

    Args:
      support_features: [V_s, c] Avg(g) of every support video, as read.
      units: which weights are made (`sampler`'s units: booleans `encoder`,
        `gen_t`, `gen_s` for the generated ones, `w2`, `w_s` for the plain
        ones); a unit is made when training or evaluation uses it.
      adaptive: adaptation in force (the generated weights are returned).
      train: draws the task feature's eps (0 otherwise).
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
