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
  # three episodes, two queries each, out of order; episode 2 repeated as
  # padding
  results = dict(
      index=np.array([1, 0, 2, 2]),
      accuracy=np.array([0.5, 1.0, 0.0, 0.0]),
      correct=np.array([[1, 0], [1, 1], [0, 0], [0, 0]], bool),
      query_class=np.array([[1, 2], [0, 1], [2, 0], [2, 0]]),
      unaligned_accuracy=np.array([1.0, 0.5, 0.0, 1.0]),
      warps_at_bound=np.array([0.25, 0.0, 0.5, 1.0]))
  out = evaluate.summarise(results, 3, ['a', 'b', 'c'])
  assert out['unaligned_accuracy'] == pytest.approx(50.0)  # padding ignored
  assert out['warps_at_bound'] == pytest.approx(25.0)
  assert 'offsets_at_bound' not in out  # absent from the results
  assert out['accuracy'] == pytest.approx(50.0)
  assert out['ci95'] == pytest.approx(100 * 1.96 * np.std([1, .5, 0]) / np.sqrt(3))
  assert out['per_class'] == {'a': dict(accuracy=50.0, queries=2),
                              'b': dict(accuracy=100.0, queries=2),
                              'c': dict(accuracy=0.0, queries=2)}
  assert out['episode_accuracy'] == [100.0, 50.0, 0.0]
  with pytest.raises(ValueError, match='expected episodes 0..3'):
    evaluate.summarise(results, 4, ['a', 'b', 'c'])


def test_paired_difference_matches_scipy():
  rng = np.random.default_rng(1)
  shared = rng.uniform(0.0, 1.0, 400)  # episode difficulty, common to both
  a = np.clip(shared + rng.normal(0.05, 0.1, 400), 0, 1)
  b = shared
  mean, half = evaluate.paired_difference(a, b)
  low, high = stats.norm.interval(0.95, loc=np.mean(a - b),
                                  scale=stats.sem(a - b, ddof=0))
  assert mean == pytest.approx((low + high) / 2, rel=1e-9)
  assert half == pytest.approx((high - low) / 2, rel=1e-3)
  # Narrower than the two unpaired intervals combined.
  assert half < evaluate.confidence_interval(a) + evaluate.confidence_interval(b)
  with pytest.raises(ValueError, match='equal 1-D shapes'):
    evaluate.paired_difference(a, b[:-1])


def test_seed_interval_matches_scipy():
  values = [38.2, 38.6, 39.2, 45.7, 39.1]
  mean, half = evaluate.seed_interval(values)
  low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                               scale=stats.sem(values))
  assert mean == pytest.approx(np.mean(values))
  assert (mean - half, mean + half) == pytest.approx((low, high), abs=1e-3)
  # Hand-worked: two seeds, 40 and 44: std 2.828, t_{0.975,1} = 12.706,
  # 12.706 * 2.828 / sqrt(2) = 25.41.
  assert evaluate.seed_interval([40.0, 44.0]) == pytest.approx(
      (42.0, 25.412), abs=1e-3)
  mean, half = evaluate.seed_interval([41.0])
  assert mean == 41.0 and np.isnan(half)


def test_eval_step_scores_aligned_and_unaligned_logits_apart():
  """eval_step's bookkeeping on hand-made outputs: 'accuracy' from the
  model's (aligned) logits, 'unaligned_accuracy' from the unaligned ones."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from vim_jax import steps  # pylint: disable=g-import-not-at-top

  class Outputs:  # stands in for a model's apply: fixed logits per episode
    config = None

    @staticmethod
    def apply(variables, episode, train):
      del variables, train
      labels = episode['query_labels']
      hit = jnp.eye(3)[labels] * 5.0  # right class
      miss = jnp.eye(3)[(labels + 1) % 3] * 5.0  # wrong class
      first_right = jnp.arange(labels.shape[0]) < 1
      return dict(logits=jnp.where(first_right[:, None], hit, miss),
                  unaligned_logits=hit,
                  alignment=dict(
                      cost=jnp.ones((labels.shape[0], 3)),
                      warps_at_bound=jnp.array([True, False, False, False]),
                      offsets_at_bound=jnp.eye(3, dtype=bool)[:2]))

  batch = dict(query_labels=jnp.array([[0, 1, 2, 1]] * 2),
               classes=jnp.array([[7, 8, 9]] * 2), index=jnp.array([0, 1]))
  out = steps.eval_step({}, batch, model=Outputs)
  np.testing.assert_allclose(out['accuracy'], [0.25, 0.25])
  np.testing.assert_allclose(out['unaligned_accuracy'], [1.0, 1.0])
  np.testing.assert_allclose(out['alignment_cost'], [1.0, 1.0])
  np.testing.assert_allclose(out['warps_at_bound'], [0.25, 0.25])
  np.testing.assert_allclose(out['offsets_at_bound'], [1 / 3, 1 / 3])


def test_logged_results_carry_the_module_diagnostics(caplog):
  """Validation and test summaries include the diagnostics the results
  have (the alignment's at-bound shares over the steps), and only those."""
  from vim_jax import trainer  # pylint: disable=g-import-not-at-top

  class Writer:
    def __init__(self):
      self.scalars = {}

    def write_scalars(self, step, scalars):
      self.scalars[step] = dict(scalars)

  writer = Writer()
  results = dict(accuracy=41.0, ci95=2.0, num_episodes=100,
                 warps_at_bound=12.5, unaligned_accuracy=39.0)
  with caplog.at_level('INFO'):
    trainer.log_results(writer, 100, 'val', results)
  assert writer.scalars[100] == {
      'val/accuracy': 41.0, 'val/ci95': 2.0, 'val/warps_at_bound': 12.5,
      'val/unaligned_accuracy': 39.0}
  assert 'warps_at_bound 12.50' in caplog.text
