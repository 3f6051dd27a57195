"""Operations of VIM: pure functions of arrays (the JAX ones differentiable).

- `perturbed_topk`: differentiable top-k frame selection (paper 3.3.2);
  `straight_through_topk`: its gradient behind a hard top-k forward.
- `saliency_grid`, `resample`: inverse-transform sampling (paper 3.3.3).
- `temporal_warp`: affine time warp by linear interpolation (paper 3.4.3).
- `offset_mask`: smooth shifted-window mask for spatial coordination (3.4.4).
- `depthwise_conv3x3`: the scan network's depthwise convolution, fast on CPU.
- `otam_distance`, `otam_cost`, `bi_mhm`: video distances over frame distance
  matrices, for the OTAM and HyRSM heads (Table 3).
- `l2_normalise`, `minmax_normalise`: guarded normalisations.
- `dense_frame_indices`: the segment-based frame indices that the input
  pipeline, the model and the figures share (numpy).
"""
import importlib

_MODULE_OF = {
    'bi_mhm': 'otam',
    'dense_frame_indices': 'frames',
    'depthwise_conv3x3': 'depthwise',
    'l2_normalise': 'vectors',
    'minmax_normalise': 'vectors',
    'offset_mask': 'spatial',
    'otam_cost': 'otam',
    'otam_distance': 'otam',
    'perturbed_topk': 'topk',
    'resample': 'saliency',
    'saliency_grid': 'saliency',
    'straight_through_topk': 'topk',
    'temporal_warp': 'temporal',
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
  # Lazy, so that importing one op does not import the others' modules.
  if name not in _MODULE_OF:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  return getattr(importlib.import_module(f'{__name__}.{_MODULE_OF[name]}'), name)
