"""Network weights: the weight-folder format, converting, loading, pretraining.

- `folder`: the format of a weight folder (`<dir>/variables`,
  `<dir>/backbone.json`): writing, reading, building the module it fits.
- `convert`: torchvision/timm and Keras ImageNet weights -> weight folders
  (`python -m vim_jax.weights.convert`).
- `load`: weight folders -> the few-shot model's variables, with checks
  against the config (`config.model.backbone_weights`, `scan_weights`).
- `pretrain`: pretraining on the training classes where there are no
  ImageNet weights (the backbone as a ProtoNet, the scan net distilled),
  cached as weight folders (`python -m vim_jax.weights.pretrain`).

`folder`, `convert` and `load` sit beside vim_jax/models (they import the
models, never the other way round); `pretrain` is an experiment of the one
training loop (vim_jax/trainer.py) and also uses the input pipeline and
vim_jax/steps.py (tests/test_layering.py).
"""
