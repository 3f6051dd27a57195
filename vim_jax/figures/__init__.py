"""Figures of the paper's kind, drawn as uint8 images for summaries."""
