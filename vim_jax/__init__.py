"""vim_jax: VIM few-shot action recognition in JAX/Flax."""
