"""Hostile input to the real-dataset builder and to predict's video reading.

Two tiny datasets (frame folders and video files) list every kind of bad
input next to good videos. Each bad input must be read correctly or named
in `missing_videos.txt` with its reason, and every split's records must be
its lines less the reported ones. Videos shorter than the episode's M frames
and 1 x 1 frames must still make episodes.
"""

import io
import os
import types

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from input_pipeline import episodes
from input_pipeline import real_datasets
from input_pipeline import splits
from tests import helpers
from vim_jax import predict
from vim_jax.ops import frames as frames_ops

av = pytest.importorskip('av')

M = 8  # frames an episode reads per video; the short videos have fewer
RESIZE = 8  # resize_short_side of the frame build
LATIN1_NAME = os.fsdecode(b'caf\xe9')  # a name that is not UTF-8 on disk


# Frame folders, 16 x 12 unless said: (mode, extension, frame levels in the
# mode, expected RGB of each frame, size). CMYK is written as JPEG: PNG cannot
# hold it. 16-bit grey levels scale to 8 bits: round(v * 255 / 65535).
MODE_FOLDERS = {
    'grey': ('L', 'png', [60, 120, 180], [(v, v, v) for v in (60, 120, 180)]),
    'cmyk': ('CMYK', 'jpg', [(c, 50, 150, 0) for c in (0, 100, 200)],
             [(255 - c, 205, 105) for c in (0, 100, 200)]),
    'grey16': ('I;16', 'png', [10000, 30000, 50000],
               [(v, v, v) for v in (39, 117, 195)]),
    'grey16_small': ('I;16', 'png', [10000, 30000, 50000],
                     [(v, v, v) for v in (39, 117, 195)], (4, 4)),
}


def _colour(i, video=0):
  return (20 + 20 * i, 200 - 40 * video, 100)


def _write_frames(folder, mode, ext, levels, size=(16, 12), names=None):
  """One flat frame a level; file names img_1, img_2, ... unless given."""
  os.makedirs(folder)
  names = names or [f'img_{i + 1}.{ext}' for i in range(len(levels))]
  for name, level in zip(names, levels):
    Image.new(mode, size, level).save(os.path.join(folder, name))


def _mean(jpeg):
  image = Image.open(io.BytesIO(jpeg))
  assert (image.format, image.mode) == ('JPEG', 'RGB')
  return image.size, np.asarray(image, np.float64).reshape(-1, 3).mean(0)


def _check_accounting(builder, lines, reported):
  """Records are the lines less the reported ones, in order, each once.

  Args:
    builder: the prepared builder.
    lines: {split: [(class, video id)]} as written in the split files.
    reported: {split: {line index: (printable name, reason substring)}}.
  """
  expected = [(s, name, why) for s in splits.SPLITS
              for _, (name, why) in sorted(reported[s].items())]
  missing = real_datasets.missing_videos(builder)
  assert [(s, v) for s, v, _ in missing] == [(s, n) for s, n, _ in expected]
  for (_, name, reason), (_, _, why) in zip(missing, expected):
    assert why in reason, (name, reason)
  metadata = builder.info.metadata
  for split in splits.SPLITS:
    kept = [e for i, e in enumerate(lines[split]) if i not in reported[split]]
    records = helpers.prepared_records(builder, split)
    assert [(c, v) for c, v, _ in records] == kept
    assert metadata['num_listed'][split] == len(lines[split])
    assert metadata['num_missing'][split] == len(reported[split])
    assert len(records) == len(lines[split]) - len(reported[split])
    assert sum(real_datasets.video_counts(builder)[split].values()) == len(
        records)
    assert real_datasets.record_num_frames(builder, split).tolist() == [
        len(f) for _, _, f in records]


def _write_audio_only(path):
  """An mp4 holding one AAC audio stream and no video stream."""
  with av.open(str(path), 'w') as container:
    stream = container.add_stream('aac', rate=8000)
    for _ in range(4):
      frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32),
                                         format='fltp', layout='mono')
      frame.sample_rate = 8000
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


@pytest.fixture(scope='module')
def frames_build(tmp_path_factory):
  """The frame-folder dataset; see `test_frame_folders`."""
  base = tmp_path_factory.mktemp('frames')
  root = base / 'root'
  for name, (mode, ext, levels, _, *size) in MODE_FOLDERS.items():
    _write_frames(root / 'modes' / name, mode, ext, levels, *size)
  _write_frames(root / 'names' / LATIN1_NAME, 'RGB', 'png', [_colour(0)])
  # 'naïve' written in Latin-1: the UTF-8 line 'names/naïve' cannot find it.
  _write_frames(os.path.join(root / 'names', os.fsdecode(b'na\xefve')),
                'RGB', 'png', [_colour(0)])
  odd_names = [os.fsdecode(b'img_\xff_%d.png' % i) for i in (10, 2, 1)]
  _write_frames(root / 'names' / 'odd_frames', 'RGB', 'png',
                [_colour(i) for i in (2, 1, 0)], names=odd_names)
  _write_frames(root / 'val' / 'a', 'RGB', 'jpg', [_colour(0)] * 3)
  for video, count in (('pixel', 2), ('pixel5', 5)):
    _write_frames(root / 'tiny' / video, 'RGB', 'png',
                  [_colour(i, 1) for i in range(count)], size=(1, 1))
  for video in ('a', 'b'):
    _write_frames(root / 'plain' / video, 'RGB', 'jpg',
                  [_colour(i) for i in range(10)])
  lines = {
      'train': [('modes', n) for n in MODE_FOLDERS] + [
          ('names', LATIN1_NAME), ('names', 'naïve'), ('names', 'odd_frames'),
          ('ghost', 'v1'), ('names', 'absent'), ('modes', 'grey')],
      'validation': [('val', 'a')],
      'test': [('tiny', 'pixel'), ('tiny', 'pixel5'), ('plain', 'a'),
               ('plain', 'b')],
  }
  reported = {
      'train': {4: ('names/caf\\xe9', 'not valid UTF-8'),
                5: ('names/naïve', 'no folder'),
                7: ('ghost/v1', 'no folder'),
                8: ('names/absent', 'no folder'),
                9: ('modes/grey', 'repeats an earlier line')},
      'validation': {}, 'test': {}}
  split_dir = helpers.write_split_dir(base / 'hostile_frames', lines)
  builder = real_datasets.load(
      'ucf_ARN', data_dir=base / 'data', manual_dir=root, split_dir=split_dir,
      resize_short_side=RESIZE, num_workers=2)
  return dict(builder=builder, lines=lines, reported=reported)


@pytest.fixture(scope='module')
def videos_build(tmp_path_factory):
  """The video-file dataset; see `test_video_files`."""
  base = tmp_path_factory.mktemp('videos')
  clips = base / 'root' / 'clips'
  os.makedirs(clips)
  helpers.write_video(clips / 'good.mp4', [_colour(i) for i in range(10)])
  (clips / 'zero.mp4').write_bytes(b'')
  for name, options in (('half', None), ('half_faststart',
                                         {'movflags': 'faststart'})):
    helpers.write_video(base / 'whole.mp4', [_colour(i) for i in range(10)],
                        options=options)
    data = (base / 'whole.mp4').read_bytes()
    (clips / f'{name}.mp4').write_bytes(data[:len(data) // 2])
  _write_audio_only(clips / 'audio.mp4')
  helpers.write_frameless_video(clips / 'no_frames.avi')
  (clips / 'text.mp4').write_text('not a video\n')
  for class_name, video, count, v in (
      ('val', 'v', 3, 0), ('short', 'a', 2, 1), ('short', 'b', 10, 2),
      ('long', 'c', 5, 3), ('long', 'd', 10, 4)):
    os.makedirs(base / 'root' / class_name, exist_ok=True)
    helpers.write_video(base / 'root' / class_name / f'{video}.mp4',
                        [_colour(i, v) for i in range(count)])
  lines = {
      'train': [('clips', n) for n in (
          'good', 'zero', 'half', 'half_faststart', 'audio', 'no_frames',
          'text', 'good')] + [('ghost', 'v1'), ('clips', 'absent')],
      'validation': [('val', 'v')],
      'test': [('short', 'a'), ('short', 'b'), ('long', 'c'), ('long', 'd')],
  }
  reported = {
      'train': {1: ('clips/zero', 'cannot decode'),
                2: ('clips/half', 'cannot decode'),
                3: ('clips/half_faststart', 'cannot decode'),
                4: ('clips/audio', 'no video stream'),
                5: ('clips/no_frames', 'zero frames'),
                6: ('clips/text', 'cannot decode'),
                7: ('clips/good', 'repeats an earlier line'),
                8: ('ghost/v1', 'no file'),
                9: ('clips/absent', 'no file')},
      'validation': {}, 'test': {}}
  split_dir = helpers.write_split_dir(base / 'hostile_videos', lines)
  builder = real_datasets.load(
      'ucf_ARN', data_dir=base / 'data', manual_dir=base / 'root',
      split_dir=split_dir, source='videos', resize_short_side=0,
      num_workers=2)
  return dict(builder=builder, lines=lines, reported=reported,
              clips=clips)


def test_frame_folders(frames_build):
  """Grey, CMYK, 16-bit and 1 x 1 frames and non-UTF-8 frame file names are
  read as RGB; a non-UTF-8 video folder, a Latin-1 folder for a UTF-8 line,
  a missing class and video and a repeated line are reported by name."""
  builder = frames_build['builder']
  _check_accounting(builder, frames_build['lines'], frames_build['reported'])
  records = {v: f for _, v, f in helpers.prepared_records(builder, 'train')}
  for name, (_, _, _, rgb, *size) in MODE_FOLDERS.items():
    # 16 x 12 frames shrink to a short side of RESIZE; 4 x 4 ones are kept.
    want_size = size[0] if size else (11, RESIZE)
    assert len(records[name]) == len(rgb)
    for jpeg, colour in zip(records[name], rgb):
      got_size, mean = _mean(jpeg)
      assert got_size == want_size, name
      np.testing.assert_allclose(mean, colour, atol=6, err_msg=name)
  # img_1, img_2, img_10 in natural order despite the undecodable bytes.
  assert len(records['odd_frames']) == 3
  for i, jpeg in enumerate(records['odd_frames']):
    np.testing.assert_allclose(_mean(jpeg)[1], _colour(i), atol=4)
  test = {v: f for _, v, f in helpers.prepared_records(builder, 'test')}
  for video, count in (('pixel', 2), ('pixel5', 5)):
    assert [_mean(f)[0] for f in test[video]] == [(1, 1)] * count
  report = os.path.join(builder.data_dir, real_datasets.MISSING_VIDEOS_FILE)
  with open(report, 'rb') as f:
    f.read().decode('utf-8')  # The report itself is valid UTF-8.


def test_video_files(videos_build):
  """Zero-byte, truncated, audio-only, frameless and text .mp4 files, a
  missing class and video and a repeated line are reported by name; a video
  shorter than M frames is kept whole."""
  builder = videos_build['builder']
  _check_accounting(builder, videos_build['lines'], videos_build['reported'])
  assert real_datasets.record_num_frames(builder, 'test').tolist() == [
      2, 10, 5, 10]
  (_, _, frames), = helpers.prepared_records(builder, 'train')
  assert len(frames) == 10
  for i, jpeg in enumerate(frames):
    np.testing.assert_allclose(_mean(jpeg)[1], _colour(i), atol=12)


def _episode_frames(builder, train):
  """{video id: [M, 16, 16, 3]} of the first 2-way 1-shot 1-query episode of
  the test split (its 4 videos, so every video is in it)."""
  source = episodes.VideoSource(
      builder.as_data_source('test', deserialize_method=helpers.NO_DECODE),
      builder.info.features['label'].names, 'hostile/test')
  spec = episodes.EpisodeSpec(way=2, shot=1, query=1, frames=M,
                              frame_size=16, train=train)
  ds = episodes.episode_dataset(
      source, spec, seed=0, split='test', batch=1,
      indices=tf.data.Dataset.range(1, output_type=tf.int64))
  episode = next(iter(ds.as_numpy_iterator()))
  frames = np.concatenate([episode['support'][0], episode['query'][0]])
  assert frames.shape == (4, M, 16, 16, 3)
  return {source.video_id(v): f for v, f in zip(episode['video'][0], frames)}


def _frame_numbers(frames, video):
  """The stored frame i (colour `_colour(i, video)`) each frame shows."""
  numbers = []
  for frame in frames:
    mean = frame.reshape(-1, 3).mean(0)
    i = int(round((mean[0] - 20) / 20))
    np.testing.assert_allclose(mean, _colour(i, video), atol=12)
    assert frame.reshape(-1, 3).std(0).max() < 3  # flat, even from 1 x 1
    numbers.append(i)
  return numbers


@pytest.mark.parametrize('train', [False, True])
def test_short_videos_and_1x1_frames_make_episodes(frames_build, videos_build,
                                                   train):
  """Videos with fewer stored frames than M repeat frames, as evaluation
  does; 1 x 1 frames fill the crop."""
  shown = {}
  for build, videos in ((frames_build, (('pixel', 2, 1), ('pixel5', 5, 1))),
                        (videos_build, (('a', 2, 1), ('c', 5, 3)))):
    frames = _episode_frames(build['builder'], train)
    for video, count, v in videos:
      shown[video] = (count, _frame_numbers(frames[video], v))
  for video, (count, numbers) in shown.items():
    if train:  # One frame in each of M segments, jittered.
      assert numbers == sorted(numbers) and set(numbers) <= set(range(count))
    else:  # Segment centres: for 2 frames, frame 0 four times, then 1.
      assert numbers == frames_ops.dense_frame_indices(count, M).tolist(), video
    assert len(set(numbers)) <= count < M


def test_non_utf8_class_name_is_a_clear_error(tmp_path):
  """A class name becomes a label name (text): the error names file:line."""
  lines = {'train': [('a', '1'), (LATIN1_NAME, '2')],
           'validation': [('b', '3')], 'test': [('c', '4')]}
  split_dir = helpers.write_split_dir(tmp_path / 'x', lines)
  with pytest.raises(splits.SplitFileError,
                     match=r"trainlist03\.txt:2: class name 'caf\\\\xe9'"):
    splits.read_splits(split_dir)


def test_non_utf8_video_id_keeps_its_bytes(tmp_path):
  """The line names the file on disk; `printable` shows it as escapes."""
  lines = {'train': [('a', LATIN1_NAME)], 'validation': [('b', '3')],
           'test': [('c', '4')]}
  split_dir = helpers.write_split_dir(tmp_path / 'x', lines)
  (entry,) = splits.read_split(split_dir, 'train')
  assert os.fsencode(entry[1]) == b'caf\xe9'
  assert not splits.is_utf8(entry[1]) and splits.is_utf8('naïve')
  assert splits.printable(entry[1]) == 'caf\\xe9'


def test_predict_reads_or_names_hostile_videos(videos_build, tmp_path):
  """predict.read_video shares the decoding: read, or PredictError naming
  the path."""
  data = types.SimpleNamespace(max_frames=64, resize_short_side=128,
                               jpeg_quality=90)
  clips = videos_build['clips']
  for name, why in (('zero', 'cannot decode'), ('half', 'cannot decode'),
                    ('audio', 'no video stream'), ('text', 'cannot decode'),
                    ('no_frames', 'zero frames')):
    path = str(next(clips.glob(f'{name}.*')))
    with pytest.raises(predict.PredictError, match=why) as error:
      predict.read_video(path, data, role='query')
    assert path in str(error.value)
  short = clips.parent / 'short' / 'a.mp4'
  assert len(predict.read_video(str(short), data).jpegs) == 2
  _, _, levels, rgb = MODE_FOLDERS['grey16']
  _write_frames(tmp_path / 'grey16', 'I;16', 'png', levels)
  video = predict.read_video(str(tmp_path / 'grey16'), data)
  for jpeg, colour in zip(video.jpegs, rgb, strict=True):
    np.testing.assert_allclose(_mean(jpeg)[1], colour, atol=4)
