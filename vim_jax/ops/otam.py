"""Video-to-video distances over frame distance matrices (OTAM, Bi-MHM).

Both take `distances[..., Tq, Ts]`, the frame-to-frame distances (1 - cosine)
between a query video of Tq frames and a support video of Ts frames, and
reduce the last two axes to one distance per pair of videos.

OTAM (Cao et al., CVPR 2020) is a soft dynamic time warping along the
monotone paths from the first to the last frame. The support axis is padded
with a zero-distance column at each end, so that a path may enter the support
video late and leave it early at no cost (the padded cells are free), and the
cumulative cost C[i, j] of the padded matrix D [Tq, Ts + 2] is

  C[0, j] = sum_{j' <= j} D[0, j']                         (first query frame)
  C[i, 0] = 0                                               (i >= 1)
  C[i, j] = D[i, j] + softmin(C[i-1, j-1], C[i-1, j], C[i, j-1])
                                                j = 1 or j = Ts + 1, i >= 1
  C[i, j] = D[i, j] + softmin(C[i-1, j-1], C[i, j-1])      1 < j <= Ts, i >= 1
  softmin(x) = -smoothing * log sum_k exp(-x_k / smoothing)

and the distance is C[Tq-1, Ts+1]. Inside the support video a path moves one
query frame down only together with one support frame right (it cannot hold a
support frame for two query frames); in the two padded columns, and in the
first real column, it may also move straight down. The first query frame's row
is a hard running sum: its only path comes from the left. The OTAM paper
relaxes that row too; the public implementation that TRX and HyRSM report
OTAM with keeps it hard, and so does this one, so that results compare.

The recurrence runs as a `lax.scan` over query rows with an inner `lax.scan`
over columns, on any leading batch dims: it traces once per shape and is
differentiable everywhere (the soft-min is smooth), and it vmaps.

Bi-MHM (the bidirectional Mean Hausdorff Metric of HyRSM, Wang et al., CVPR
2022) treats the two videos as sets of frames: the mean over query frames of
the distance to the nearest support frame plus the mean over support frames
of the distance to the nearest query frame. It ignores frame order.
"""
import jax
import jax.numpy as jnp


def _softmin(values, smoothing):
  """-smoothing * log sum exp(-x / smoothing) over a sequence of arrays."""
  stacked = jnp.stack(values, axis=0)
  return -smoothing * jax.nn.logsumexp(-stacked / smoothing, axis=0)


def _next_row(prev, row, three_way, smoothing):
  """Cumulative costs of one query row i >= 1 from those of row i - 1.

  Args:
    prev: [Ts + 2, ...] cumulative costs of row i - 1 (columns first).
    row: [Ts + 2, ...] padded distances of row i.
    three_way: [Ts + 2] bool; True where a column also takes C[i-1, j].
    smoothing: soft-min temperature.

  Returns:
    [Ts + 2, ...] cumulative costs of row i; column 0 is 0.
  """
  def step(left, xs):  # left: C[i, j-1]
    dist, diag, up, three = xs  # D[i, j], C[i-1, j-1], C[i-1, j], flag
    cost = jnp.where(three, _softmin((diag, up, left), smoothing),
                     _softmin((diag, left), smoothing))
    cost = dist + cost
    return cost, cost

  first = jnp.zeros_like(prev[0])
  _, rest = jax.lax.scan(
      step, first, (row[1:], prev[:-1], prev[1:], three_way[1:]))
  return jnp.concatenate([first[None], rest], axis=0)


def otam_distance(distances, smoothing=0.1):
  """OTAM alignment cost of one direction, query frames along the rows.

  Args:
    distances: [..., Tq, Ts] frame distances (1 - cosine), floating point.
    smoothing: soft-min temperature (the OTAM authors' lambda, 0.1); > 0.
      As it goes to 0 the cost goes to the hard-min DTW of the same paths,
      from below (each soft-min is at most its hard min).

  Returns:
    [...] the cost C[Tq-1, Ts+1] of the module docstring's recurrence.
  """
  t_s = distances.shape[-1]
  padded = jnp.pad(distances, [(0, 0)] * (distances.ndim - 1) + [(1, 1)])
  # Rows and columns first: the scans run over leading axes.
  padded = jnp.moveaxis(padded, (-2, -1), (0, 1))  # [Tq, Ts + 2, ...]
  three_way = jnp.zeros(t_s + 2, bool).at[1].set(True).at[t_s + 1].set(True)
  first_row = jnp.cumsum(padded[0], axis=0)  # [Ts + 2, ...]

  def row_step(prev, row):
    cost = _next_row(prev, row, three_way, smoothing)
    return cost, None

  last_row, _ = jax.lax.scan(row_step, first_row, padded[1:])
  return last_row[-1]


def otam_cost(distances, smoothing=0.1):
  """Symmetric OTAM distance: both directions summed, as the OTAM head uses.

  `otam_distance(d) + otam_distance(swapaxes(d, -1, -2))`: the one-direction
  cost lets every query frame skip support frames but not the other way
  round, so the sum is the metric that treats the two videos alike.

  Args:
    distances: [..., Tq, Ts] frame distances (1 - cosine).
    smoothing: soft-min temperature, > 0.

  Returns:
    [...] distances.
  """
  return (otam_distance(distances, smoothing)
          + otam_distance(jnp.swapaxes(distances, -1, -2), smoothing))


def bi_mhm(distances):
  """Bidirectional Mean Hausdorff Metric of HyRSM.

  Args:
    distances: [..., Tq, Ts] frame distances (1 - cosine).

  Returns:
    [...] mean_i min_j d[i, j] + mean_j min_i d[i, j]. The official HyRSM
    code sums instead of averaging, T times this value for Tq = Ts = T; a
    logit scale of T reproduces it.
  """
  return (jnp.mean(jnp.min(distances, axis=-1), axis=-1)
          + jnp.mean(jnp.min(distances, axis=-2), axis=-1))
