"""Evaluation over a fixed set of episodes: mean accuracy, 95% CI, per class."""
import math
from typing import Sequence

import numpy as np
from scipy import stats


def confidence_interval(accuracies) -> float:
  """Half-width of the 95% interval of the mean: 1.96 * std / sqrt(n).

  std is the population standard deviation of the per-episode accuracies, as
  in the few-shot literature's reports.
  """
  accuracies = np.asarray(accuracies, np.float64)
  return 1.96 * float(accuracies.std()) / math.sqrt(len(accuracies))


def seed_interval(values) -> tuple[float, float]:
  """Mean of per-seed results and its 95% t half-width over the seeds.

  Training seeds are few, so the interval uses Student's t with n - 1
  degrees of freedom and the sample standard deviation (ddof 1), unlike
  `confidence_interval` over hundreds of episodes. One value has no
  interval: NaN.
  """
  values = np.asarray(values, np.float64)
  if values.ndim != 1 or not len(values):
    raise ValueError(f'expected a 1-D list of per-seed values, got shape '
                     f'{values.shape}')
  if len(values) == 1:
    return float(values[0]), float('nan')
  t = stats.t.ppf(0.975, len(values) - 1)
  half = t * values.std(ddof=1) / math.sqrt(len(values))
  return float(values.mean()), float(half)


def paired_difference(a, b) -> tuple[float, float]:
  """Mean of a - b and its 95% half-width, for results on the same episodes.

  Args:
    a, b: per-episode accuracies of two models on the same episodes, in the
      same order.

  Returns:
    (mean difference, 1.96 * std(a - b) / sqrt(n)), in the units of a and b.
    Pairing removes the episodes' shared difficulty from the interval, so it
    is much narrower than the two models' own intervals combined.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f'paired results need equal 1-D shapes, got {a.shape} '
                     f'and {b.shape}')
  return float((a - b).mean()), confidence_interval(a - b)


EPISODE_MEANS = {
    'in_span': ('frames_in_span', 100.0),  # % of used frames in the action
    'alignment_cost': ('alignment_cost', 1.0),
    'unaligned_accuracy': ('unaligned_accuracy', 100.0),  # alignment off
    'warps_at_bound': ('warps_at_bound', 100.0),  # % of TT warps at the bound
    'offsets_at_bound': ('offsets_at_bound', 100.0),  # % of SC offsets
}


def summarise(results: dict, num_episodes: int,
              class_names: Sequence[str]) -> dict:
  """Reduces per-episode results to the reported numbers.

  Args:
    results: numpy arrays over episodes (possibly with padded repeats):
      'index' [E], 'accuracy' [E], 'correct' [E, V_q], 'query_class' [E, V_q].
    num_episodes: n; every index in 0..n-1 must be present.
    class_names: global class names.

  Returns:
    A JSON-friendly dict: 'accuracy' and 'ci95' in percent, 'num_episodes',
    'per_class' {name: {'accuracy', 'queries'}}, 'episode_accuracy' (percent,
    episode i at position i: for paired comparisons), and when present
    'frames_in_span' (percent), 'alignment_cost' (mean),
    'unaligned_accuracy' (percent: the alignment off at test),
    'warps_at_bound' and 'offsets_at_bound' (percent of TT warps and SC
    offsets at their bound).
  """
  index = np.asarray(results['index'])
  _, first = np.unique(index, return_index=True)
  if len(first) != num_episodes or index[first].max() != num_episodes - 1:
    raise ValueError(
        f'expected episodes 0..{num_episodes - 1}, got {len(first)} distinct '
        'indices')
  accuracy = np.asarray(results['accuracy'], np.float64)[first]
  correct = np.asarray(results['correct'])[first].ravel()
  query_class = np.asarray(results['query_class'])[first].ravel()
  per_class = {}
  for c in np.unique(query_class):
    hits = correct[query_class == c]
    per_class[class_names[c]] = dict(
        accuracy=100.0 * float(hits.mean()), queries=int(hits.size))
  summary = dict(
      accuracy=100.0 * float(accuracy.mean()),
      ci95=100.0 * confidence_interval(accuracy),
      num_episodes=int(num_episodes),
      per_class=per_class,
      episode_accuracy=(100.0 * accuracy).tolist())  # np.unique sorts
  # Optional per-episode means: results key -> (summary key, scale).
  for key, (name, scale) in EPISODE_MEANS.items():
    if key in results:
      summary[name] = scale * float(
          np.mean(np.asarray(results[key], np.float64)[first]))
  return summary
