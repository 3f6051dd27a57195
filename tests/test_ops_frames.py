"""`dense_frame_indices`: the frames an episode, the model and the figures read."""
import numpy as np

from vim_jax.ops import frames as frames_ops


def test_dense_frame_indices_hand_worked():
  np.testing.assert_array_equal(frames_ops.dense_frame_indices(10, 5),
                                [1, 3, 5, 7, 9])
  np.testing.assert_array_equal(
      frames_ops.dense_frame_indices(10, 5, np.array([0, .99, 0, .99, 0])),
      [0, 3, 4, 7, 8])
  np.testing.assert_array_equal(frames_ops.dense_frame_indices(3, 6),
                                [0, 0, 1, 1, 2, 2])
