"""Differentiable top-k frame selection by the perturbed maximum (paper 3.3.2).

Selecting T of M frames is the linear program of Eq. 4, whose solution is the
one-hot indicators of the top-k scores, sorted ascending so frame order is kept.
Following Berthet et al. (2020) and Cordonnier et al. (2021), the forward pass
smooths it by averaging the solution over Gaussian perturbations of the scores
(Eq. 5) and the backward pass uses the perturbed-maximum Jacobian (Eq. 6):

  I_sigma(s) = E_Z[I*(s + sigma Z)],
  dI_sigma(s)[j, m] / ds[m'] = E_Z[I*(s + sigma Z)[j, m] Z[m']] / sigma,

both estimated with the same `num_samples` draws of Z ~ N(0, 1)[M]. One noise
vector perturbs a frame's score for all k slots (the score is repeated k times,
Eq. 4). The backward pass is an unbiased estimate of the Jacobian of the
smoothed map I_sigma, not the derivative of the Monte-Carlo forward (which is
piecewise constant).

The op does not rescale the scores: sigma is in the units of the scores, which
the caller min-max normalises to [0, 1] per video (DESIGN 2).
"""
import functools
import numbers

import jax
import jax.numpy as jnp


def _topk_indices(x, k):
  """Indices of the k largest entries of the last axis, ascending.

  Args:
    x: [..., M] scores.
    k: static int, 1 <= k <= M.

  Returns:
    [..., k] int32 indices, sorted ascending. Ties go to the lower index.
  """
  _, idx = jax.lax.top_k(x, k)  # [..., k], by decreasing score
  return jnp.sort(idx, axis=-1)


def hard_topk(scores, k):
  """Hard top-k selection as one-hot indicators in temporal order.

  No noise; the output is piecewise constant in `scores`, so its gradient is
  zero everywhere (no straight-through estimate).

  Args:
    scores: [..., M] float scores.
    k: static int, 1 <= k <= M.

  Returns:
    [..., k, M] indicators in the dtype of `scores`: row j is the one-hot of
    the j-th selected index, the selected indices ascending. Ties are broken
    towards the lower index.
  """
  idx = _topk_indices(jax.lax.stop_gradient(scores), k)  # [..., k]
  return jax.nn.one_hot(idx, scores.shape[-1], dtype=scores.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _perturbed_topk(scores, noise, sigma, k):
  # scores [M], noise [n, M], sigma scalar.
  return _perturbed_topk_fwd(scores, noise, sigma, k)[0]


def _perturbed_topk_fwd(scores, noise, sigma, k):
  idx = _topk_indices(scores + sigma * noise, k)  # [n, k]
  indicators = jax.nn.one_hot(idx, scores.shape[-1], dtype=scores.dtype)
  # Keep only the indices for the backward pass: [n, k] instead of [n, k, M].
  return indicators.mean(axis=0), (idx, noise, sigma)  # [k, M]


def _perturbed_topk_bwd(k, residuals, g):
  # g [k, M]. grad[m'] = sum_{j,m} g[j, m] mean_n(I_n[j, m] Z_n[m']) / sigma.
  idx, noise, sigma = residuals  # [n, k], [n, M], []
  # sum_{j,m} g[j, m] I_n[j, m] = sum_j g[j, idx[n, j]].
  g_sel = g[jnp.arange(k)[None, :], idx].sum(axis=-1)  # [n]
  grad = g_sel @ noise / noise.shape[0]  # [M]
  # A (traced) sigma of 0 gives the hard forward; its gradient is defined as 0.
  positive = sigma > 0
  grad = jnp.where(positive, grad / jnp.where(positive, sigma, 1.0), 0.0)
  # The noise and sigma are not learned: zero cotangents.
  return grad.astype(g.dtype), jnp.zeros_like(noise), jnp.zeros_like(sigma)


_perturbed_topk.defvjp(_perturbed_topk_fwd, _perturbed_topk_bwd)


def perturbed_topk(scores, k, *, num_samples, sigma, rng):
  """Differentiable top-k selection of frames of one video (Eq. 4-6).

  For a batch of videos, vmap with one key per video: `jax.vmap(lambda s, r:
  perturbed_topk(s, k, num_samples=n, sigma=sigma, rng=r))(scores, keys)`
  with scores [V, M] and keys [V].

  Args:
    scores: [M] float importance scores of the M dense frames.
    k: static int, number of frames to select, 1 <= k <= M.
    num_samples: static int, number n of noise draws (paper: 500).
    sigma: noise scale, >= 0. A Python (or numpy) number 0 selects the hard
      top-k (`hard_topk`): no noise is drawn and the gradient is zero; use
      this at evaluation. A traced sigma (the training schedule) may be any
      value >= 0; a traced 0 gives the hard forward (computed through the
      noise path, so no cheaper) and a zero gradient.
    rng: PRNG key for the noise.

  Returns:
    [k, M] indicators in the dtype of `scores`: row j is the expectation over
    the noise of the one-hot of the j-th selected index, the selected indices
    of each draw sorted ascending (temporal order). Each row sums to 1.
    Select frames with `indicators @ frames` (Eq. 3).
  """
  if not 1 <= k <= scores.shape[-1]:
    raise ValueError(f'k={k} must be in [1, {scores.shape[-1]}].')
  if isinstance(sigma, numbers.Real):
    if sigma < 0:
      raise ValueError(f'sigma must be >= 0, got {sigma}.')
    if sigma == 0:
      return hard_topk(scores, k)
  noise = jax.random.normal(rng, (num_samples,) + scores.shape, scores.dtype)
  sigma = jnp.asarray(sigma, scores.dtype)
  return _perturbed_topk(scores, noise, sigma, k)  # [k, M]


def straight_through_topk(scores, k, *, num_samples, sigma, rng):
  """Hard top-k forward, perturbed-top-k backward (straight-through).

  The forward value is `hard_topk(scores, k)`, the one-hot indicators that
  evaluation uses; the gradient is `perturbed_topk`'s (Eq. 6) with the same
  arguments. With the smoothed forward of Eq. 5, frames whose scores lie
  within about sigma of each other are selected as blends (`I @ frames`
  averages them), so in training the backbone sees mixtures of frames that
  evaluation never gives it; here it sees the frames evaluation would pick.
  Same arguments and output shape as `perturbed_topk`.
  """
  soft = perturbed_topk(scores, k, num_samples=num_samples, sigma=sigma,
                        rng=rng)
  # soft - sg(soft) is exactly 0, so the forward value is exactly one-hot.
  return hard_topk(scores, k) + (soft - jax.lax.stop_gradient(soft))
