"""Confidence interval and per-class accuracy against independent computations."""
import numpy as np
import pytest
from scipy import stats

from vim_jax import evaluate


def test_ci_matches_normal_interval():
  acc = np.random.default_rng(0).uniform(0.2, 1.0, 500)
  z = stats.norm.ppf(0.975)
  expected = z * stats.sem(acc, ddof=0)
  assert evaluate.confidence_interval(acc) == pytest.approx(expected, rel=1e-3)


def test_summarise_hand_worked_with_padding():
  # three episodes, two queries each; episode 2 repeated as padding
  results = dict(
      index=np.array([0, 1, 2, 2]),
      accuracy=np.array([1.0, 0.5, 0.0, 0.0]),
      correct=np.array([[1, 1], [1, 0], [0, 0], [0, 0]], bool),
      query_class=np.array([[0, 1], [1, 2], [2, 0], [2, 0]]))
  out = evaluate.summarise(results, 3, ['a', 'b', 'c'])
  assert out['accuracy'] == pytest.approx(50.0)
  assert out['ci95'] == pytest.approx(100 * 1.96 * np.std([1, .5, 0]) / np.sqrt(3))
  assert out['per_class'] == {'a': dict(accuracy=50.0, queries=2),
                              'b': dict(accuracy=100.0, queries=2),
                              'c': dict(accuracy=0.0, queries=2)}
  with pytest.raises(ValueError, match='expected episodes 0..3'):
    evaluate.summarise(results, 4, ['a', 'b', 'c'])
