"""Reading one video as a list of JPEG-encoded frames.

Two sources: a folder of extracted frames (`*.jpg`, `*.jpeg`, `*.png`, in the
natural order of their names: img_2 before img_10), or a video file decoded
with PyAV (`pip install av`; its wheels ship FFmpeg with its codecs).

Long videos are subsampled uniformly to at most `max_frames` frames
(`subsample_indices`), frames whose short side exceeds `resize_short_side` are
shrunk to it (aspect kept; smaller frames are never enlarged), and JPEG frames
that need no change keep their original bytes (no re-encoding). Every other
frame is stored as RGB JPEG whatever its mode: grey, palette, alpha, CMYK
(JPEG only; PNG cannot hold it) and 16-bit grey PNG (`to_rgb`).

A video that cannot be read raises `UnreadableVideoError` naming its file or
folder: no folder or file, no frames, a frame or container that does not
decode (zero bytes, truncated, not an image or video), no video stream.
"""

import io
import os
import re
from typing import Callable, Sequence

import numpy as np
from PIL import Image

FRAME_EXTENSIONS = ('.jpg', '.jpeg', '.png')
VIDEO_EXTENSIONS = ('mp4', 'avi', 'webm', 'mkv')


class UnreadableVideoError(Exception):
  """A video has no frames or cannot be decoded; the message says why."""


def natural_sort_key(name: str) -> list[str | int]:
  """Sort key that orders digit runs by value: img_2 < img_10."""
  return [int(t) if t.isdigit() else t.lower()
          for t in re.split(r'(\d+)', name)]


def subsample_indices(num_frames: int, max_frames: int) -> np.ndarray:
  """Indices of the frames kept from a video of `num_frames` frames.

  All frames when `max_frames <= 0` or the video is short enough; otherwise
  the centres of `max_frames` equal segments, `floor((i + 0.5) * n / k)`.

  Args:
    num_frames: frames in the video (n).
    max_frames: the most frames to keep (k); 0 keeps all.

  Returns:
    Increasing int64 indices, [min(n, k)] (or [n] when k <= 0).
  """
  if max_frames <= 0 or num_frames <= max_frames:
    return np.arange(num_frames, dtype=np.int64)
  return np.floor((np.arange(max_frames) + 0.5) * num_frames /
                  max_frames).astype(np.int64)


def target_size(width: int, height: int,
                short_side: int) -> tuple[int, int] | None:
  """(width, height) with the short side shrunk to `short_side`, or None.

  None means "keep the size": `short_side <= 0` or the short side is already
  at most `short_side`.
  """
  short = min(width, height)
  if short_side <= 0 or short <= short_side:
    return None
  if width <= height:
    return short_side, max(1, round(height * short_side / width))
  return max(1, round(width * short_side / height)), short_side


# Pillow modes of 16-bit grey images (a 16-bit grey PNG opens as 'I;16';
# older Pillow versions opened it as 32-bit 'I' holding the same values).
_SIXTEEN_BIT_GREY_MODES = ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N')


def to_rgb(image: Image.Image) -> Image.Image:
  """The image in RGB mode, 8 bits a channel.

  Pillow's own conversion of 16-bit grey clips every level above 255 to
  white, so those levels are scaled instead (v * 255 / 65535, rounded); the
  other modes (grey, palette, alpha, CMYK, ...) convert as Pillow does.
  """
  if image.mode in _SIXTEEN_BIT_GREY_MODES:
    levels = np.clip(np.asarray(image, np.float64), 0, 65535) * (255 / 65535)
    image = Image.fromarray(np.round(levels).astype(np.uint8), 'L')
  return image.convert('RGB')


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
  """The image as RGB JPEG bytes (`to_rgb`)."""
  buffer = io.BytesIO()
  to_rgb(image).save(buffer, format='JPEG', quality=quality)
  return buffer.getvalue()


def _resize_and_encode(image: Image.Image, resize_short_side: int,
                       quality: int) -> bytes:
  size = target_size(*image.size, resize_short_side)
  if size is not None:
    image = to_rgb(image).resize(size, Image.Resampling.BILINEAR)
  return encode_jpeg(image, quality)


def frame_files(folder: str) -> list[str]:
  """Image files of a frame folder, in natural order of their names."""
  names = [n for n in os.listdir(folder)
           if n.lower().endswith(FRAME_EXTENSIONS)]
  return [os.path.join(folder, n) for n in sorted(names, key=natural_sort_key)]


def _read_frame(path: str, resize_short_side: int, quality: int) -> bytes:
  with open(path, 'rb') as f:
    data = f.read()
  with Image.open(io.BytesIO(data)) as image:
    keep = (image.format == 'JPEG' and image.mode == 'RGB' and
            target_size(*image.size, resize_short_side) is None)
    if keep:
      # Reading the header does not catch a truncated file; a complete JPEG
      # ends with the EOI marker, otherwise decode it to find out.
      if not data.rstrip(b'\0').endswith(b'\xff\xd9'):
        image.load()
      return data
    return _resize_and_encode(image, resize_short_side, quality)


def read_frame_folder(folder: str, *, max_frames: int, resize_short_side: int,
                      quality: int) -> tuple[list[bytes], int]:
  """JPEG bytes of the (subsampled) frames of an extracted-frames folder.

  Args:
    folder: holds the video's frames as image files.
    max_frames: see `subsample_indices`.
    resize_short_side: see `target_size`.
    quality: JPEG quality of re-encoded frames.

  Returns:
    (frames, number of frames in the folder).

  Raises:
    UnreadableVideoError: no folder, no frames, or a frame that is not a
      readable image.
  """
  if not os.path.isdir(folder):
    raise UnreadableVideoError(f'no folder {folder}')
  files = frame_files(folder)
  if not files:
    raise UnreadableVideoError(f'zero frames in {folder}')
  frames = []
  for i in subsample_indices(len(files), max_frames):
    try:
      frames.append(_read_frame(files[i], resize_short_side, quality))
    except (OSError, SyntaxError, ValueError) as e:
      raise UnreadableVideoError(f'unreadable frame {files[i]}: {e}') from e
  return frames, len(files)


def _import_av():
  try:
    import av  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('Decoding video files needs PyAV: pip install av') from e
  return av


def _decode_selected(path: str, wanted: Callable[[int], bool],
                     encode: Callable[[Image.Image], bytes]
                    ) -> tuple[dict[int, bytes], int]:
  """Decodes every frame, encodes those with `wanted(index)`; also counts."""
  av = _import_av()
  kept = {}
  count = 0
  with av.open(path) as container:
    if not container.streams.video:
      raise UnreadableVideoError(f'no video stream in {path}')
    stream = container.streams.video[0]
    stream.thread_type = 'AUTO'
    for frame in container.decode(stream):
      if wanted(count):
        kept[count] = encode(frame.to_image())
      count += 1
  return kept, count


def _estimate_frame_count(path: str) -> int:
  """Frames in the container's header, else its video packets (no decode)."""
  av = _import_av()
  with av.open(path) as container:
    if not container.streams.video:
      raise UnreadableVideoError(f'no video stream in {path}')
    stream = container.streams.video[0]
    if stream.frames > 0:
      return stream.frames
    return sum(1 for p in container.demux(stream) if p.size > 0)


def decode_video_file(path: str, *, max_frames: int, resize_short_side: int,
                      quality: int) -> tuple[list[bytes], int]:
  """JPEG bytes of the (subsampled) frames of a video file.

  Only the kept frames are converted and held (as JPEG), so long videos do not
  fill memory. The frame count is first read from the container (or counted
  from packets); when decoding finds a different count, the indices are
  recomputed and, if needed, the video is decoded a second time.

  Args:
    path: a file PyAV (FFmpeg) can open.
    max_frames: see `subsample_indices`.
    resize_short_side: see `target_size`.
    quality: JPEG quality.

  Returns:
    (frames, number of decoded frames in the file).

  Raises:
    UnreadableVideoError: the file cannot be opened or decoded, or it has no
      frames.
  """
  av = _import_av()

  def encode(image):
    return _resize_and_encode(image, resize_short_side, quality)

  try:
    estimate = _estimate_frame_count(path)
    wanted = set(subsample_indices(estimate, max_frames).tolist())
    keep_all = max_frames <= 0
    kept, count = _decode_selected(path, lambda i: keep_all or i in wanted,
                                   encode)
    indices = subsample_indices(count, max_frames).tolist()
    if not set(indices) <= kept.keys():
      wanted = set(indices)
      kept, count = _decode_selected(path, wanted.__contains__, encode)
      indices = subsample_indices(count, max_frames).tolist()
  except (av.FFmpegError, OSError, ValueError, EOFError) as e:
    raise UnreadableVideoError(f'cannot decode {path}: {e}') from e
  if count == 0:
    raise UnreadableVideoError(f'zero frames in {path}')
  return [kept[i] for i in indices], count


def find_video_file(stem: str,
                    extensions: Sequence[str] = VIDEO_EXTENSIONS) -> str | None:
  """`stem.<ext>` for the first extension that exists, else None."""
  for ext in extensions:
    path = f'{stem}.{ext}'
    if os.path.isfile(path):
      return path
  return None
