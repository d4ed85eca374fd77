"""Pascal VOC: `Annotations/ID.xml` per image, images in `JPEGImages/`.

The split: validation images are those listed in `ImageSets/Main/val.txt` (none if it is
missing); training images those in `ImageSets/Main/train.txt`, else in `trainval.txt`,
else every `Annotations/*.xml`, less the validation ones. Class names: the lines of
`labels.txt` in the dataset folder when it exists, else every object `name` seen, sorted.
Box corners count pixels from 1 as in the VOC devkit (xmin=1, xmax=width spans the image):
the box in continuous pixel coordinates is (xmin - 1, ymin - 1, xmax, ymax). Objects
marked `difficult` are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.parsers import expat

import numpy as np

from detector.training.formats.common import (
    MAX_LIST_BYTES,
    MAX_XML_BYTES,
    FileProblem,
    box_problem,
    brief,
    checked_size,
    class_name_problems,
    clip_box,
    control_problem,
    read_bounded,
    read_text,
    repeated_class_names,
    repeated_images,
    resolved,
)
from detector.training.samples import BACKGROUND, DatasetError, DetectionData, Sample

MAX_SIDE_DIGITS = 9
"""The most digits of a <size> width or height: no image is a billion pixels wide."""

SETS = "ImageSets/Main"
CORNERS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class _Object:
    name: str
    xyxy: tuple[float, float, float, float]
    where: str  # "Annotations/ID.xml:LINE"


@dataclass(frozen=True)
class _Annotation:
    image: Path
    size: tuple[int, int]
    objects: tuple[_Object, ...]
    origin: str


def read_voc(root: Path) -> DetectionData:
    """The Pascal VOC dataset in folder `root`; raises DatasetError listing every problem."""
    folder, root = root, root.resolve()  # the dataset named as given; paths found from root
    problems: list[str] = []
    train_ids, val_ids = _split(root, problems)
    train = [a for i in train_ids if (a := _annotation(root, i, problems))]
    val = [a for i in val_ids if (a := _annotation(root, i, problems))]
    problems += repeated_images(((a.image, a.origin) for a in train + val), root)
    names = _class_names(root, train + val, problems)
    if not train_ids and not problems:
        problems.append("no training images (no Annotations/*.xml, or empty image sets)")
    labels = {name: label for label, name in enumerate(names, start=1)}
    for annotation in train + val:
        for obj in annotation.objects:
            if obj.name not in labels:
                problems.append(f"{obj.where}: unknown class {brief(obj.name)} (not in labels.txt)")
    if problems:
        raise DatasetError(problems, folder)
    return DetectionData(
        class_names=(BACKGROUND, *names),
        train=tuple(_sample(a, labels) for a in train),
        val=tuple(_sample(a, labels) for a in val),
        folder=root,
    )


def _split(root: Path, problems: list[str]) -> tuple[list[str], list[str]]:
    """(train ids, val ids) following the module's rule."""

    def listed(name: str) -> list[str] | None:
        path = root / SETS / name
        if not path.is_file():
            return None
        try:
            text = read_text(path, MAX_LIST_BYTES)
        except FileProblem as e:
            problems.append(e.at(f"{SETS}/{name}"))
            return []
        ids: dict[str, int] = {}  # id -> the line listing it
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                image_id = line.split()[0]
                if image_id in ids:
                    problems.append(
                        f"{SETS}/{name}:{n}: {image_id} is listed on line {ids[image_id]} too"
                    )
                elif os.path.lexists(root / "Annotations" / f"{image_id}.xml"):
                    ids[image_id] = n
                else:
                    problems.append(f"{SETS}/{name}:{n}: no Annotations/{image_id}.xml")
        return list(ids)

    val = listed("val.txt") or []
    train = listed("train.txt")
    if train is None:
        train = listed("trainval.txt")
    if train is None:
        train = sorted(p.stem for p in (root / "Annotations").glob("*.xml"))
    held_out = set(val)
    return [i for i in train if i not in held_out], val


def _annotation(root: Path, image_id: str, problems: list[str]) -> _Annotation | None:
    """The annotation of `image_id`, or None after adding to `problems` why not."""
    name = f"Annotations/{image_id}.xml"
    count = len(problems)
    try:
        tree, lines = parse_xml(read_bounded(root / name, MAX_XML_BYTES))
    except FileProblem as e:
        problems.append(e.at(name))
        return None
    if tree.tag != "annotation":
        problems.append(f"{name}:{lines[tree]}: expected <annotation> at the top, got <{tree.tag}>")
        return None

    declared = None
    size = tree.find("size")
    if size is not None:
        width, height = _text(size, "width"), _text(size, "height")
        if not all(_is_side(v) for v in (width, height)):
            problems.append(
                f"{name}:{lines[size]}: size: width and height must be positive "
                f"integers, got {brief(width)} and {brief(height)}"
            )
            return None
        declared = (int(width), int(height))
    image = resolved(root / "JPEGImages" / (_text(tree, "filename") or f"{image_id}.jpg"))
    image_size = checked_size(image, declared, name, root, problems)

    objects = []
    for element in tree.findall("object"):
        where = f"{name}:{lines[element]}"
        box = element.find("bndbox")
        label = _text(element, "name")
        if not label:
            problems.append(f"{where}: object without a <name>")
            continue
        try:
            if box is None:
                raise ValueError
            xmin, ymin, xmax, ymax = (float(_text(box, k)) for k in CORNERS)
        except ValueError:
            problems.append(
                f"{where}: object {brief(label)} needs a <bndbox> with numbers xmin, "
                "ymin, xmax, ymax"
            )
            continue
        xyxy = (xmin - 1.0, ymin - 1.0, xmax, ymax)
        if image_size is not None:
            problem = box_problem(xyxy, *image_size)
            if problem:
                problems.append(
                    f"{where}: box of {brief(label)} ({xmin:g}, {ymin:g}, {xmax:g}, "
                    f"{ymax:g}) {problem}"
                )
                continue
            objects.append(_Object(label, clip_box(xyxy, *image_size), where))
    if image_size is None or len(problems) > count:
        return None
    return _Annotation(image, image_size, tuple(objects), name)


def _class_names(root: Path, annotations: list[_Annotation], problems: list[str]) -> list[str]:
    path = root / "labels.txt"
    if path.is_file():
        try:
            names = [line.strip() for line in read_text(path, MAX_LIST_BYTES).splitlines()]
        except FileProblem as e:
            problems.append(e.at("labels.txt"))
            return []
        names = [n for n in names if n]
        problems += [f"labels.txt: {p}" for p in class_name_problems(names)]
        return names
    names = sorted({obj.name for a in annotations for obj in a.objects})
    if BACKGROUND in names:
        problems.append(f"an object is named {BACKGROUND!r}, the name reserved for class 0")
    controls = (control_problem(name) for name in names)
    problems += [f"object names: {p}" for p in controls if p is not None]
    problems += [f"object names: {p}" for p in repeated_class_names(names)]
    if not names and annotations:
        problems.append("no objects in any annotation (and no labels.txt naming the classes)")
    return names


def _sample(annotation: _Annotation, labels: dict[str, int]) -> Sample:
    return Sample(
        image=annotation.image,
        width=annotation.size[0],
        height=annotation.size[1],
        boxes=np.array([o.xyxy for o in annotation.objects], dtype=np.float32).reshape(-1, 4),
        labels=np.array([labels[o.name] for o in annotation.objects], dtype=np.int64),
        origin=annotation.origin,
    )


def _text(element: ET.Element, child: str) -> str:
    """Stripped text of `element`'s first `child`, "" if there is none."""
    found = element.find(child)
    return (found.text or "").strip() if found is not None else ""


def _is_side(text: str) -> bool:
    """Whether `text` is a positive integer of at most `MAX_SIDE_DIGITS` digits (int() would
    refuse one of over 4300)."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_SIDE_DIGITS and int(text) > 0


def parse_xml(data: bytes) -> tuple[ET.Element, dict[ET.Element, int]]:
    """(root element, line of every element) of an XML document.

    A document with a DOCTYPE or entity declaration is refused before anything is expanded
    (entity expansion bombs, external entities): annotations never need them. Raises
    FileProblem for that and for malformed XML, naming the line.
    """
    builder = ET.TreeBuilder()
    lines: dict[ET.Element, int] = {}
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def start(tag: str, attributes: dict[str, str]) -> None:
        lines[builder.start(tag, attributes)] = parser.CurrentLineNumber

    def refuse(*_: object) -> None:
        raise FileProblem("DOCTYPE and ENTITY declarations are refused", parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise FileProblem(f"not valid XML: {expat.ErrorString(e.code)}", e.lineno) from None
    return builder.close(), lines
