"""Datasets (TFDS builders) and the episodic tf.data pipeline."""
