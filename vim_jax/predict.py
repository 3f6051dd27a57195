"""Few-shot prediction on a user's own videos (`main.py --mode=predict`).

The support is a dict {class name: [video paths]}, from a folder with one
folder per class (`support_from_dir`); a path is a video file (decoded with
PyAV) or a folder of frames. Any number N >= 2 of classes and of examples
per class (uneven shots are fine: a prototype is the mean of its own class's
videos). Every query is classified among the N classes:

  predictor = Predictor.from_workdir(config, '/tmp/vim_synthetic')
  results = predictor.predict({'wave': ['w1.mp4'], 'clap': ['c1.mp4', 'c2']},
                              ['q1.mp4', 'q2.avi'])
  results[0]['prediction'], results[0]['probabilities']

What a video goes through is what a test episode does to it, so a
prediction is what evaluation would have answered for the same videos:
  * reading (`read_video`): the real-dataset builder's decoding
    (`input_pipeline.video_decode` with `config.data.max_frames`,
    `resize_short_side` and `jpeg_quality`: the stored frames a test split
    would hold for that video);
  * frames (`Predictor.frames`): `episodes.test_view`, the test split's
    segment centres and centre crop, M dense frames with a sampler and T
    without, decoded, cropped and resized by `episodes.crop_resize` to
    `config.data.frame_size`; a video with fewer stored frames repeats
    frames, as in evaluation (one warning names them);
  * the model: `FewShotModel.apply(..., train=False)` (hard top-k, no
    noise, eps = 0, batch-norm running statistics), as `steps.eval_step`
    runs it.

The model is built with way = N whatever the training way: no parameter
depends on `way` (it only sizes the grouping of the support into class
prototypes, `protonet.class_prototypes`), so a checkpoint trained 5-way
serves any N; tests/test_predict.py checks the parameter tree for two ways.

Queries never interact at evaluation (batch norm uses running statistics;
the task-adaptive learner reads the support only; the alignment works per
query-prototype pair), so they run in chunks of `query_batch` with the whole
support, the last chunk padded by repeating its last query: one compiled
shape per support, and memory bounded by the chunk, not by the number of
queries. The support is decoded once per `predict` call.
"""
import dataclasses
import json
import logging
import os
from typing import Any, Mapping, Sequence

import jax
import ml_collections
import numpy as np
import tensorflow as tf

from input_pipeline import episodes as episodes_lib
from input_pipeline import video_decode
from vim_jax import train as train_lib
from vim_jax import trainer
from vim_jax.figures import episode as episode_figures
from vim_jax.figures import sampler as sampler_figures
from vim_jax.models import build
from vim_jax.models import few_shot

# Model fields that only choose initial weights: `pretrain.resolve` fills
# them in the workdir's config.json; the checkpoint holds the trained values.
INITIALISATION_FIELDS = ('model.backbone_weights', 'model.scan_weights')
# Data fields that decide what a video looks like to the model.
PREPROCESSING_FIELDS = tuple(f'data.{name}' for name in (
    'dense_frames', 'frame_size', 'test_crop_fraction', 'max_frames',
    'resize_short_side', 'jpeg_quality'))


class PredictError(ValueError):
  """A support or query input that cannot be used; the message names it."""


class ConfigMismatchError(ValueError):
  """The given config's model is not the one the workdir trained."""


@dataclasses.dataclass(frozen=True)
class Video:
  """The stored frames of one video, as the dataset builder keeps them.

  Attributes:
    path: the video file or frame folder.
    jpegs: the kept frames, JPEG bytes (at most `config.data.max_frames`).
    clip_index: [len(jpegs)] int, the frame number in the clip of each kept
      frame: PyAV's decoding order, or the position of the file among the
      folder's frames in natural order (0-based).
    num_clip_frames: frames in the clip.
  """
  path: str
  jpegs: list[bytes]
  clip_index: np.ndarray
  num_clip_frames: int


def is_video_file(path: str) -> bool:
  return path.lower().endswith(
      tuple('.' + ext for ext in video_decode.VIDEO_EXTENSIONS))


def read_video(path: str, data_config, role: str = 'video') -> Video:
  """Decodes a video file or reads a frame folder like the dataset builder.

  Args:
    path: a video file (any format PyAV opens) or a folder of frames.
    data_config: `config.data` (max_frames, resize_short_side, jpeg_quality).
    role: how the error messages call it ('query', "support example of class
      'wave'").

  Raises:
    FileNotFoundError: nothing at `path`.
    PredictError: an unreadable or empty video or frame folder.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{role} {path}: no such file or folder.')
  kwargs = dict(max_frames=data_config.max_frames,
                resize_short_side=data_config.resize_short_side,
                quality=data_config.jpeg_quality)
  try:
    if os.path.isdir(path):
      jpegs, count = video_decode.read_frame_folder(path, **kwargs)
    else:
      jpegs, count = video_decode.decode_video_file(path, **kwargs)
  except video_decode.UnreadableVideoError as e:
    raise PredictError(f'{role} {path}: {e}') from e
  clip_index = video_decode.subsample_indices(count, data_config.max_frames)
  return Video(path, jpegs, clip_index, count)


def examples_in(folder: str, what: str) -> list[str]:
  """The video files and frame folders of a folder, in natural name order.

  Hidden entries are ignored and other files skipped with a warning.

  Raises:
    PredictError: the folder holds frames itself (`what` names the folder's
      role in the message), or nothing usable.
  """
  names = sorted((n for n in os.listdir(folder) if not n.startswith('.')),
                 key=video_decode.natural_sort_key)
  paths = [os.path.join(folder, n) for n in names]
  if any(p.lower().endswith(video_decode.FRAME_EXTENSIONS) for p in paths):
    raise PredictError(
        f'{what} {folder} holds image files: put each video\'s frames in a '
        'folder of its own inside it.')
  examples = [p for p in paths if os.path.isdir(p) or is_video_file(p)]
  skipped = [p for p in paths if p not in examples]
  if skipped:
    logging.warning('%s %s: skipping %d files that are neither videos (%s) '
                    'nor frame folders: %s', what, folder, len(skipped),
                    ', '.join(video_decode.VIDEO_EXTENSIONS), skipped[:5])
  if not examples:
    raise PredictError(
        f'{what} {folder} holds no videos '
        f'({", ".join(video_decode.VIDEO_EXTENSIONS)}) or frame folders.')
  return examples


def support_from_dir(folder: str) -> dict[str, list[str]]:
  """{class name: [example paths]} from one folder per class, natural order.

  Raises:
    FileNotFoundError: `folder` is not a folder.
    PredictError: fewer than 2 class folders, or a class folder without
      examples.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'support folder {folder}: no such folder.')
  names = sorted((n for n in os.listdir(folder) if not n.startswith('.')
                  and os.path.isdir(os.path.join(folder, n))),
                 key=video_decode.natural_sort_key)
  if len(names) < 2:
    raise PredictError(
        f'support folder {folder} has {len(names)} class folders; at least '
        '2 are needed (one folder per class, named for the class).')
  return {name: examples_in(os.path.join(folder, name), 'class folder')
          for name in names}


def expand_queries(paths: Sequence[str]) -> list[str]:
  """Query videos: each path is a video file, a frame folder, or a folder
  of them (expanded in natural order).

  Raises:
    FileNotFoundError: a path that does not exist.
    PredictError: a folder holding nothing usable.
  """
  queries = []
  for path in map(os.fspath, paths):
    if not os.path.exists(path):
      raise FileNotFoundError(f'query {path}: no such file or folder.')
    if os.path.isdir(path) and not video_decode.frame_files(path):
      queries += examples_in(path, 'query folder')
    else:
      queries.append(path)
  return queries


def _flatten(tree, prefix: str) -> dict[str, Any]:
  if not isinstance(tree, dict):
    return {prefix: tree}
  flat = {}
  for key, value in tree.items():
    flat.update(_flatten(value, f'{prefix}.{key}'))
  return flat


def config_differences(given: dict, saved: dict, section: str):
  """Fields of `section` that differ between two configs (JSON dicts).

  Returns:
    (differing, missing): lists of 'field: given vs saved' strings, and
    the given fields the saved config does not have (written before they
    existed).
  """
  ours = _flatten(given.get(section, {}), section)
  theirs = _flatten(saved.get(section, {}), section)
  differing = [f'{k}: {ours.get(k)!r} here, {theirs.get(k)!r} in the workdir'
               for k in sorted(ours.keys() | theirs.keys())
               if k in theirs and ours.get(k) != theirs[k]
               and k not in INITIALISATION_FIELDS]
  missing = sorted(k for k in ours if k not in theirs)
  return differing, missing


def check_saved_config(config, workdir: str):
  """Compares `config` with the workdir's config.json.

  A different model section is an error (other modules, shapes or
  behaviour than the checkpoint's), except the initial-weight folders;
  different preprocessing fields are warnings (the model runs, but sees the
  videos otherwise than in its evaluation).

  Raises:
    ConfigMismatchError: naming config.json and every differing field.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    logging.warning('%s is absent: cannot check that the config matches the '
                    'checkpoint.', path)
    return
  with open(path) as f:
    saved = json.load(f)
  given = json.loads(config.to_json_best_effort())
  differing, missing = config_differences(given, saved, 'model')
  if missing:
    logging.warning('%s predates the fields %s; they are not checked.', path,
                    missing)
  if differing:
    raise ConfigMismatchError(
        f'the config\'s model is not the one {path} was trained with: '
        + '; '.join(differing) + '. Pass the training config (with the same '
        '--config.model.* overrides).')
  data_diffs, _ = config_differences(given, saved, 'data')
  for line in data_diffs:
    if line.split(':')[0] in PREPROCESSING_FIELDS:
      logging.warning('Preprocessing differs from training: %s.', line)


def abstract_variables(config):
  """Shapes of the model's variables (no computation), for restoring."""
  spec = train_lib.episode_spec(config, 'test')
  model = build.model(config.model, way=spec.way)
  keys = {'params': jax.random.PRNGKey(0), 'sampler': jax.random.PRNGKey(1)}
  shapes = jax.eval_shape(
      lambda e: model.init(keys, e, train=False),
      train_lib.example_episode(spec))
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return {key: jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
      shapes.get(key, {})) for key in ('params', 'batch_stats')}


class Predictor:
  """A trained few-shot model that classifies videos against a support.

  Attributes:
    config: the run's config (its model, and its data fields for reading
      the videos).
    variables: {'params', 'batch_stats'}.
    checkpoint: where the variables come from ('best/400', or 'given').
    query_batch: queries per model call.
  """

  def __init__(self, config: ml_collections.ConfigDict, variables, *,
               checkpoint: str = 'given', query_batch: int = 8):
    if query_batch < 1:
      raise ValueError(f'query_batch={query_batch} must be at least 1.')
    self.config = config
    self.variables = variables
    self.checkpoint = checkpoint
    self.query_batch = query_batch
    self.spec = train_lib.episode_spec(config, 'test')
    size = self.spec.frame_size
    # The test split's map function (`episodes.make_episode_fn`), traced once.
    self._read_frames = tf.function(
        lambda jpegs, crop: tf.map_fn(
            lambda jpeg: episodes_lib.crop_resize(jpeg, crop, size), jpegs,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8)),
        input_signature=[tf.TensorSpec([None], tf.string),
                         tf.TensorSpec([3], tf.float32)])
    self._apply = {}  # way -> jitted model apply

  @classmethod
  def from_workdir(cls, config, workdir: str, **kwargs) -> 'Predictor':
    """The workdir's `config.eval.checkpoint` ('best', 'latest' or a step).

    Raises:
      FileNotFoundError: no checkpoints in `workdir`, or not that one.
      ConfigMismatchError: `config.model` differs from the workdir's.
    """
    workdir = os.fspath(workdir)
    train_lib.check_config(config, workdir, num_devices=1)
    if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
      raise FileNotFoundError(f'--workdir={workdir} holds no checkpoints/.')
    check_saved_config(config, workdir)
    variables, name = trainer.restore_variables(
        workdir, config.eval.checkpoint, abstract_variables(config))
    logging.info('Predicting with %s of %s', name, workdir)
    return cls(config, variables, checkpoint=name, **kwargs)

  @property
  def uses_sampler(self) -> bool:
    return few_shot.uses_sampler(self.config.model)

  def frames(self, video: Video):
    """What a test episode reads of a video.

    Returns:
      (frames uint8 [F, S, S, 3], clip_index [F] int: the clip's frame
      number of each), F = M with a sampler, else T; S = frame_size.
    """
    frame_index, crop = episodes_lib.test_view(len(video.jpegs), self.spec)
    jpegs = tf.constant([video.jpegs[i] for i in frame_index], tf.string)
    frames = self._read_frames(jpegs, tf.constant(crop, tf.float32))
    return frames.numpy(), video.clip_index[frame_index]

  def episode(self, support_frames, support_labels, query_frames) -> dict:
    """One evaluation episode from frames: the model's input.

    Args:
      support_frames: [V_s, F, S, S, 3] uint8.
      support_labels: [V_s] int in 0..N-1, any order, uneven counts allowed.
      query_frames: [V_q, F, S, S, 3] uint8, V_q <= query_batch; padded to
        query_batch by repeating the last.

    Returns:
      'support', 'support_labels', 'query' and 'query_labels' (zeros: the
      labels of queries are unknown, and only figures read them).
    """
    pad = self.query_batch - len(query_frames)
    query = np.concatenate([query_frames] + [query_frames[-1:]] * pad)
    return dict(support=np.asarray(support_frames, np.uint8),
                support_labels=np.asarray(support_labels, np.int32),
                query=query.astype(np.uint8),
                query_labels=np.zeros(len(query), np.int32))

  def run_model(self, episode: dict, way: int) -> dict:
    """The model's outputs on an episode (train=False), as numpy arrays."""
    if way not in self._apply:
      model = build.model(self.config.model, way=way)
      self._apply[way] = jax.jit(
          lambda variables, e: model.apply(variables, e, train=False))
    return jax.tree.map(np.asarray, self._apply[way](self.variables, episode))

  def _read_all(self, paths, role):
    videos = [read_video(p, self.config.data, role) for p in paths]
    return videos, [self.frames(v) for v in videos]

  def predict(self, support: Mapping[str, Sequence[str]],
              queries: Sequence[str], *, figures: bool = False
              ) -> list[dict[str, Any]]:
    """Classifies every query among the support's classes.

    Args:
      support: {class name: [video file or frame folder, ...]}, at least 2
        classes with at least one example each; the classes' order is the
        order of the probabilities.
      queries: video files or frame folders.
      figures: also draw each query's sampler / alignment figure.

    Returns:
      Per query, in order: 'query' (its path), 'prediction' (class name),
      'probabilities' and 'logits' ({class: float}, softmax and logits),
      'frames' (the clip frame numbers of the T frames the backbone saw:
      chosen by the sampler when there is one, else the segment centres),
      'num_frames' (in the clip); with `figures`, 'figure' (uint8 [H, W, 3],
      the sampler figure over the alignment figure with the predicted class,
      or None without those modules).

    Raises:
      FileNotFoundError, PredictError: naming the path or class at fault.
    """
    classes = list(support)
    if len(classes) < 2:
      raise PredictError(f'the support has {len(classes)} classes '
                         f'({classes}); at least 2 are needed.')
    if not queries:
      raise PredictError('no query videos given.')
    for name in classes:
      if not support[name]:
        raise PredictError(f'support class {name!r} has no examples.')
    # Missing paths fail before any decoding or model call.
    for path in [p for name in classes for p in support[name]] + list(queries):
      if not os.path.exists(path):
        raise FileNotFoundError(f'{path}: no such file or folder.')
    support_videos, support_frames, labels = [], [], []
    for label, name in enumerate(classes):
      videos, frames = self._read_all(
          support[name], f'support example of class {name!r}')
      support_videos += videos
      support_frames += [f for f, _ in frames]
      labels += [label] * len(videos)
    support_frames = np.stack(support_frames)
    results, short = [], []
    for start in range(0, len(queries), self.query_batch):
      videos, frames = self._read_all(
          queries[start:start + self.query_batch], 'query')
      episode = self.episode(support_frames, labels,
                             np.stack([f for f, _ in frames]))
      outputs = self.run_model(episode, len(classes))
      for q, (video, (_, clip_index)) in enumerate(zip(videos, frames)):
        results.append(self._result(video, clip_index, outputs, q, classes,
                                    episode if figures else None))
      short += [v for v in videos if len(v.jpegs) < self.spec.frames]
    short += [v for v in support_videos if len(v.jpegs) < self.spec.frames]
    if short:
      logging.warning(
          '%d videos have fewer than the %d frames the model reads; frames '
          'repeat, as in evaluation: %s', len(short), self.spec.frames,
          ', '.join(f'{v.path} ({len(v.jpegs)})' for v in short))
    return results

  def _result(self, video, clip_index, outputs, q, classes, episode):
    """One query's entry of `predict`'s list."""
    logits = outputs['logits'][q].astype(np.float64)  # [N]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    label = int(np.argmax(logits))
    result = dict(
        query=video.path, prediction=classes[label],
        probabilities=dict(zip(classes, probabilities.tolist())),
        logits=dict(zip(classes, logits.tolist())),
        frames=self._used_frames(clip_index, outputs, q),
        num_frames=video.num_clip_frames)
    if episode is not None:
      images = episode_figures.episode_figures(
          self.config.model, self.spec.frame_size, episode, outputs, query=q,
          label=label)
      result['figure'] = (episode_figures.stack(list(images.values()))
                          if images else None)
    return result

  def _used_frames(self, clip_index, outputs, q) -> list[int]:
    """Clip frame numbers of the T frames the backbone saw for query q."""
    if 'sampler' not in outputs:  # F = T: all the frames read
      return clip_index.tolist()
    indices = outputs['sampler']['indices']  # [V_s + query_batch, T]
    return clip_index[indices[len(indices) - self.query_batch + q]].tolist()


def format_table(report: dict) -> str:
  """`run`'s report as an aligned text table, one row per query.

  Columns: query, prediction, the probability of each class (3 decimals)
  and, with a sampler, the clip frames it chose.
  """
  classes = report['classes']
  header = ['query', 'prediction'] + classes
  rows = [[r['query'], r['prediction']] +
          [f'{r["probabilities"][c]:.3f}' for c in classes]
          for r in report['predictions']]
  if report['sampler']:
    header.append('frames')
    for row, r in zip(rows, report['predictions']):
      row.append(','.join(map(str, r['frames'])))
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  numeric = [False, False] + [True] * len(classes) + [False]
  lines = []
  for row in [header] + rows:
    cells = [str(x).rjust(w) if num else str(x).ljust(w)
             for x, w, num in zip(row, widths, numeric)]
    lines.append('  '.join(cells).rstrip())
  return '\n'.join(lines)


def run(config, workdir: str, *, support_dir: str, queries: Sequence[str],
        output: str | None = None, figures_dir: str | None = None) -> dict:
  """`--mode=predict`: classify the queries against a support folder.

  Args:
    config: the config the workdir was trained with.
    workdir: holds the checkpoint (`config.eval.checkpoint`).
    support_dir: one folder per class, named for the class, holding that
      class's video files and frame folders.
    queries: video files, frame folders, or folders of them.
    output: a JSON file to write the report to.
    figures_dir: one PNG per query goes here (`<n>_<name>.png`).

  Returns:
    The report: 'workdir', 'checkpoint', 'classes', 'support' {class:
    [paths]}, 'sampler' (bool), 'predictions' (`Predictor.predict`'s list;
    with figures, 'figure' is the PNG's path).
  """
  support = support_from_dir(support_dir)
  query_paths = expand_queries(queries)
  predictor = Predictor.from_workdir(config, workdir)
  results = predictor.predict(support, query_paths,
                              figures=figures_dir is not None)
  if figures_dir is not None:
    for i, result in enumerate(results):
      image = result.pop('figure')
      if image is None:
        continue
      name = os.path.splitext(os.path.basename(
          os.path.normpath(result['query'])))[0]
      result['figure'] = os.path.join(figures_dir, f'{i:03d}_{name}.png')
      sampler_figures.save_png(image, result['figure'])
    if not any('figure' in r for r in results):
      logging.warning('The model has neither a sampler nor an alignment: no '
                      'figures.')
  report = dict(workdir=os.fspath(workdir), checkpoint=predictor.checkpoint,
                classes=list(support), support=support,
                sampler=predictor.uses_sampler, predictions=results)
  if output:
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    with open(output, 'w') as f:
      json.dump(report, f, indent=2)
    logging.info('Wrote %s', output)
  return report
