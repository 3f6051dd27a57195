"""What the action alignment did to one (support, query) pair (paper Fig. 24).

Two rows of tiles, one column per frame (the T frames the backbone saw):

  row 1: the support's frames; row 2: the query's frames.
  TT: the frames inside the duration a warp samples, normalised times
      [b - |a|, b + |a|] of the clip [-1, 1], are framed in blue (the
      paper's "action duration" boxes).
  SC: on frame t, the window its pooling keeps for the pair's offset
      o[t] = (dy, dx) cells, a red rectangle: the support's at +o, the
      query's at -o (the intersection of the map with its shifted copy, see
      `vim_jax.ops.spatial`), scaled from the h x w map to the frame.

Frame t is shown with the offset of aligned step t; after TT and TR step t is
a warped, re-mixed position, so this is the same reading as the paper's
figure, a picture rather than an exact correspondence.

Pure numpy (no plotting backend); `vim_jax.figures.sampler.save_png` writes it.
"""
from typing import Sequence, Tuple

import numpy as np

from vim_jax.figures.sampler import BACKGROUND
from vim_jax.figures.sampler import GAP

TT_COLOUR = (0, 90, 255)
SC_COLOUR = (255, 0, 0)
BOX = 3  # pixels of the blue frame around a tile
LINE = 1  # pixels of the red window outline
ROW_GAP = 6  # pixels between the support and the query row


def sampled_frames(a: float, b: float, num_frames: int) -> np.ndarray:
  """[T] bool: frames whose normalised time lies in the warp's span.

  The warp samples `a * t + b` for `t` in [-1, 1] (clamped to the clip), so
  it covers [b - |a|, b + |a|]; frame i sits at `linspace(-1, 1, T)[i]`.
  """
  times = np.linspace(-1, 1, num_frames)
  lo = max(b - abs(a), -1.0) - 1e-6
  hi = min(b + abs(a), 1.0) + 1e-6
  return (times >= lo) & (times <= hi)


def sc_window(offset: Sequence[float], map_size: Tuple[int, int],
              frame_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
  """Pixel box (top, left, bottom, right), exclusive ends, of a pooling window.

  The window is where `offset_mask(offset)` is 1 or fractional, i.e. the map
  intersected with its copy shifted by (dy, dx) cells: rows
  [max(0, dy), h + min(0, dy)), columns likewise.
  """
  (dy, dx), (h, w), (big_h, big_w) = offset, map_size, frame_size
  top, bottom = max(0.0, dy), h + min(0.0, dy)
  left, right = max(0.0, dx), w + min(0.0, dx)
  sy, sx = big_h / h, big_w / w
  box = (int(round(top * sy)), int(round(left * sx)),
         int(round(bottom * sy)), int(round(right * sx)))
  return (min(box[0], big_h - 1), min(box[1], big_w - 1),
          max(box[2], box[0] + 1), max(box[3], box[1] + 1))


def _outline(image, box, colour, width):
  """Draws a rectangle outline (top, left, bottom, right) in place."""
  top, left, bottom, right = box
  image[top:top + width, left:right] = colour
  image[bottom - width:bottom, left:right] = colour
  image[top:bottom, left:left + width] = colour
  image[top:bottom, right - width:right] = colour


def alignment_figure(support_frames, query_frames, warp, offsets,
                     map_size: Tuple[int, int]) -> np.ndarray:
  """Draws one pair's temporal and spatial alignment.

  Args:
    support_frames: [T, H, W, 3] uint8 frames of the support video.
    query_frames: [T, H, W, 3] uint8 frames of the query video.
    warp: (a, b) of the query (aux['warp'][V_s + q]), or [[a_s, b_s],
      [a_q, b_q]] for support and query. With one pair, the support row
      gets no duration boxes.
    offsets: [T, 2] (dy, dx) in cells, the pair's aux['offsets'][q, n].
    map_size: (h, w) of the feature map the offsets refer to.

  Returns:
    [2 (H + 2 BOX) + ROW_GAP, T (W + 2 BOX + GAP) - GAP, 3] uint8 image.
  """
  support_frames = np.asarray(support_frames, np.uint8)
  query_frames = np.asarray(query_frames, np.uint8)
  t_len, big_h, big_w, _ = query_frames.shape
  warp = np.asarray(warp, np.float64).reshape(-1, 2)
  warps = [None, warp[0]] if len(warp) == 1 else [warp[0], warp[1]]
  offsets = np.asarray(offsets, np.float64).reshape(t_len, 2)

  tile_h, tile_w = big_h + 2 * BOX, big_w + 2 * BOX
  image = np.full((2 * tile_h + ROW_GAP, t_len * (tile_w + GAP) - GAP, 3),
                  BACKGROUND, np.uint8)
  for row, (frames, video_warp, sign) in enumerate(
      ((support_frames, warps[0], 1.0), (query_frames, warps[1], -1.0))):
    marked = (np.zeros(t_len, bool) if video_warp is None
              else sampled_frames(video_warp[0], video_warp[1], t_len))
    for t in range(t_len):
      top, left = row * (tile_h + ROW_GAP), t * (tile_w + GAP)
      if marked[t]:
        _outline(image, (top, left, top + tile_h, left + tile_w), TT_COLOUR,
                 BOX)
      frame = frames[t].copy()
      _outline(frame, sc_window(sign * offsets[t], map_size, (big_h, big_w)),
               SC_COLOUR, LINE)
      image[top + BOX:top + BOX + big_h, left + BOX:left + BOX + big_w] = frame
  return image
