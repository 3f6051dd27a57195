"""Pure-numpy renderer of the procedural action videos (DESIGN.md section 3).

A video shows a small actor (a two-tone ellipse with a dark outline: a body
and a marker dot near one end of its long axis) that performs its class's
motion pattern during a random part of the clip, over a cluttered static
background with a few moving distractor shapes. Everything is in normalised
(y, x) coordinates in [0, 1]; pixel centres sit at `(i + 0.5) / size`. Shapes
have soft (one pixel, anti-aliased) edges.

The class is a function of the action's progress `s` in [0, 1]:
  * a trajectory: a low-order Fourier curve (harmonics `cos/sin(pi k s)`,
    k = 1..3), scaled so that its bounding box's longer side is
    `PATH_EXTENT` of the frame;
  * an appearance change: orientation, length, aspect ratio and shade of the
    actor evolve with `s` along class-specific curves;
  * a weak colour cue: the body's hue is the class hue plus a per-video
    jitter (`HUE_JITTER`), enough for a frame-level baseline to learn
    something, far from enough to solve the task.
One frame is ambiguous (its progress is unknown, its position is offset and
its colour is shared with nearby classes); a few in-span frames in order
identify the class.

Each video adds the misalignments VIM's modules address:
  * TS: the action spans `[t0, t1)` of the clip, duration in `DURATION`;
    outside it the actor is absent, so those frames carry no class
    information;
  * SA: the actor is small (about 12-18% of the frame side) among clutter and
    moving distractors whose parameters never depend on the class;
  * TC: random start, duration and speed profile `s = u ** gamma`
    (`u` in [0, 1) is the linear time within the span);
  * SC: the whole trajectory is shifted by a random offset.
"""
import dataclasses
import functools

import numpy as np

SPLIT_CODES = {'train': 0, 'validation': 1, 'test': 2}

# Leading words of the seed sequences, so class and video streams never meet
# (numpy's SeedSequence pads short entropy with zeros: [1, 2] == [1, 2, 0]).
_CLASS_STREAM = 0xC1A55
_VIDEO_STREAM = 0x71DE0

NUM_HARMONICS = 3
PATH_EXTENT = 0.45  # longer side of the trajectory's bounding box
PATH_SCALE_JITTER = (0.9, 1.1)  # per video
DURATION = (0.35, 0.8)  # fraction of the clip the action lasts
GAMMA = (0.6, 1.7)  # speed profile exponent, log-uniform
ACTOR_LENGTH = (0.13, 0.16)  # class mean of the long axis, frame fractions
ACTOR_SIZE_JITTER = (0.92, 1.08)  # per video
# Clutter and distractors are set so that a small CNN trained from scratch for
# a few CPU minutes learns (5-way 1-shot ProtoNet: ~39% after 600 episodes,
# against ~20% with (6, 11) clutter and (2, 5) distractors, which it could
# not learn in that time, and ~58% with none).
NUM_CLUTTER = (2, 5)  # static background shapes, [low, high)
NUM_DISTRACTORS = (1, 3)  # moving shapes, [low, high)
# Per-video hue jitter of the actor (turns): a weak cue, far from enough to
# solve the task from the colour alone.
HUE_JITTER = 0.05
NOISE_STD = (1.5, 4.0)  # pixel noise, in uint8 levels
# The actor's one-pixel outline: nothing else in the scene has one, so a
# learned detector can find the actor; finding it still takes looking.
RIM_COLOUR = (0.05, 0.05, 0.05)
_PATH_GRID = 257  # progress samples used to normalise the trajectory


@dataclasses.dataclass(frozen=True)
class ClassParams:
  """The motion pattern of one class; all curves are functions of progress.

  Attributes:
    name: a short description, e.g. 'ccw-h2' (turning direction on screen,
      strongest harmonic of the path).
    coef: [NUM_HARMONICS, 2 (y, x), 2 (cos, sin)] Fourier coefficients of the
      raw trajectory.
    path_shift: [2] subtracted from the raw trajectory ...
    path_scale: ... before multiplying by this, so that the curve's bounding
      box starts at (0, 0) and its longer side is PATH_EXTENT.
    path_size: [2] (height, width) of the normalised curve's bounding box.
    theta0, spin, wobble, wobble_phase: orientation
      `theta0 + spin s + wobble sin(2 pi s + wobble_phase)` (radians, angle of
      the long axis from the x axis towards y).
    length, length_amp, length_freq, length_phase: long-axis length
      `length (1 + length_amp sin(2 pi length_freq s + length_phase))`.
    aspect, aspect_amp, aspect_freq, aspect_phase: short / long axis,
      `aspect + aspect_amp cos(2 pi aspect_freq s + aspect_phase)`, clipped.
    shade_amp, shade_freq, shade_phase: body colour multiplier
      `1 + shade_amp sin(2 pi shade_freq s + shade_phase)`.
    hue: mean hue of the actor's body in [0, 1); each video adds
      `N(0, HUE_JITTER)`, so colour is a weak cue, not a giveaway.
  """
  name: str
  coef: np.ndarray
  path_shift: np.ndarray
  path_scale: float
  path_size: np.ndarray
  theta0: float
  spin: float
  wobble: float
  wobble_phase: float
  length: float
  length_amp: float
  length_freq: float
  length_phase: float
  aspect: float
  aspect_amp: float
  aspect_freq: float
  aspect_phase: float
  shade_amp: float
  shade_freq: float
  shade_phase: float
  hue: float

  def trajectory(self, s):
    """Actor centre at progress `s` [...] -> [..., 2] (y, x), from origin 0."""
    return (_fourier_path(self.coef, s) - self.path_shift) * self.path_scale

  def appearance(self, s):
    """Orientation, long axis, short axis and shade at progress `s` [...]."""
    s = np.asarray(s, np.float64)
    two_pi = 2 * np.pi
    theta = (self.theta0 + self.spin * s
             + self.wobble * np.sin(two_pi * s + self.wobble_phase))
    length = self.length * (1 + self.length_amp * np.sin(
        two_pi * self.length_freq * s + self.length_phase))
    aspect = np.clip(self.aspect + self.aspect_amp * np.cos(
        two_pi * self.aspect_freq * s + self.aspect_phase), 0.3, 1.0)
    shade = 1 + self.shade_amp * np.sin(
        two_pi * self.shade_freq * s + self.shade_phase)
    return theta, length, length * aspect, shade


def _fourier_path(coef, s):
  """sum_k coef[k, :, 0] cos(pi k s) + coef[k, :, 1] sin(pi k s): [..., 2]."""
  s = np.asarray(s, np.float64)[..., None, None]  # [..., 1, 1]
  k = np.arange(1, coef.shape[0] + 1)[:, None]  # [K, 1]
  basis = np.stack([np.cos(np.pi * k * s), np.sin(np.pi * k * s)], -1)
  return np.sum(coef * basis, axis=(-3, -1))  # [..., 2]


@functools.lru_cache(maxsize=4096)
def class_params(seed: int, split: str, class_index: int) -> ClassParams:
  """The class `class_index` of `split`; a pure function of its arguments.

  Classes of different splits come from different random streams, so the
  train, validation and test classes are disjoint.
  """
  rng = np.random.default_rng(
      [_CLASS_STREAM, seed, SPLIT_CODES[split], class_index])
  decay = np.arange(1, NUM_HARMONICS + 1, dtype=np.float64) ** -1.2
  coef = rng.normal(size=(NUM_HARMONICS, 2, 2)) * decay[:, None, None]
  raw = _fourier_path(coef, np.linspace(0, 1, _PATH_GRID))  # [P, 2]
  low, high = raw.min(0), raw.max(0)
  scale = PATH_EXTENT / np.max(high - low)
  spin = rng.uniform(0.5, 2.0) * np.pi * rng.choice([-1, 1])
  dominant = 1 + int(np.argmax(np.sum(coef ** 2, axis=(1, 2))))
  return ClassParams(
      # With y pointing down, a growing angle turns clockwise on screen.
      name=f'{"cw" if spin > 0 else "ccw"}-h{dominant}',
      coef=coef,
      path_shift=low,
      path_scale=float(scale),
      path_size=(high - low) * scale,
      theta0=rng.uniform(0, 2 * np.pi),
      spin=float(spin),
      wobble=rng.uniform(0, 0.5),
      wobble_phase=rng.uniform(0, 2 * np.pi),
      length=rng.uniform(*ACTOR_LENGTH),
      length_amp=rng.uniform(0.05, 0.25),
      length_freq=rng.choice([0.5, 1.0, 1.5]),
      length_phase=rng.uniform(0, 2 * np.pi),
      aspect=rng.uniform(0.4, 0.75),
      aspect_amp=rng.uniform(0.0, 0.25),
      aspect_freq=rng.choice([0.5, 1.0]),
      aspect_phase=rng.uniform(0, 2 * np.pi),
      shade_amp=rng.uniform(0.0, 0.35),
      shade_freq=rng.choice([0.5, 1.0]),
      shade_phase=rng.uniform(0, 2 * np.pi),
      hue=rng.uniform(0, 1))


def video_rng(seed: int, split: str, class_index: int,
              video_index: int) -> np.random.Generator:
  """The random stream of one video, independent of generation order."""
  return np.random.default_rng(
      [_VIDEO_STREAM, seed, SPLIT_CODES[split], class_index, video_index])


# --- Soft shapes. `sd` are signed distances (negative inside) in frame units.


def _coverage(sd, size):
  """Anti-aliased coverage: a one-pixel linear ramp across the edge."""
  return np.clip(0.5 - sd * size, 0.0, 1.0)


def _rotate(dy, dx, theta):
  """Coordinates along and across the direction `theta` (from x towards y)."""
  cos, sin = np.cos(theta), np.sin(theta)
  return dx * cos + dy * sin, dy * cos - dx * sin


def _ellipse_sd(dy, dx, theta, a, b):
  """Approximate signed distance to ellipses; semi-axes a (along theta), b."""
  u, v = _rotate(dy, dx, theta)
  rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
  grad = np.sqrt((u / a ** 2) ** 2 + (v / b ** 2) ** 2)
  # First-order distance (rho - 1) / |grad rho|; exact enough near the edge.
  return (rho - 1) * rho / np.maximum(grad, 1e-6)


def _square_sd(dy, dx, theta, half):
  u, v = _rotate(dy, dx, theta)
  return np.maximum(np.abs(u), np.abs(v)) - half


def _disc_sd(dy, dx, radius):
  return np.sqrt(dy ** 2 + dx ** 2) - radius


def _stamp(frames, centre, reach, layers):
  """Draws one small shape per frame into `frames`, in place.

  Only a square window around each shape is touched, which keeps the cost
  proportional to the shapes' area rather than to the frame's.

  Args:
    frames: [F, S, S, 3] float32 canvas, updated in place.
    centre: [F, 2] (y, x) centres of the shape, NaN in frames without it.
    reach: how far from its centre the shape can extend (frame units).
    layers: function (dy [n, W, 1], dx [n, 1, W], index [n]) -> list of
      (signed distance [n, W, W], colour [n, 3] or [3]), drawn in order;
      dy, dx are the offsets of the window's pixel centres from the centres.
  """
  index = np.flatnonzero(~np.isnan(centre[:, 0]))  # [n]
  if not index.size:
    return
  size = frames.shape[1]
  width = min(size, 2 * int(np.ceil(reach * size)) + 4)  # W
  start = np.floor(centre[index] * size).astype(np.int64) - width // 2
  start = np.clip(start, 0, size - width)  # [n, 2]
  rows = start[:, 0, None] + np.arange(width)  # [n, W]
  cols = start[:, 1, None] + np.arange(width)
  dy = ((rows + 0.5) / size - centre[index, 0, None])[:, :, None]
  dx = ((cols + 0.5) / size - centre[index, 1, None])[:, None, :]
  where = (index[:, None, None], rows[:, :, None], cols[:, None, :])
  patch = frames[where]  # [n, W, W, 3]
  for sd, colour in layers(dy.astype(np.float32), dx.astype(np.float32),
                           index):
    alpha = _coverage(sd, size)[..., None]
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 2:
      colour = colour[:, None, None, :]
    patch = patch + alpha * (colour - patch)
  frames[where] = patch


def _reflect(p, low, high):
  """Folds positions into [low, high] (a shape bouncing off the walls)."""
  span = high - low
  q = np.mod(p - low, 2 * span)
  return low + np.where(q > span, 2 * span - q, q)


def _hsv_colour(hue, saturation, value):
  """HSV (hue in turns, wrapping) -> RGB in [0, 1]."""
  rgb = np.clip(np.abs(np.mod(hue * 6 + np.array([0, 4, 2]), 6) - 3) - 1, 0, 1)
  return value * (1 - saturation + saturation * rgb)


def _random_colour(rng, saturation, value):
  """An RGB colour in [0, 1] with a uniformly random hue."""
  return _hsv_colour(rng.uniform(0, 1), saturation, value)


def _background(rng, num_frames, size):
  """A static cluttered background, repeated: [F, S, S, 3] float32 in [0, 1]."""
  # Smooth colour field: a 4x4 grid of muted colours, bilinearly upsampled.
  knots = rng.uniform(0.25, 0.65, (4, 4, 3))
  pos = np.linspace(0, 3, size)
  weights = np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(4)))  # [S, 4]
  canvas = np.einsum('ik,klc->ilc', weights, knots)  # [S, 4, 3]
  canvas = np.einsum('ilc,jl->ijc', canvas, weights)  # [S, S, 3]
  canvas = canvas.astype(np.float32)[None]  # [1, S, S, 3]
  for _ in range(rng.integers(*NUM_CLUTTER)):
    centre = rng.uniform(0, 1, (1, 2))
    half = rng.uniform(0.04, 0.14, 2)
    colour = _random_colour(rng, rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.85))
    angle = rng.uniform(0, np.pi)
    if rng.random() < 0.5:
      sd_fn = lambda dy, dx, h=half: np.maximum(np.abs(dy) - h[0],
                                                np.abs(dx) - h[1])
    else:
      sd_fn = lambda dy, dx, h=half, t=angle: _ellipse_sd(dy, dx, t, h[0], h[1])
    _stamp(canvas, centre, half.max(),
           lambda dy, dx, _, f=sd_fn, c=colour: [(f(dy, dx), c)])
  return np.repeat(canvas, num_frames, axis=0)


def render_video(params: ClassParams, rng: np.random.Generator, *,
                 num_frames: int, frame_size: int,
                 actor: bool = True) -> dict:
  """Renders one video of the class `params`.

  Args:
    params: the class, from `class_params`.
    rng: the video's random stream (e.g. `video_rng(...)`); all nuisances
      (timing, offset, colours, background, distractors, noise) come from it.
    num_frames: F, at least 3.
    frame_size: S, the side of the square frames in pixels.
    actor: draw the actor; with False the same video is rendered without it
      (identical everything else), for tests and visualisations.

  Returns:
    A dict of numpy arrays: 'frames' uint8 [F, S, S, 3]; 'action_span'
    float32 [2], [t0, t1) as fractions of the clip; 'actor_boxes' float32
    [F, 4], (y0, x0, y1, x1) in [0, 1], zeros where the actor is absent;
    'progress' float32 [F], s in [0, 1) inside the span and -1 outside.
  """
  if num_frames < 3:
    raise ValueError(f'num_frames={num_frames} must be at least 3.')
  f_len, size = num_frames, frame_size
  # Draw every per-video number first, in a fixed order, so that `actor=False`
  # changes nothing else.
  duration = rng.uniform(*DURATION)
  t0 = rng.uniform(0, 1 - duration)
  t1 = t0 + duration
  gamma = np.exp(rng.uniform(*np.log(GAMMA)))
  path_scale = rng.uniform(*PATH_SCALE_JITTER)
  actor_scale = rng.uniform(*ACTOR_SIZE_JITTER)
  offset_draw = rng.uniform(0, 1, 2)
  body_colour = _hsv_colour(params.hue + rng.normal(0, HUE_JITTER),
                            rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
  marker_colour = np.full(3, 0.08 if body_colour.mean() > 0.55 else 0.95)
  background_rng, distractor_rng, noise_rng = rng.spawn(3)

  times = (np.arange(f_len) + 0.5) / f_len  # [F] frame centres
  inside = (times >= t0) & (times < t1)  # [F]
  u = np.clip((times - t0) / duration, 0, 1)
  progress = np.where(inside, u ** gamma, -1.0)  # [F]

  # Actor geometry in every frame (used only where `inside`).
  theta, length, width, shade = params.appearance(np.clip(progress, 0, 1))
  a = 0.5 * length * actor_scale  # [F] semi-axes
  b = 0.5 * width * actor_scale
  rim = 1.0 / size  # a one-pixel dark outline around the body
  half_y = np.hypot(a * np.sin(theta), b * np.cos(theta)) + rim
  half_x = np.hypot(a * np.cos(theta), b * np.sin(theta)) + rim
  # Margin: the largest semi-axis the class's appearance ever reaches, so the
  # actor stays inside the frame at any offset.
  grid = np.linspace(0, 1, 65)
  reach = 0.5 * actor_scale * params.appearance(grid)[1].max() + rim
  room = 1 - 2 * (reach + 1 / size) - params.path_size * path_scale  # [2]
  offset = reach + 1 / size + offset_draw * np.maximum(room, 0)
  centre = offset + params.trajectory(np.clip(progress, 0, 1)) * path_scale
  boxes = np.stack([centre[:, 0] - half_y, centre[:, 1] - half_x,
                    centre[:, 0] + half_y, centre[:, 1] + half_x], axis=1)
  boxes = np.where(inside[:, None], np.clip(boxes, 0, 1), 0)  # [F, 4]

  frames = _background(background_rng, f_len, size)  # [F, S, S, 3]

  # Distractors: present in every frame, moving at constant velocity and
  # bouncing off the walls; nothing about them depends on the class.
  drng = distractor_rng
  for _ in range(drng.integers(*NUM_DISTRACTORS)):
    half = drng.uniform(0.05, 0.09)
    start = drng.uniform(half, 1 - half, 2)
    angle = drng.uniform(0, 2 * np.pi)
    speed = drng.uniform(0.2, 0.7)
    spin = drng.uniform(-np.pi, np.pi)
    theta0 = drng.uniform(0, np.pi)
    colour = _random_colour(drng, drng.uniform(0.6, 1.0),
                            drng.uniform(0.6, 1.0))
    square = drng.random() < 0.5
    path = np.stack([
        _reflect(start[0] + speed * np.sin(angle) * times, half, 1 - half),
        _reflect(start[1] + speed * np.cos(angle) * times, half, 1 - half)],
                    axis=1)  # [F, 2]
    rot = (theta0 + spin * times)[:, None, None]  # [F, 1, 1]
    if square:
      layers = lambda dy, dx, i, h=half, r=rot, c=colour: [
          (_square_sd(dy, dx, r[i], 0.8 * h), c)]
    else:
      layers = lambda dy, dx, i, h=half, c=colour: [(_disc_sd(dy, dx, h), c)]
    _stamp(frames, path, half * np.sqrt(2), layers)

  if actor:
    shape = lambda v: v[:, None, None]  # [F] -> [F, 1, 1]
    th, ai, bi = shape(theta), shape(a), shape(b)
    body_colours = np.clip(body_colour * shade[:, None], 0, 1)  # [F, 3]

    def actor_layers(dy, dx, i):
      body = _ellipse_sd(dy, dx, th[i], ai[i], bi[i])
      # Marker: a dot on the long axis, 0.6 of the way to the front tip.
      my = dy - 0.6 * ai[i] * np.sin(th[i])
      mx = dx - 0.6 * ai[i] * np.cos(th[i])
      marker = np.maximum(_disc_sd(my, mx, 0.4 * bi[i]), body)
      return [(body - rim, RIM_COLOUR), (body, body_colours[i]),
              (marker, marker_colour)]

    _stamp(frames, np.where(inside[:, None], centre, np.nan), reach,
           actor_layers)

  # Sensor noise, the same in the three channels (grey): [F, S, S, 1].
  std = noise_rng.uniform(*NOISE_STD)
  noise = noise_rng.standard_normal((f_len, size, size, 1), np.float32)
  frames *= 255
  frames += noise * np.float32(std) + np.float32(0.5)  # + 0.5: round below
  np.clip(frames, 0, 255, out=frames)
  return dict(
      frames=frames.astype(np.uint8),
      action_span=np.array([t0, t1], np.float32),
      actor_boxes=boxes.astype(np.float32),
      progress=progress.astype(np.float32))
