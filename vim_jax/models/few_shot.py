"""The few-shot model: (sampler) -> backbone -> (alignment) -> metric.

With every VIM module off this is ProtoNet with the frame-wise cosine metric;
the sampler and the alignment plug in here as config switches. The metric is
ProtoNet's frame-wise cosine or one of the heads of OTAM, TRX and HyRSM
(`config.model.head`), alone or behind the alignment (paper Table 3, "+ VIM":
the head compares each class's aligned query with that class's support
videos as aligned; `heads.py`, `compare`).
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vim_jax.models import alignment as alignment_lib
from vim_jax.models import heads as heads_lib
from vim_jax.models import normalisation as normalisation_lib
from vim_jax.models import protonet
from vim_jax.models import sampler as sampler_lib
from vim_jax.models import switches
from vim_jax.ops import frames as frames_ops

# Metric heads (`config.model.head`) besides ProtoNet's frame-wise cosine.
HEADS = {'otam': heads_lib.OTAMHead, 'trx': heads_lib.TRXHead,
         'hyrsm': heads_lib.HyRSMHead}


def uses_sampler(model_config) -> bool:
  return bool(model_config.sampler.enabled)


def uses_alignment(model_config) -> bool:
  return any(switches.ever_on(model_config.alignment, name)
             for name in ('transform', 'rearrange', 'spatial'))


def check_head(model_config):
  """Raises for an unknown `config.model.head`, or a head the alignment
  cannot feed: TRX's and HyRSM's parameters depend on the feature width and
  serve both the unaligned features (C channels, 'unaligned_logits') and
  the aligned ones (D = `alignment.channels`), so behind the alignment they
  need `alignment.channels = 0` (D = C)."""
  head = model_config.get('head', 'protonet')
  if head != 'protonet' and head not in HEADS:
    raise ValueError(f'config.model.head={head!r} is not one of '
                     f"{('protonet',) + tuple(HEADS)}.")
  if (head in ('trx', 'hyrsm') and uses_alignment(model_config)
      and model_config.alignment.channels):
    raise ValueError(
        f'config.model.head={head!r} behind the alignment needs '
        'config.model.alignment.channels=0 (got '
        f'{model_config.alignment.channels}): its parameters serve the '
        "backbone's C channels (unaligned logits) and the alignment's.")


class FewShotModel(nn.Module):
  """Classifies an episode's queries against its support.

  `vim_jax.models.build.model` makes one from `config.model`.

  Attributes:
    way: N, classes per episode.
    backbone: frames [B, H, W, 3] -> maps [B, h, w, C].
    frames: T, frames per video the backbone sees.
    logit_scale: the metric's logit scale.
    dtype: computation dtype of the frames.
    sampler: the `VideoSampler`, or None (uniform frames).
    alignment: the `ActionAlignment`, or None.
    head: a metric head of `HEADS`, or None (ProtoNet's frame-wise cosine).
  """
  way: int
  backbone: nn.Module
  frames: int
  logit_scale: float = 1.0
  dtype: Any = jnp.float32
  sampler: Optional[sampler_lib.VideoSampler] = None
  alignment: Optional[alignment_lib.ActionAlignment] = None
  head: Optional[nn.Module] = None

  def embed(self, videos, *, train):
    """Backbone feature maps of every frame: [V, T, H, W, 3] -> [V, T, h, w, C]."""
    v, t = videos.shape[:2]
    maps = self.backbone(
        videos.reshape((v * t,) + videos.shape[2:]), train=train)
    return maps.reshape((v, t) + maps.shape[1:])

  def select_frames(self, videos):
    """Uniform sampling: T of the M dense frames at the segment centres."""
    m, t = videos.shape[1], self.frames
    if m == t:
      return videos
    return videos[:, frames_ops.dense_frame_indices(m, t)]

  def __call__(self, episode: dict[str, Any], *, train: bool,
               sigma: float = 0.0, prior: float = 0.0, intra: bool = False,
               distill_amplified: bool = False):
    """Runs one episode.

    Args:
      episode: 'support' [V_s, M, H, W, 3] uint8, 'support_labels' [V_s],
        'query' [V_q, M, H, W, 3] uint8.
      train: batch statistics and random perturbations when True.
      sigma: noise scale of the perturbed top-k (used by the sampler).
      prior: weight of the sampler's uniform prior on the TS scores (training
        only; `steps.prior_schedule`).
      intra: compute L_intra's inputs 'intra_logits' (with a sampler): the
        scan features of the frames the sampler produced, amplified ones
        rescanned (`VideoSampler`'s `rescan`), against the dense frames'.
      distill_amplified: 'distill_frames' pair the backbone's features with
        the scan net's on the same frames, the amplified ones rescanned
        (`train.scan_distill_frames='amplified'`), instead of the scan
        features of the selected dense frames before SA.

    Returns:
      A dict with 'logits' [V_q, N], and 'sampler' / 'alignment' dicts of the
      modules' auxiliary outputs when they are on. With the sampler also the
      inputs of its training terms (vim_jax/losses.py): 'intra_logits'
      (dense, selected) [V_q, N] (with `intra`) and 'distill_frames' (scan
      [V, T, c], backbone [V, T, C] features of the selected frames); with
      the alignment 'unaligned_logits' [V_q, N] (the metric on the
      backbone's features, as without the alignment) and 'aligned_query'
      [V_q, N, T, D] (the unaligned query features are
      outputs['alignment']['query_unaligned']). In training, with the
      alignment, also 'alignment_input' (the backbone maps [V, T, h, w, C]
      it aligned) and, where SC is perturbed, 'alignment_key' (the
      perturbations' key): what a second pass of `aligned_logits` needs to
      repeat the first (`steps.routed_inter_outputs`).
    """
    num_support = episode['support'].shape[0]
    labels = episode['support_labels']
    videos, outputs = self._input_frames(
        episode, train=train, sigma=sigma, prior=prior, intra=intra,
        rescan=intra or distill_amplified)
    maps = self.embed(videos, train=train)  # [V, T, h, w, C]
    features = maps.mean(axis=(2, 3))  # [V, T, C]
    if self.sampler is not None:
      outputs['distill_frames'] = (
          self._distilled_scan(outputs['sampler'], distill_amplified),
          features)
    if self.head is not None:
      unaligned = self.head(features[:num_support], labels,
                            features[num_support:], train=train)
    else:
      unaligned = self._logits(features, labels, num_support)
    if self.alignment is not None:
      outputs.update(self._alignment_outputs(
          maps, labels, num_support, unaligned, train=train))
    else:
      outputs['logits'] = unaligned
    return outputs

  @staticmethod
  def _distilled_scan(aux, amplified):
    """The scan features [V, T, c] that `losses.scan_distillation` pairs
    with the backbone's: of the amplified frames when `amplified` and SA
    rescanned them (then only these T frames need the scan net's
    backward), else of the selected dense frames, which without SA are the
    frames the backbone saw. The selection is fixed there (the
    distillation trains the scan net, not TS)."""
    if amplified and 'scan_amplified' in aux:
      return aux['scan_amplified']
    return jnp.einsum(
        'vtm,vmc->vtc', jax.lax.stop_gradient(aux['indicators']),
        aux['scan_frames'], precision=jax.lax.Precision.HIGHEST)

  def _input_frames(self, episode, *, train, sigma, prior, intra, rescan):
    """The T frames of every video that the backbone sees, support first.

    The sampler's frames, or without a sampler the uniformly sampled ones
    (`select_frames`). Arguments as `__call__`'s; `rescan` is the
    sampler's (`VideoSampler.__call__`).

    Returns:
      [V, T, H, W, 3] normalised frames, and the first outputs: with the
      sampler its aux in 'sampler' and, with `intra`, 'intra_logits'.
    """
    dtype = jnp.dtype(self.dtype)
    if self.sampler is None:
      videos = jnp.concatenate([episode['support'], episode['query']], 0)
      return normalisation_lib.normalise(self.select_frames(videos), dtype), {}
    num_support = episode['support'].shape[0]
    labels = episode['support_labels']
    outputs = {}
    support, query, outputs['sampler'] = self.sampler(
        normalisation_lib.normalise(episode['support'], dtype), labels,
        normalisation_lib.normalise(episode['query'], dtype), train=train,
        sigma=sigma, prior=prior, rescan=rescan)
    if intra:
      # L_intra's predictions from scan features, dense vs produced
      # frames; one pooled vector per video, weighted like a T-frame
      # distance so that both predictions are as sharp as the model's own
      # logits can be.
      outputs['intra_logits'] = tuple(
          self._logits(outputs['sampler'][key][:, None], labels,
                       num_support, scale=self.frames)
          for key in ('scan_dense', 'scan_selected'))
    return jnp.concatenate([support, query], 0), outputs

  def _alignment_outputs(self, maps, labels, num_support, unaligned, *,
                         train):
    """'logits', 'aligned_query' and 'alignment' from the alignment, the
    metric's 'unaligned_logits' (L_inter's reference) and, in training,
    'alignment_input' and 'alignment_key' (see `__call__`)."""
    outputs = {}
    rng = self.make_rng('sampler') if self.alignment.perturbs(train) else None
    (outputs['logits'], outputs['aligned_query'],
     outputs['alignment']) = self.aligned_logits(
         maps, labels, num_support, train=train, rng=rng)
    outputs['unaligned_logits'] = unaligned
    if train:
      outputs['alignment_input'] = maps
      if rng is not None:
        outputs['alignment_key'] = rng
    return outputs

  def aligned_logits(self, maps, labels, num_support, *, train, rng=None,
                     fixed_head=False):
    """The alignment, then the metric on what it aligned.

    ProtoNet's metric is the frame-wise cosine (Eq. 23) between each aligned
    query and its class's aligned prototype. A head (`heads.py`, `compare`)
    compares the query as aligned to class n with class n's support videos
    as aligned (the alignment's 'support_aligned', whose class means are
    the prototypes).

    Args:
      maps: [V, T, h, w, C] backbone maps, support first.
      labels: [V_s] support labels.
      num_support: V_s.
      train: training mode.
      rng: the SC perturbations' key (`ActionAlignment`).
      fixed_head: the head's parameters behind a stop-gradient (the routed
        L_inter pass of `train.inter_grad='alignment'`, which trains the
        alignment's parameters only: `steps.routed_inter_outputs`).

    Returns:
      logits [V_q, N], query_aligned [V_q, N, T, D], the alignment's aux.
    """
    query_aligned, prototypes, aux = self.alignment(
        maps[:num_support], labels, maps[num_support:], train=train, rng=rng,
        support_videos=self.head is not None)
    if self.head is None:
      distance = protonet.frame_cosine_distance(query_aligned, prototypes)
      return -self.logit_scale * distance, query_aligned, aux
    support = aux.pop('support_aligned')
    if fixed_head:
      variables = jax.lax.stop_gradient(self.head.variables)
      logits = self.head.clone(parent=None).apply(
          variables, support, labels, query_aligned, train=train,
          method='compare')
    else:
      logits = self.head.compare(support, labels, query_aligned, train=train)
    return logits, query_aligned, aux

  def _logits(self, features, labels, num_support, scale=1.0):
    """ProtoNet logits of the queries from [V, T, C] features (support first)."""
    features = features.astype(jnp.float32)
    return protonet.protonet_logits(
        features[:num_support], labels, features[num_support:], self.way,
        self.logit_scale * scale)
