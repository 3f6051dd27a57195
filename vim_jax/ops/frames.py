"""Which frames of a video an episode reads: dense segment-based sampling.

One rule for the input pipeline (the M dense frames of an episode, and the T
uniform frames of evaluation), the model (ProtoNet's T uniform frames of the
M, the sampler's uniform prior) and the figures, so that all of them pick the
same frames. Pure numpy: it runs inside tf.data as well as at trace time.
"""
import numpy as np


def dense_frame_indices(num_frames: int, count: int, jitter=None):
  """Segment-based dense sampling: one frame in each of `count` equal segments.

  Args:
    num_frames: frames in the video.
    count: frames to take.
    jitter: [count] offsets in [0, 1) inside each segment (training); None
      takes the segment centres (evaluation).

  Returns:
    [count] int frame indices, non-decreasing (repeats when the video is
    shorter than `count`).
  """
  offset = 0.5 if jitter is None else jitter
  positions = (np.arange(count) + offset) * (num_frames / count)
  return np.minimum(np.floor(positions).astype(np.int64), num_frames - 1)
