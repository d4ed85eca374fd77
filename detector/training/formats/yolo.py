"""YOLO (Ultralytics) detection data: a `data.yaml` and one label file per image.

`data.yaml` keys: `path` (the dataset folder, relative to data.yaml's folder; default that
folder), `train` and optionally `val` (each a folder of images, searched recursively, or a
.txt file listing image paths relative to itself; or a list of those), `names` (a list, or
a mapping 0..K-1 -> name) and optionally `nc` (their number). An image's label file is its
path with the last `images` folder replaced by `labels` and the suffix by `.txt`; each line
is `class cx cy w h`, the class counted from 0 and the box normalised to the image, or a
segmentation line `class x1 y1 x2 y2 x3 y3 ...` (a polygon of 3 points or more, normalised),
read as the polygon's bounding box as Ultralytics' own tools read it for detection. An
image without a label file has no objects.
"""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detector.training.formats.common import (
    MAX_LABEL_BYTES,
    MAX_LIST_BYTES,
    MAX_YAML_BYTES,
    MIB,
    FileProblem,
    ListedImages,
    box_problem,
    brief,
    checked_size,
    class_name_problems,
    clip_box,
    clipped,
    images_in,
    is_int,
    polygon_box,
    polygon_problem,
    read_text,
    resolved,
    shown,
)
from detector.training.samples import BACKGROUND, DatasetError, DetectionData, Sample

LINE_FORMS = "class cx cy w h, or a polygon: class x1 y1 x2 y2 x3 y3 ..."
"""What a label line holds, as messages say it."""
MAX_LINE_CHARS = 1 * MIB
"""The longest label line read. A polygon traced pixel by pixel round a whole 4K frame
(12,000 points, about 220 KB as Ultralytics writes them) fits four times over; reading
splits a line into a Python string and a float per number, some 30 times the line's size
in memory: 520 MB for a 16 MiB label file of one line."""
MAX_LINE_PROBLEMS = 100
"""The most bad lines listed for one label file; the rest are counted. A file with more is
not a label file of this format, and a problem listed costs some 200 bytes: 2 GB for a
16 MiB file of 8 million one-character lines."""
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
"""What ends a line: what `str.splitlines` cuts at, as Ultralytics reads label files."""


def read_yolo(data_yaml: Path) -> DetectionData:
    """The YOLO dataset described by `data_yaml`; raises DatasetError listing every problem."""
    name = data_yaml.name
    folder = data_yaml.parent  # as given: messages name the dataset by it
    root = folder.resolve()  # messages show paths relative to it
    try:
        doc = load_yaml(read_text(data_yaml, MAX_YAML_BYTES))
    except FileProblem as e:
        raise DatasetError([e.at(name)], folder) from None
    if not isinstance(doc, dict):
        raise DatasetError([f"{name}: expected a mapping of keys, got {brief(doc)}"], folder)

    problems: list[str] = []
    names = _names(doc, name, problems)
    base = root
    if "path" in doc:
        if isinstance(doc["path"], str):
            base = resolved(base / doc["path"])
        else:
            problems.append(f"{name}: path must be a string, got {brief(doc['path'])}")
    if "train" not in doc:
        problems.append(f"{name}: train is missing (a folder of images or a list file)")
    listed = ListedImages()
    train = _images(doc.get("train"), "train", name, base, root, listed, problems)
    val = _images(doc.get("val"), "val", name, base, root, listed, problems)
    problems += listed.problems(root)
    if problems:
        raise DatasetError(problems, folder)

    train_samples = tuple(s for i, w in train if (s := _sample(i, w, len(names), root, problems)))
    val_samples = tuple(s for i, w in val if (s := _sample(i, w, len(names), root, problems)))
    if not train and not problems:
        problems.append(f"{name}: train: no images found")
    if problems:
        raise DatasetError(problems, folder)
    return DetectionData((BACKGROUND, *names), train_samples, val_samples, root)


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader refusing aliases (a data.yaml needs none, and nested aliases expand
    to an exponentially large document for whoever walks it: the YAML "billion laughs"),
    keys given twice, and values Python cannot hold, each named at its line."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise FileProblem("YAML aliases (*name) are refused", mark.line + 1)
        return super().compose_node(parent, index)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as e:  # e.g. an integer of over 4300 digits
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read {brief(node.value)} as {node.tag.rsplit(':', 1)[-1]}: "
                f"{str(e).split(';')[0]}",
                problem_mark=node.start_mark,
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # SafeLoader refuses a list or mapping as a key
            key = self.construct_object(key_node)
            if key in first_line:  # PyYAML would keep the last silently
                raise yaml.constructor.ConstructorError(
                    problem=f"duplicate key {brief(key)} (first on line {first_line[key]})",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> object:
    """The document in `text`, safely; FileProblem naming the line if it is malformed."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise FileProblem(
            f"not valid YAML: {e.problem or e.context}", mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise FileProblem(f"not valid YAML: {e}") from None
    except RecursionError:
        raise FileProblem("not usable YAML: nested too deeply") from None


def _names(doc: dict[Any, Any], name: str, problems: list[str]) -> list[str]:
    """The class names of `names` (class 0 first), checked against `nc`."""
    raw = doc.get("names")
    if isinstance(raw, dict):
        if sorted(k if is_int(k) else -1 for k in raw) != list(range(len(raw))):
            problems.append(f"{name}: names: the keys of a mapping must be 0..{len(raw) - 1}")
            return []
        raw = [raw[k] for k in sorted(raw)]
    if not isinstance(raw, list):
        problems.append(
            f"{name}: names must be a list of class names or a mapping "
            f"0..K-1 -> name, got {brief(raw)}"
        )
        return []
    found = class_name_problems(raw)
    problems += [f"{name}: names: {p}" for p in found]
    nc = doc.get("nc")
    if nc is not None and nc != len(raw):
        problems.append(f"{name}: nc is {brief(nc)} but names has {len(raw)} classes")
    return [] if found else raw


def _images(
    value: object,
    key: str,
    name: str,
    base: Path,
    root: Path,
    listed: ListedImages,
    problems: list[str],
) -> list[tuple[Path, str]]:
    """(image path, where it was listed) for every image of the `train` or `val` value
    not in `listed` before (which counts the rest), its paths relative to `base`."""
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    found: list[tuple[Path, str]] = []
    for entry in entries:
        if not isinstance(entry, str):
            problems.append(f"{name}: {key} must be a path or a list of paths, got {brief(entry)}")
            continue
        path = base / entry
        if path.is_dir():
            where = f"{name}: {key}"
            found += [(i, where) for p in images_in(path) if listed.add(i := resolved(p), where)]
        elif path.is_file() and path.suffix.lower() == ".txt":
            found += _listed(path, root, listed, problems)
        else:
            problems.append(f"{name}: {key}: no such folder or .txt list: {shown(path, root)}")
    return found


def _listed(
    path: Path, root: Path, listed: ListedImages, problems: list[str]
) -> list[tuple[Path, str]]:
    """The images listed one a line in the .txt file `path`, relative to its folder, that
    are not in `listed` yet. Each distinct line is resolved once, and a line repeated costs
    a count: a list of one path over and over is read in time and memory linear in its
    distinct lines."""
    try:
        text = read_text(path, MAX_LIST_BYTES)
    except FileProblem as e:
        problems.append(e.at(shown(path, root)))
        return []
    name = shown(path, root)
    images: dict[str, Path] = {}  # each distinct line resolved
    found = []
    for n, start, end in _lines(text):
        line = text[start:end].strip()
        if not line:
            continue
        image = images.get(line)
        if image is None:
            image = images[line] = resolved(path.parent / line)
        where = f"{name}:{n}"
        if listed.add(image, where):
            found.append((image, where))
    return found


def label_path(image: Path) -> Path:
    """The label file of `image`: the last `images` folder of its path becomes `labels`."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _label_text(labels_file: Path, root: Path) -> str:
    """The text of an image's label file; "" when there is none (an image without objects).
    FileProblem for one that cannot be read, or whose folder is a file: a label file that
    is a folder, a pipe or a loop of links is a problem, not an image without objects."""
    if os.path.lexists(labels_file):
        return read_text(labels_file, MAX_LABEL_BYTES)
    folder = labels_file.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise FileProblem(f"cannot be read: {shown(folder, root)} is not a folder")
    return ""


def _sample(
    image: Path, where: str, classes: int, root: Path, problems: list[str]
) -> Sample | None:
    """The image with the boxes of its label file, or None after adding to `problems` why not."""
    size = checked_size(image, None, where, root, problems)
    if size is None:
        return None
    labels_file = label_path(image)
    name = shown(labels_file, root)
    try:
        text = _label_text(labels_file, root)
    except FileProblem as e:
        problems.append(e.at(name))
        return None
    boxes, labels = _Boxes(*size), array("q")
    bad = 0
    for n, start, end in _lines(text):
        if end - start > MAX_LINE_CHARS:
            problem: str | None = (
                f"line too long ({end - start} characters, the limit is {MAX_LINE_CHARS})"
            )
        else:
            problem = _read_line(text[start:end], classes, boxes, labels)
        if problem:
            bad += 1
            if bad <= MAX_LINE_PROBLEMS:
                problems.append(f"{name}:{n}: {problem}")
    if bad > MAX_LINE_PROBLEMS:
        problems.append(f"{name}: {bad - MAX_LINE_PROBLEMS} more bad lines, not listed")
    if bad:
        return None
    return Sample(
        image,
        size[0],
        size[1],
        np.frombuffer(boxes.xyxy, np.float32).reshape(-1, 4),  # not copied
        np.frombuffer(labels, np.int64),
        shown(image, root),
    )


def _lines(text: str) -> Iterator[tuple[int, int, int]]:
    """(number from 1, start, end) of each line of `text`, cut as `str.splitlines` cuts
    them, one at a time: a list of them all costs some 60 bytes a line more than the text."""
    start, n = 0, 0
    for n, brk in enumerate(_LINE_BREAK.finditer(text), start=1):
        yield n, start, brk.start()
        start = brk.end()
    if start < len(text):
        yield n + 1, start, len(text)


class _Boxes:
    """Pixel boxes of one `width` x `height` image, as they are read: float32 x1 y1 x2 y2
    one after another (a Python tuple of floats costs 170 bytes a box, this 16)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.xyxy = array("f")


def _read_line(line: str, classes: int, boxes: _Boxes, labels: array[int]) -> str | None:
    """Adds the box of a label line to `boxes` and its class to `labels`; what is wrong
    with the line instead, if anything (None also for a blank line)."""
    fields = line.split()
    if not fields:
        return None
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return f"expected numbers ({LINE_FORMS}), got {brief(line.strip())}"
    label, coordinates = values[0], values[1:]
    if len(coordinates) != 4:
        shape_problem = polygon_problem(coordinates)
        if shape_problem:
            return (
                f"expected {LINE_FORMS}; got {len(fields)} numbers: "
                f"as a polygon, it {shape_problem}"
            )
    if not label.is_integer() or not 0 <= label < classes:
        return f"unknown class {clipped(fields[0])} (names has {classes}: 0..{classes - 1})"
    width, height = boxes.width, boxes.height
    if len(coordinates) == 4:
        cx, cy, w, h = coordinates
        xyxy = (
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        )
        what = "box"
    else:
        x1, y1, x2, y2 = polygon_box(coordinates)
        xyxy = (x1 * width, y1 * height, x2 * width, y2 * height)
        what = "polygon's bounding box"
    problem = box_problem(xyxy, width, height)
    if problem:
        return f"{what} ({clipped(' '.join(fields[1:]))}) {problem}"
    boxes.xyxy.extend(clip_box(xyxy, width, height))
    labels.append(int(label) + 1)
    return None
