"""COCO detection JSON: `images`, `annotations` (bbox [x, y, w, h] in pixels), `categories`.

Image `file_name`s are relative to the JSON file's folder. Category ids, in ascending
order, become labels 1..K. An annotation without a bbox (or with one of zero width or
height) has the bounding box of its `segmentation` polygons. Crowd annotations
(`iscrowd: 1`) mark regions of many objects, not one, and are left out, as COCO's own
evaluation does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detector.training.formats.common import (
    MAX_JSON_BYTES,
    MAX_JSON_CONTAINERS,
    FileProblem,
    box_problem,
    brief,
    checked_size,
    class_name_problems,
    clip_box,
    is_int,
    is_number,
    polygon_box,
    polygon_problem,
    read_text,
    repeated_images,
    resolved,
    shown,
)
from detector.training.samples import BACKGROUND, DatasetError, DetectionData, Sample

Categories = dict[int, str]


def read_coco(train_json: Path, val_json: Path | None = None) -> DetectionData:
    """The COCO dataset of `train_json`, with validation images from `val_json` if given.

    Raises DatasetError listing every problem found.
    """
    folder = train_json.parent  # as given: messages name the dataset by it
    root = folder.resolve()
    problems: list[str] = []
    train_doc = _load(train_json, root, problems)
    val_doc = _load(val_json, root, problems) if val_json else None
    if train_doc is None or (val_json and val_doc is None):
        raise DatasetError(problems, folder)

    name = _name(train_json, root)
    val_name = _name(val_json, root) if val_json else ""
    categories = _categories(train_doc, name, problems)
    if val_doc is not None:
        val_categories = _categories(val_doc, val_name, problems)
        if val_categories != categories:
            problems.append(f"{val_name}: its categories differ from those of {name}")
    if problems:
        raise DatasetError(problems, folder)

    labels = {category: label for label, category in enumerate(sorted(categories), start=1)}
    train = _samples(train_doc, name, labels, root, problems)
    val = () if val_doc is None else _samples(val_doc, val_name, labels, root, problems)
    problems += repeated_images(((s.image, s.origin) for s in train + val), root)
    if not train and not problems:
        problems.append(f"{name}: no images")
    if problems:
        raise DatasetError(problems, folder)
    class_names = (BACKGROUND, *(categories[c] for c in sorted(categories)))
    return DetectionData(class_names=class_names, train=train, val=val, folder=root)


def _name(path: Path, root: Path) -> str:
    """How messages name the JSON file `path`: relative to the dataset's `root` (resolved),
    however `path` was given (`coco/x.json` is x.json of the dataset `coco`)."""
    return shown(path.parent.resolve() / path.name, root)


def _load(path: Path, root: Path, problems: list[str]) -> dict[str, Any] | None:
    """The JSON object in `path` with lists `images`, `annotations`, `categories`, or None
    after adding to `problems` why not."""
    name = _name(path, root)
    try:
        text = read_text(path, MAX_JSON_BYTES)
        containers = text.count("[") + text.count("{")
        if containers > MAX_JSON_CONTAINERS:
            problems.append(
                f"{name}: too many JSON arrays and objects ({containers:,}, the limit is "
                f"{MAX_JSON_CONTAINERS:,}), each taking memory many times its few characters"
            )
            return None
        doc = json.loads(text)
    except FileProblem as e:
        problems.append(e.at(name))
        return None
    except json.JSONDecodeError as e:
        problems.append(f"{name}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})")
        return None
    except (ValueError, RecursionError) as e:  # e.g. an integer of over 4300 digits
        problems.append(f"{name}: not usable JSON: {type(e).__name__}: {str(e)[:80]}")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{name}: expected a JSON object at the top, got {brief(doc)}")
        return None
    missing = [
        key for key in ("images", "annotations", "categories") if not isinstance(doc.get(key), list)
    ]
    if missing:
        problems.append(f"{name}: {', '.join(missing)} must be a list (COCO detection format)")
        return None
    return doc


def _categories(doc: Mapping[str, Any], name: str, problems: list[str]) -> Categories:
    """Category id -> name."""
    categories: Categories = {}
    for i, category in enumerate(doc["categories"]):
        if not (
            isinstance(category, dict)
            and is_int(category.get("id"))
            and isinstance(category.get("name"), str)
        ):
            problems.append(f"{name}: categories[{i}]: expected an integer id and a string name")
        elif category["id"] in categories:
            problems.append(f"{name}: category id {category['id']} appears twice")
        else:
            categories[category["id"]] = category["name"]
    problems += [f"{name}: categories: {p}" for p in class_name_problems(list(categories.values()))]
    return categories


def _samples(
    doc: Mapping[str, Any], name: str, labels: Mapping[int, int], root: Path, problems: list[str]
) -> tuple[Sample, ...]:
    """The images of `doc` with their boxes, in the order of `images`."""
    files: dict[int, tuple[Path, tuple[int, int] | None]] = {}  # image id -> file, size
    refused: set[int] = set()  # image ids whose entry's problem is reported
    for i, image in enumerate(doc["images"]):
        where = f"{name}: images[{i}]"
        if not isinstance(image, dict) or not is_int(image.get("id")):
            problems.append(f"{where}: expected an object with an integer id")
            continue
        image_id = image["id"]
        where = f"{name}: image id {image_id}"
        if image_id in files:
            problems.append(f"{where}: appears twice in images")
            continue
        file_name, width, height = image.get("file_name"), image.get("width"), image.get("height")
        if not isinstance(file_name, str) or not file_name:
            problems.append(f"{where}: file_name must be a non-empty string")
            refused.add(image_id)
            continue
        declared = None
        if width is not None or height is not None:
            if not (is_int(width) and is_int(height) and width > 0 and height > 0):
                problems.append(f"{where}: width and height must be positive integers")
                refused.add(image_id)
                continue
            declared = (width, height)
        path = resolved(root / file_name)
        files[image_id] = (path, checked_size(path, declared, where, root, problems))

    boxes: dict[int, list[tuple[float, ...]]] = {image_id: [] for image_id in files}
    classes: dict[int, list[int]] = {image_id: [] for image_id in files}
    for i, annotation in enumerate(doc["annotations"]):
        if not isinstance(annotation, dict):
            problems.append(f"{name}: annotations[{i}]: expected an object")
            continue
        ann_id = annotation.get("id")
        where = f"{name}: annotation id {ann_id}" if is_int(ann_id) else f"{name}: annotations[{i}]"
        crowd = annotation.get("iscrowd")
        crowd = 0 if crowd is None else crowd  # missing or null: one object
        if crowd not in (0, 1):  # True and False are 1 and 0, as COCO's own tools read them
            problems.append(f"{where}: iscrowd must be 0 or 1, got {brief(crowd)}")
            continue
        if crowd == 1:
            continue
        image_id, category = annotation.get("image_id"), annotation.get("category_id")
        if is_int(image_id) and image_id in refused:  # its image's problem is reported once
            continue
        if not is_int(image_id) or image_id not in files:
            problems.append(f"{where}: image_id {brief(image_id)} is not in images")
            continue
        if not is_int(category) or category not in labels:
            problems.append(
                f"{where}: unknown class: category_id {brief(category)} is not in categories"
            )
            continue
        found = _box(annotation, where, problems)
        if found is None:
            continue
        size = files[image_id][1]
        if size is None:  # the image's problem is reported already
            continue
        xyxy, what = found
        problem = box_problem(xyxy, *size)
        if problem:
            problems.append(f"{where}: {what} {problem}")
            continue
        boxes[image_id].append(clip_box(xyxy, *size))
        classes[image_id].append(labels[category])

    samples = []
    for image_id, (path, size) in files.items():
        if size is not None:
            samples.append(
                Sample(
                    image=path,
                    width=size[0],
                    height=size[1],
                    boxes=np.array(boxes[image_id], dtype=np.float32).reshape(-1, 4),
                    labels=np.array(classes[image_id], dtype=np.int64),
                    origin=f"{name}: image id {image_id}",
                )
            )
    return tuple(samples)


Box = tuple[float, float, float, float]


def _box(annotation: Mapping[str, Any], where: str, problems: list[str]) -> tuple[Box, str] | None:
    """The xyxy box of `annotation` and how messages name it, or None after adding to
    `problems` why there is none. The box is its `bbox`; when that is missing or has no
    width or height, the bounding box of its `segmentation` polygons, as COCO's tools
    derive a bbox from an outline."""
    bbox = annotation.get("bbox")
    segmentation = annotation.get("segmentation")
    numbers: list[float] | None = (
        bbox
        if isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)
        else None
    )
    if numbers is not None and ((numbers[2] != 0 and numbers[3] != 0) or not segmentation):
        x, y, w, h = numbers
        return (x, y, x + w, y + h), f"bbox {numbers}"
    if numbers is None and (bbox not in (None, []) or not segmentation):
        got = (
            f"[{', '.join(brief(v) for v in bbox[:5])}]" if isinstance(bbox, list) else brief(bbox)
        )
        problems.append(
            f"{where}: bbox must be a list of 4 numbers [x, y, width, height], got {got}"
        )
        return None
    if not isinstance(segmentation, list):
        what = "a run-length mask" if isinstance(segmentation, dict) else brief(segmentation)
        problems.append(
            f"{where}: the bbox is missing or has no area, and segmentation is "
            f"{what}, not polygons: give the bbox [x, y, width, height]"
        )
        return None
    corners: list[float] = []
    for i, polygon in enumerate(segmentation):
        if not (isinstance(polygon, list) and all(is_number(v) for v in polygon)):
            problems.append(
                f"{where}: segmentation[{i}] must be a list of numbers x1, y1, x2, y2, ..."
            )
            return None
        problem = polygon_problem(polygon)
        if problem:
            problems.append(f"{where}: segmentation[{i}] {problem}")
            return None
        corners += polygon_box(polygon)
    x1, y1, x2, y2 = polygon_box(corners)
    shown_box = [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)]
    return (x1, y1, x2, y2), f"the bounding box {shown_box} of its segmentation"
