"""Split files of the few-shot action recognition benchmarks.

A split folder holds three text files, one video a line, found by the prefix of
their names: `train*.txt`, `val*.txt` and `test*.txt` (for example
`trainlist03.txt`, `vallist03.txt`, `testlist03.txt`). Two line formats exist:

* `class/video_id` (UCF101 and HMDB51 ARN, Kinetics-100 and SSv2-small CMN,
  ActivityNet VIM), e.g. `air drumming/-VtLx-mcPds_000012_000022`. Class names
  may contain spaces and parentheses; the first `/` ends the class name.
* `splitN/video_id` (SSv2-full OTAM), e.g. `train8/78687`: `N` is the index of
  the class within its split, so the class name is `f'{prefix}{N}'` with the
  prefix `train`, `val` or `test` of the file the line is in.

Names are the bytes of file and folder names: a file is read as UTF-8, and a
byte that is not UTF-8 is kept as Python keeps it in file names (the
'surrogateescape' error handler), so the line still names the folder or file
on disk. A class name must be valid UTF-8 (it becomes a label name, which is
text); a video id need not be, and the dataset builder reports such a video
(`printable` shows it with \\xNN escapes).

A repeated line is returned again, in its place: the dataset builder reads the
video once and reports each repeat, so that every line is accounted for.

The benchmark folders (`splits/` beside DESIGN.md) are data, not part of the
package: the project points to a split folder by config.
"""

import dataclasses
import os
import re
from typing import Sequence

SPLITS = ('train', 'validation', 'test')
# File-name prefix of each split's file.
_FILE_PREFIX = {'train': 'train', 'validation': 'val', 'test': 'test'}
# Class-name prefix of OTAM lines in each split's file.
_OTAM_PREFIX = {'train': 'train', 'validation': 'val', 'test': 'test'}

CLASS_VIDEO = 'class/video_id'
SPLIT_INDEX_VIDEO = 'splitN/video_id'
LINE_FORMATS = (CLASS_VIDEO, SPLIT_INDEX_VIDEO)

_OTAM_CLASS = re.compile(r'^(train|val|test)(\d+)$')


@dataclasses.dataclass(frozen=True)
class SplitProtocol:
  """A benchmark's split folder.

  Attributes:
    folder: name of the folder under `splits/`.
    dataset: the dataset the lines refer to.
    protocol: who defined the split.
    line_format: `CLASS_VIDEO` or `SPLIT_INDEX_VIDEO`.
  """
  folder: str
  dataset: str
  protocol: str
  line_format: str


SPLIT_PROTOCOLS = {
    p.folder: p for p in (
        SplitProtocol('ucf_ARN', 'UCF101', 'ARN (Zhang et al. 2020)',
                      CLASS_VIDEO),
        SplitProtocol('hmdb_ARN', 'HMDB51', 'ARN (Zhang et al. 2020)',
                      CLASS_VIDEO),
        SplitProtocol('kinetics_CMN', 'Kinetics-100',
                      'CMN (Zhu & Yang 2018)', CLASS_VIDEO),
        SplitProtocol('ssv2_CMN', 'Something-Something v2 small',
                      'CMN (Zhu & Yang 2018)', CLASS_VIDEO),
        SplitProtocol('ssv2_OTAM', 'Something-Something v2 full',
                      'OTAM (Cao et al. 2020)', SPLIT_INDEX_VIDEO),
        SplitProtocol('activitynet_VIM', 'ActivityNet (100 classes)',
                      'VIM (paper section 4.3.2)', CLASS_VIDEO),
    )
}


class SplitFileError(ValueError):
  """A split file is missing, ambiguous or has a malformed line."""


def is_utf8(name: str) -> bool:
  """Whether `name` (read with 'surrogateescape') is valid UTF-8 text."""
  try:
    name.encode('utf-8')
  except UnicodeEncodeError:
    return False
  return True


def printable(name: str) -> str:
  """`name` as UTF-8 text, its bytes that are not UTF-8 written as \\xNN."""
  return name.encode('utf-8', 'surrogateescape').decode('utf-8',
                                                         'backslashreplace')


def infer_line_format(split_dir: str | os.PathLike) -> str:
  """The line format of a split folder: from its name, else `CLASS_VIDEO`."""
  protocol = SPLIT_PROTOCOLS.get(os.path.basename(os.path.normpath(split_dir)))
  return protocol.line_format if protocol else CLASS_VIDEO


def split_file(split_dir: str | os.PathLike, split: str) -> str:
  """Path of the file of `split` ('train', 'validation' or 'test')."""
  if split not in _FILE_PREFIX:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  if not os.path.isdir(split_dir):
    raise SplitFileError(f'Split folder {split_dir} does not exist.')
  prefix = _FILE_PREFIX[split]
  names = sorted(n for n in os.listdir(split_dir)
                 if n.startswith(prefix) and n.endswith('.txt'))
  if len(names) != 1:
    raise SplitFileError(
        f'Expected exactly one {prefix}*.txt file in {split_dir} for split '
        f'{split!r}, found {names or "none"}.')
  return os.path.join(split_dir, names[0])


def read_split(split_dir: str | os.PathLike,
               split: str,
               line_format: str | None = None) -> list[tuple[str, str]]:
  """Reads one split file.

  Blank lines are skipped; spaces around a line are ignored (not inside it).
  A repeated line is returned again (see the module docstring).

  Args:
    split_dir: folder holding `train*.txt`, `val*.txt` and `test*.txt`.
    split: 'train', 'validation' or 'test'.
    line_format: `CLASS_VIDEO` or `SPLIT_INDEX_VIDEO`; None infers it from the
      folder name (`SPLIT_PROTOCOLS`), defaulting to `CLASS_VIDEO`.

  Returns:
    `(class_name, video_id)` per line, in file order. For `SPLIT_INDEX_VIDEO`
    the class name is the text before the slash, e.g. 'train8'.

  Raises:
    SplitFileError: naming the file and line number of a malformed line or of
      a class name that is not valid UTF-8 (or a missing split file).
  """
  line_format = line_format or infer_line_format(split_dir)
  if line_format not in LINE_FORMATS:
    raise ValueError(f'line_format must be one of {LINE_FORMATS}, '
                     f'got {line_format!r}')
  path = split_file(split_dir, split)
  entries = []
  with open(path, encoding='utf-8', errors='surrogateescape') as f:
    for lineno, raw in enumerate(f, start=1):
      line = raw.strip()
      if not line:
        continue
      where = f'{path}:{lineno}'
      parts = line.split('/')
      if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise SplitFileError(f'{where}: expected one {line_format!r} entry, '
                             f'got {printable(line)!r}.')
      class_name, video_id = parts[0].strip(), parts[1].strip()
      if not is_utf8(class_name):
        raise SplitFileError(
            f'{where}: class name {printable(class_name)!r} is not valid '
            'UTF-8; class names become label names, which are text: rename '
            'the class folder and its lines.')
      if line_format == SPLIT_INDEX_VIDEO:
        match = _OTAM_CLASS.match(class_name)
        if not match or match.group(1) != _OTAM_PREFIX[split]:
          raise SplitFileError(
              f'{where}: expected "{_OTAM_PREFIX[split]}N/video_id" '
              f'(N = class index), got {line!r}.')
        class_name = f'{_OTAM_PREFIX[split]}{int(match.group(2))}'
      entries.append((class_name, video_id))
  if not entries:
    raise SplitFileError(f'{path} lists no videos.')
  return entries


def read_splits(split_dir: str | os.PathLike,
                line_format: str | None = None
               ) -> dict[str, list[tuple[str, str]]]:
  """`read_split` for each of 'train', 'validation', 'test'.

  Raises:
    SplitFileError: also when a class appears in more than one split (the
      few-shot protocols keep train, validation and test classes disjoint).
  """
  entries = {s: read_split(split_dir, s, line_format) for s in SPLITS}
  owner = {}
  for split in SPLITS:
    for class_name, _ in entries[split]:
      other = owner.setdefault(class_name, split)
      if other != split:
        raise SplitFileError(
            f'Class {class_name!r} is in both the {other!r} and {split!r} '
            f'splits of {split_dir}; few-shot splits must be disjoint.')
  return entries


def class_names(entries: dict[str, Sequence[tuple[str, str]]],
                line_format: str = CLASS_VIDEO) -> list[str]:
  """All class names, train then validation then test.

  Within a split, classes come in the order of their first line; for
  `SPLIT_INDEX_VIDEO` they come by their index N instead (the files are
  shuffled, and N is the class's identity), so 'train0' is label 0.

  Args:
    entries: `read_splits` output.
    line_format: the format the entries were read with.

  Returns:
    The class names, each once.
  """
  names = {}  # An ordered set.
  for split in SPLITS:
    split_names = list(dict.fromkeys(c for c, _ in entries[split]))
    if line_format == SPLIT_INDEX_VIDEO:
      split_names.sort(key=lambda c: int(_OTAM_CLASS.match(c).group(2)))
    names.update(dict.fromkeys(split_names))
  return list(names)
