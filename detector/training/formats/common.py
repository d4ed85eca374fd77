"""What every dataset reader checks the same way: file sizes, images, boxes, class names."""

from __future__ import annotations

import math
import os
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeGuard

from detector.labels import name_length_problem
from detector.training.images import UnreadableImage, image_size
from detector.training.samples import BACKGROUND
from pipeline.folders import IMAGE_SUFFIXES
from pipeline.types import LabelMap

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
# Bounds on what a reader loads into memory, each well above what real datasets hold
# (COCO 2017's train annotations are 448 MiB; a VOC or YOLO file is a few KiB).
MAX_JSON_BYTES = 1 * GIB
MAX_JSON_CONTAINERS = 16_000_000
"""Arrays and objects a COCO JSON file may hold (counted as its `[` and `{` characters,
before it is parsed). Each costs some 60 bytes parsed, against 3 bytes written (`[],`): a
file of little else would take 25 times its size in memory. COCO 2017's training
annotations hold some 4 million."""
MAX_YAML_BYTES = 1 * MIB
MAX_XML_BYTES = 1 * MIB
MAX_LABEL_BYTES = 16 * MIB
MAX_LIST_BYTES = 256 * MIB

BOX_TOLERANCE = 1.0
"""Pixels a box may stick out of its image (rounding in annotation tools); it is clipped."""


class FileProblem(Exception):
    """A file that cannot be used; the message says why, in a few words, and `line` where
    (None: the whole file)."""

    def __init__(self, what: str, line: int | None = None) -> None:
        super().__init__(what)
        self.line = line

    def at(self, name: str) -> str:
        """The problem as listed for the file shown as `name`: "FILE:LINE: what"."""
        return f"{name}:{self.line}: {self}" if self.line else f"{name}: {self}"


def shown(path: Path, root: Path) -> str:
    """`path` as messages show it: relative to the dataset's `root` when it lies within."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


SHOWN_NAME_CHARS = 160
"""The longest file name a message shows whole; a longer one is cut in the middle."""


def clipped(name: str) -> str:
    """`name` (a file name, a field of a line) for a one-line message: cut in the middle
    past `SHOWN_NAME_CHARS`."""
    if len(name) <= SHOWN_NAME_CHARS:
        return name
    keep = SHOWN_NAME_CHARS // 2
    return f"{name[:keep]}...({len(name)} characters)...{name[-keep // 2 :]}"


def resolved(path: Path) -> Path:
    """`path` made absolute, its symbolic links followed where they lead somewhere: a loop
    of links (or a NUL in a listed name) is kept as it is written, for the image check to
    refuse it, where `Path.resolve` would raise."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # RuntimeError: Python 3.11's symlink loop
        return Path(os.path.abspath(path))


SHOWN_REPEATS = 3
"""The most places named where one image file is listed again, after the first; the rest
are counted."""


class ListedImages:
    """The image files a dataset lists, each kept once: one listed again is counted, for
    `problems` to name once (a list of one path 10 million times costs a count, not 10
    million entries). One image twice in a dataset is a mistake: its entries may carry
    different boxes, and in training and validation both it flatters the validation score."""

    def __init__(self) -> None:
        self._first: dict[Path, str] = {}
        self._again: dict[Path, list[str]] = {}  # the first places after the first
        self._times: dict[Path, int] = {}

    def add(self, path: Path, where: str) -> bool:
        """Whether the image file `path` (resolved), listed at `where`, is new."""
        if path not in self._first:
            self._first[path] = where
            return True
        again = self._again.setdefault(path, [])
        if len(again) <= SHOWN_REPEATS:
            again.append(where)
        self._times[path] = self._times.get(path, 1) + 1
        return False

    def problems(self, root: Path) -> list[str]:
        """One problem for each image file listed more than once, naming where."""
        problems = []
        for path, again in self._again.items():
            problem = (
                f"{again[0]}: the same image file as {self._first[path]} ({shown(path, root)})"
            )
            if len(again) > 1:
                times = self._times[path]
                more = times - 1 - len(again)
                problem += f"; listed {times} times in all: also at {', '.join(again[1:])}"
                problem += f" and {more} more" if more > 0 else ""
            problems.append(problem)
        return problems


def repeated_images(listed: Iterable[tuple[Path, str]], root: Path) -> list[str]:
    """`ListedImages.problems` of `listed`: (resolved path, where it is listed) pairs."""
    images = ListedImages()
    for path, where in listed:
        images.add(path, where)
    return images.problems(root)


_NOT_A_FILE = "not a regular file (a folder, a device or a pipe)"


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of `path`, refused (FileProblem) when missing, unreadable or over `limit`."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a pipe would block the read until written
            raise FileProblem(_NOT_A_FILE)
        size = status.st_size
        if size > limit:
            raise FileProblem(
                f"file too large ({size / MIB:.1f} MiB, the limit is {limit / MIB:.0f} MiB)"
            )
        with path.open("rb") as f:
            data = f.read(limit + 1)  # the file may have grown since stat
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except OSError as e:
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise FileProblem(f"file too large (over {limit / MIB:.0f} MiB)")
    return data


def read_text(path: Path, limit: int) -> str:
    """`read_bounded` decoded as UTF-8 (a byte order mark allowed)."""
    try:
        return read_bounded(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileProblem(f"not UTF-8 text (byte {e.start})") from None


def checked_size(
    path: Path, declared: tuple[int, int] | None, where: str, root: Path, problems: list[str]
) -> tuple[int, int] | None:
    """The size of the upright image at `path` (`declared`, else read from the file), or
    None after adding to `problems` why the image cannot be used (`where` tells which
    annotation)."""
    try:
        actual = image_size(path)
    except UnreadableImage as e:
        problems.append(f"{where}: {e}: {clipped(shown(path, root))}")
        return None
    if declared is not None and declared != actual:
        problems.append(
            f"{where}: declares {declared[0]}x{declared[1]} but {path.name} is "
            f"{actual[0]}x{actual[1]}"
        )
        return None
    return actual


def box_problem(xyxy: Sequence[float], width: int, height: int) -> str | None:
    """What is wrong with the xyxy pixel box in a `width` x `height` image, or None:
    a coordinate not finite, the box beyond the image by over `BOX_TOLERANCE` pixels, or
    no area once clipped to the image."""
    if not all(math.isfinite(v) for v in xyxy):
        return "has a coordinate that is not a finite number"
    x1, y1, x2, y2 = xyxy
    t = BOX_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        return f"is outside the {width}x{height} image"
    x1, y1, x2, y2 = clip_box(xyxy, width, height)
    if x2 <= x1 or y2 <= y1:
        return "has zero or negative area"
    return None


POLYGON_MIN_POINTS = 3
"""The fewest points an outline (a segmentation polygon) of an object has."""


def polygon_problem(coordinates: Sequence[float]) -> str | None:
    """What is wrong with the flat `x1 y1 x2 y2 ...` coordinates of a polygon, or None."""
    if len(coordinates) % 2:
        return f"has an odd number of coordinates ({len(coordinates)}): not x y pairs"
    if len(coordinates) < 2 * POLYGON_MIN_POINTS:
        return f"has {len(coordinates) // 2} point(s); a polygon has {POLYGON_MIN_POINTS} or more"
    return None


def polygon_box(coordinates: Sequence[float]) -> tuple[float, float, float, float]:
    """The xyxy bounding box of a polygon given as flat `x1 y1 x2 y2 ...` coordinates (the
    box detection trains on, as Ultralytics' and COCO's tools derive it from an outline)."""
    xs, ys = coordinates[0::2], coordinates[1::2]
    return (min(xs), min(ys), max(xs), max(ys))


def clip_box(xyxy: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """The xyxy box clipped to the image."""
    x1, y1, x2, y2 = xyxy
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def class_name_problems(names: Sequence[object]) -> list[str]:
    """What is wrong with a dataset's own class names (background not included)."""
    problems = []
    if not names:
        problems.append("no classes")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            problems.append(f"class name {brief(name)} is not a non-empty string")
        elif name == BACKGROUND:
            problems.append(f"class name {BACKGROUND!r} is reserved for class 0")
        elif (control := control_problem(name)) is not None:
            problems.append(control)
        elif (too_long := name_length_problem(name)) is not None:
            problems.append(too_long)
    return problems + repeated_class_names([n for n in names if isinstance(n, str)])


def control_problem(name: str) -> str | None:
    """Why `name` cannot name a class for the control characters in it (a newline would
    split every one-line message naming the class, and no `labels:` could spell it), or
    None."""
    if any(unicodedata.category(c) == "Cc" for c in name):
        return f"class name {brief(name)} holds a control character (a newline, a tab...)"
    return None


def repeated_class_names(names: Sequence[str]) -> list[str]:
    """Class names given twice, or twice by the one rule that matches a class name wherever
    a person names one (`LabelMap.key`: case and surrounding spaces aside): `evaluate` and a
    config's `labels:` could not tell such classes apart."""
    problems = []
    first: dict[str, str] = {}
    for name in names:
        key = LabelMap.key(name)
        if key not in first:
            first[key] = name
        elif first[key] == name:
            problems.append(f"class name {name!r} appears twice")
        else:
            problems.append(
                f"class names {first[key]!r} and {name!r} are one class where a class is named "
                f"(case and surrounding spaces aside, as in `labels:` and `evaluate`)"
            )
    return problems


def brief(value: object) -> str:
    """`value` for a message, never long: a short repr of a scalar, else its type."""
    if isinstance(value, (str, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(value).__name__}"


def is_int(value: object) -> TypeGuard[int]:
    """Whether `value` is a JSON/YAML integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[float]:
    """Whether `value` is a finite JSON/YAML number (not a bool) that a float holds: an
    integer beyond float's range (JSON sets none) is not."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def images_in(folder: Path) -> list[Path]:
    """The image files under `folder` (recursively), sorted by path."""
    found = []
    for dirpath, _, filenames in os.walk(folder):
        found += [Path(dirpath) / f for f in filenames if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)
