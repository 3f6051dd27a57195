"""Flax (linen) modules: backbones, scan network, sampler, alignment, heads."""
