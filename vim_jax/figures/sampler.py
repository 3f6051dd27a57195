"""What the video sampler did to one video, as an image (paper Fig. 23).

Three rows of tiles, one column per dense frame:

  row 1: the M dense frames; the T selected ones framed in green;
  row 2: under each selected frame, its saliency map (jet colour map, blended
         over the frame; nearest-neighbour upsampling, which is how the
         amplifier reads the map: piecewise constant over its cells);
  row 3: under each selected frame, the amplified frame.

Pure numpy plus a matplotlib colour map (no figure, so no backend is needed).
"""
import os

import jax
import matplotlib
import numpy as np
from PIL import Image

from vim_jax.models import spatial_amplifier

SELECTED_COLOUR = (0, 200, 0)
BACKGROUND = 255
GAP = 2  # pixels between tiles
_amplify = jax.jit(spatial_amplifier.amplify, static_argnames='floor')


def _to_uint8(frames, mean, std):
  """ImageNet-normalised [..., H, W, 3] -> uint8 RGB."""
  x = np.asarray(frames, np.float32) * np.asarray(std, np.float32) + np.asarray(
      mean, np.float32)
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _heat(saliency, frame, alpha=0.6):
  """A [h, w] map in [0, 1] as a jet heat map over a uint8 [H, W, 3] frame."""
  big_h, big_w = frame.shape[:2]
  h, w = saliency.shape
  rows = np.arange(big_h) * h // big_h
  cols = np.arange(big_w) * w // big_w
  up = np.clip(np.asarray(saliency, np.float32), 0, 1)[rows][:, cols]
  colour = matplotlib.colormaps['jet'](up)[..., :3] * 255.0  # [H, W, 3]
  return np.round(alpha * colour + (1 - alpha) * frame).astype(np.uint8)


def _border(tile, colour, width):
  tile = tile.copy()
  tile[:width], tile[-width:] = colour, colour
  tile[:, :width], tile[:, -width:] = colour, colour
  return tile


def sampler_grid(dense_frames, aux, video=0, *, mean, std, selected=None,
                 floor=0.05):
  """Draws the sampler's selection, saliency and amplification of one video.

  Args:
    dense_frames: [V, M, H, W, 3] (or [M, H, W, 3] for the one video) the
      sampler's ImageNet-normalised input frames.
    aux: the sampler's aux dict (arrays over V videos); 'indices' [V, T] and
      'saliency' [V, T, h, w] are used.
    video: which video of the V to draw.
    mean: [3] the normalisation's mean (in the units of the frames' pixels,
      e.g. 0-255).
    std: [3] the normalisation's standard deviation.
    selected: optional [V, T, H, W, 3] the sampler's output frames
      (normalised). Without it the amplified frames are recomputed from the
      dense frames, 'indices' and 'saliency' (exact at evaluation, where the
      selection is hard).
    floor: the saliency floor used for that recomputation
      (config.model.sampler.saliency_floor).

  Returns:
    uint8 [3 H + 2 GAP, M W + (M - 1) GAP, 3] image.
  """
  dense = np.asarray(dense_frames)
  if dense.ndim == 5:
    dense = dense[video]
  indices = np.asarray(aux['indices'])[video]  # [T]
  saliency = np.asarray(aux['saliency'], np.float32)[video]  # [T, h, w]
  if selected is None:
    amplified = np.asarray(_amplify(
        dense[indices].astype(np.float32), saliency, floor=floor))
  else:
    amplified = np.asarray(selected)[video]
  m, h, w, _ = dense.shape
  t = indices.shape[0]
  dense_u8 = _to_uint8(dense, mean, std)
  amplified_u8 = _to_uint8(amplified, mean, std)

  # Rows 2-3 sit under their frame's column; a soft training selection may
  # repeat an index, then they are laid out from the left instead.
  distinct = np.all(np.diff(indices) > 0)
  columns = indices if distinct else np.arange(t)
  image = np.full((3 * h + 2 * GAP, m * w + (m - 1) * GAP, 3), BACKGROUND,
                  np.uint8)

  def put(row, col, tile):
    y, x = row * (h + GAP), col * (w + GAP)
    image[y:y + h, x:x + w] = tile

  border = max(1, min(h, w) // 16)
  for i in range(m):
    tile = dense_u8[i]
    if i in set(indices.tolist()):
      tile = _border(tile, SELECTED_COLOUR, border)
    put(0, i, tile)
  for j in range(t):
    put(1, columns[j], _heat(saliency[j], dense_u8[indices[j]]))
    put(2, columns[j], amplified_u8[j])
  return image


def save_png(image, path):
  """Writes a uint8 [H, W, 3] image as a PNG, creating the folder."""
  folder = os.path.dirname(path)
  if folder:
    os.makedirs(folder, exist_ok=True)
  Image.fromarray(np.asarray(image, np.uint8)).save(path, format='PNG')
