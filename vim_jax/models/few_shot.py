"""The few-shot model: (sampler) -> backbone -> (alignment) -> metric.

With every VIM module off this is ProtoNet with the frame-wise cosine metric;
the sampler and the alignment plug in here as config switches.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from input_pipeline import episodes as episodes_lib
from vim_jax.models import protonet
from vim_jax.models import resnet

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def normalise(frames, dtype=jnp.float32):
  """uint8 RGB frames -> ImageNet-normalised floats."""
  return ((frames.astype(jnp.float32) - IMAGENET_MEAN) / IMAGENET_STD).astype(
      dtype)


class FewShotModel(nn.Module):
  """Classifies an episode's queries against its support.

  Attributes:
    config: `config.model`.
    way: N, classes per episode.
  """
  config: ml_collections.ConfigDict
  way: int

  def setup(self):
    dtype = jnp.dtype(self.config.dtype)
    self.backbone = resnet.build_backbone(
        self.config.backbone, width=self.config.backbone_width, dtype=dtype)

  def embed(self, videos, *, train):
    """Backbone feature maps of every frame: [V, T, H, W, 3] -> [V, T, h, w, C]."""
    v, t = videos.shape[:2]
    maps = self.backbone(
        videos.reshape((v * t,) + videos.shape[2:]), train=train)
    return maps.reshape((v, t) + maps.shape[1:])

  def select_frames(self, videos):
    """Uniform sampling: T of the M dense frames at the segment centres."""
    m, t = videos.shape[1], self.config.frames
    if m == t:
      return videos
    return videos[:, episodes_lib.dense_frame_indices(m, t)]

  def __call__(self, episode: dict[str, Any], *, train: bool,
               sigma: float = 0.0):
    """Runs one episode.

    Args:
      episode: 'support' [V_s, M, H, W, 3] uint8, 'support_labels' [V_s],
        'query' [V_q, M, H, W, 3] uint8.
      train: batch statistics and random perturbations when True.
      sigma: noise scale of the perturbed top-k (unused without a sampler).

    Returns:
      A dict with 'logits' [V_q, N].
    """
    del sigma
    dtype = jnp.dtype(self.config.dtype)
    num_support = episode['support'].shape[0]
    videos = jnp.concatenate([episode['support'], episode['query']], 0)
    videos = normalise(self.select_frames(videos), dtype)
    maps = self.embed(videos, train=train)  # [V, T, h, w, C]
    features = maps.mean(axis=(2, 3)).astype(jnp.float32)  # [V, T, C]
    logits = protonet.protonet_logits(
        features[:num_support], episode['support_labels'],
        features[num_support:], self.way, self.config.logit_scale)
    return dict(logits=logits)
