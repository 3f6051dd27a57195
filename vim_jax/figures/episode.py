"""The sampler and alignment figures of one query of a run episode.

One implementation for the test-time figures of training
(`vim_jax.train.figures`) and the per-query figures of prediction
(`vim_jax.predict`): both run the model on an episode with `train=False` and
draw from its outputs here.
"""
from typing import Any

import numpy as np

from vim_jax.figures import alignment as alignment_figures
from vim_jax.figures import sampler as sampler_figures
from vim_jax.figures.sampler import BACKGROUND
from vim_jax.models import normalisation
from vim_jax.ops import frames as frames_ops

ROW_GAP = 8  # pixels between stacked figures


def episode_figures(model_config, frame_size: int, episode: dict[str, Any],
                    outputs: dict[str, Any], *, query: int = 0,
                    label: int | None = None) -> dict[str, np.ndarray]:
  """Pictures of what the sampler and the alignment did to one query.

  Args:
    model_config: `config.model` of the model that made `outputs`.
    frame_size: side of the episode's frames (`config.data.frame_size`); the
      feature map the SC offsets refer to is a 32nd of it (ResNet stride).
    episode: 'support' [V_s, F, H, W, 3] uint8, 'support_labels' [V_s],
      'query' [V_q, F, H, W, 3] uint8 (F = M with a sampler, else T), and
      'query_labels' [V_q] when `label` is None.
    outputs: the model's outputs on `episode` with `train=False` (numpy or
      jax arrays).
    query: which query (0..V_q-1) to draw.
    label: the class (0..N-1) whose alignment with the query is drawn, with
      the first support video of that class; None: the query's own label.

  Returns:
    {name: uint8 [H, W, 3]}: 'sampler' (paper Fig. 23: the query's dense
    frames with the selection, saliency and amplified frames) with a
    sampler, 'alignment' (Fig. 24: the warped durations and SC windows of the
    pair) with an alignment; empty without those modules.
  """
  outputs = {k: outputs[k] for k in ('sampler', 'alignment') if k in outputs}
  support_labels = np.asarray(episode['support_labels'])
  num_support = len(support_labels)
  videos = np.concatenate([np.asarray(episode['support']),
                           np.asarray(episode['query'])])  # uint8 [V, F, ...]
  row = num_support + query  # the query's row among the V videos
  images = {}
  if 'sampler' in outputs:
    aux = {k: np.asarray(v) for k, v in outputs['sampler'].items()}
    images['sampler'] = sampler_figures.sampler_grid(
        np.asarray(normalisation.normalise(videos[row])), aux, video=row,
        mean=normalisation.IMAGENET_MEAN, std=normalisation.IMAGENET_STD,
        floor=model_config.sampler.saliency_floor)
  if 'alignment' in outputs:
    aux = {k: np.asarray(v) for k, v in outputs['alignment'].items()}
    if label is None:
      label = int(np.asarray(episode['query_labels'])[query])
    support = int(np.flatnonzero(support_labels == label)[0])
    if 'sampler' in outputs:
      indices = np.asarray(outputs['sampler']['indices'])  # [V, T]
      frames = np.take_along_axis(videos, indices[:, :, None, None, None], 1)
    else:
      frames = videos[:, frames_ops.dense_frame_indices(
          videos.shape[1], model_config.frames)]
    map_side = -(-frame_size // 32)
    images['alignment'] = alignment_figures.alignment_figure(
        frames[support], frames[row], aux['warp'][[support, row]],
        aux['offsets'][query, label], (map_side, map_side))
  return images


def stack(images) -> np.ndarray:
  """Figures one under the other, left-aligned, on the figures' background.

  Args:
    images: a non-empty sequence of uint8 [H_i, W_i, 3].

  Returns:
    uint8 [sum H_i + (n - 1) ROW_GAP, max W_i, 3].
  """
  width = max(image.shape[1] for image in images)
  height = sum(image.shape[0] for image in images) + ROW_GAP * (
      len(images) - 1)
  out = np.full((height, width, 3), BACKGROUND, np.uint8)
  top = 0
  for image in images:
    out[top:top + image.shape[0], :image.shape[1]] = image
    top += image.shape[0] + ROW_GAP
  return out
