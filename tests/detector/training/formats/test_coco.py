"""COCO JSON: boxes read back as written, category ids, crowds, and COCO's own mistakes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.training.formats import coco
from detector.training.formats.common import MAX_JSON_BYTES
from detector.training.samples import DatasetError, read_dataset
from tests.detector.training.datasets import ShapesData, write_coco


def edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def problems_with(shapes: ShapesData, tmp_path: Path, change: Any) -> tuple[str, ...]:
    """What reading a COCO dataset of `shapes` says once `change` edited its train.json."""
    root = write_coco(shapes, tmp_path / "coco")
    edit(root / "train.json", change)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    return caught.value.problems


def test_coco_reads_back_the_boxes_written(shapes: ShapesData, tmp_path: Path) -> None:
    data = read_dataset(write_coco(shapes, tmp_path / "coco"))
    assert data.class_names == shapes.class_names
    for part, written in ((data.train, shapes.train), (data.val, shapes.val)):
        assert len(part) == len(written)
        for read, sample in zip(part, written, strict=True):
            assert read.image == tmp_path / "coco" / "images" / sample.image.name
            assert (read.width, read.height) == (sample.width, sample.height)
            np.testing.assert_allclose(read.boxes, sample.boxes, atol=1e-4)
            np.testing.assert_array_equal(read.labels, sample.labels)
    assert data.train[2].origin == "train.json: image id 3"


def test_category_ids_become_labels_in_the_order_of_their_ids(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    new_ids = {1: 30, 2: 10, 3: 20}  # disc, square, triangle -> square, triangle, disc

    def renumber(doc: dict[str, Any]) -> None:
        for category in doc["categories"]:
            category["id"] = new_ids[category["id"]]
        for annotation in doc["annotations"]:
            annotation["category_id"] = new_ids[annotation["category_id"]]

    edit(root / "train.json", renumber)
    edit(root / "val.json", renumber)
    data = read_dataset(root)
    assert data.class_names == ("background", "square", "triangle", "disc")
    for read, sample in zip(data.train, shapes.train, strict=True):
        names = [shapes.class_names[label] for label in sample.labels]
        assert [data.class_names[label] for label in read.labels] == names


def test_crowd_annotations_are_left_out(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    edit(root / "train.json", lambda d: d["annotations"][0].update(iscrowd=1))
    first = read_dataset(root).train[0]
    np.testing.assert_allclose(first.boxes, shapes.train[0].boxes[1:], atol=1e-4)


def test_an_image_without_annotations_is_kept_with_no_boxes(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    edit(
        root / "train.json",
        lambda d: d.update(annotations=[a for a in d["annotations"] if a["image_id"] != 1]),
    )
    first = read_dataset(root).train[0]
    assert first.boxes.shape == (0, 4) and first.labels.shape == (0,)


def test_val_json_with_other_categories_is_refused(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    edit(root / "val.json", lambda d: d["categories"][0].update(name="circle"))
    message = "val.json: its categories differ from those of train.json"
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_dataset(root)


def test_an_annotation_of_an_image_not_in_images_is_named(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    edit(root / "train.json", lambda d: d["annotations"][1].update(image_id=999))
    message = "train.json: annotation id 2: image_id 999 is not in images"
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_dataset(root)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"width": 0}, "width and height must be positive integers"),
        ({"file_name": ""}, "file_name must be a non-empty string"),
    ],
    ids=["width-0", "no-file-name"],
)
def test_an_image_entry_refused_is_named_once_not_again_by_each_of_its_annotations(
    shapes: ShapesData, tmp_path: Path, entry: dict[str, Any], why: str
) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["images"][0].update(entry)
        assert any(a["image_id"] == doc["images"][0]["id"] for a in doc["annotations"])

    problems = problems_with(shapes, tmp_path, change)
    assert problems == (f"train.json: image id 1: {why}",)


def test_an_image_id_listed_twice_is_named(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    edit(root / "train.json", lambda d: d["images"][1].update(id=1))
    with pytest.raises(DatasetError, match=re.escape("train.json: image id 1: appears twice")):
        read_dataset(root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a JSON object at the top, got a list"),
        ('{"images": []}', "annotations, categories must be a list"),
        (
            '{"images": [], "annotations": [], "categories": [{"id": "1", "name": "a"}]}',
            "categories[0]: expected an integer id",
        ),
        ("1" * 5000, "not usable JSON"),
        ("[" * 100_000 + "]" * 100_000, "not usable JSON"),
    ],
    ids=["list", "missing keys", "string id", "huge integer", "nested too deeply"],
)
def test_json_that_is_not_coco_detection_is_named(
    content: str, message: str, tmp_path: Path
) -> None:
    (tmp_path / "train.json").write_text(content)
    with pytest.raises(DatasetError, match=re.escape(f"train.json: {message}")):
        read_dataset(tmp_path / "train.json")


def test_a_json_larger_than_the_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    with path.open("wb") as f:
        f.truncate(MAX_JSON_BYTES + 1)  # sparse: no disk used
    with pytest.raises(DatasetError, match=re.escape("train.json: file too large")):
        read_dataset(path)


def _outline(box: list[float]) -> list[float]:
    """The diamond touching the middle of each side of the xywh `box`, as COCO's flat
    x1, y1, x2, y2, ... list."""
    x, y, w, h = box
    return [x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2]


@pytest.mark.parametrize("bbox", [None, [], [0, 0, 0, 0]], ids=["missing", "empty", "zero"])
def test_an_annotation_without_a_bbox_has_the_bounding_box_of_its_polygons(
    bbox: list[float] | None, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")

    def outline_only(doc: dict[str, Any]) -> None:
        first = doc["annotations"][0]
        x, y, w, h = first["bbox"]
        # two polygons, the object's halves: its box spans both
        left, right = _outline([x, y, w / 2, h]), _outline([x + w / 2, y, w / 2, h])
        first["segmentation"] = [left, right]
        if bbox is None:
            del first["bbox"]
        else:
            first["bbox"] = bbox

    edit(root / "train.json", outline_only)
    first = read_dataset(root).train[0]
    np.testing.assert_allclose(first.boxes, shapes.train[0].boxes, atol=1e-4)
    np.testing.assert_array_equal(first.labels, shapes.train[0].labels)


def test_a_bbox_with_area_wins_over_the_segmentation(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    edit(
        root / "train.json",
        lambda d: d["annotations"][0].update(segmentation=[_outline([0, 0, 5, 5])]),
    )
    first = read_dataset(root).train[0]
    np.testing.assert_allclose(first.boxes, shapes.train[0].boxes, atol=1e-4)


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ([[10, 10, 20, 10, 20]], "segmentation[0] has an odd number of coordinates (5)"),
        ([[10, 10, 20, 20]], "segmentation[0] has 2 point(s); a polygon has 3 or more"),
        ([[10, 10, 20, 10, 20, 20], "x"], "segmentation[1] must be a list of numbers"),
        ({"size": [240, 320], "counts": "abc"}, "segmentation is a run-length mask, not polygons"),
        (
            [[10, 10, 20, 10, 20, 10]],
            "the bounding box [10, 10, 10, 0] of its segmentation has zero or negative area",
        ),
        ([[10, 10, 900, 10, 20, 20]], "of its segmentation is outside the"),
        ([], "bbox must be a list of 4 numbers [x, y, width, height], got None"),
    ],
    ids=["odd", "two points", "not numbers", "rle", "flat", "outside", "no outline"],
)
def test_a_bad_outline_standing_in_for_a_missing_bbox_is_named(
    segmentation: object, message: str, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")

    def outline_only(doc: dict[str, Any]) -> None:
        del doc["annotations"][0]["bbox"]
        doc["annotations"][0]["segmentation"] = segmentation

    edit(root / "train.json", outline_only)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems == (caught.value.problems[0],)
    assert caught.value.problems[0].startswith("train.json: annotation id 1: ")
    assert message in caught.value.problems[0]


def test_a_folder_holding_annotations_json_is_read_as_the_coco_export_it_is(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    (root / "train.json").rename(root / "annotations.json")  # as `dataset export` names it
    (root / "val.json").unlink()
    data = read_dataset(root)
    assert data.class_names == shapes.class_names and data.val == ()
    assert [s.image.name for s in data.train] == [s.image.name for s in shapes.train]
    assert data.train[0].origin == "annotations.json: image id 1"


def test_one_image_file_under_two_coco_ids_is_refused_naming_both(
    shapes: ShapesData, tmp_path: Path
) -> None:
    problems = problems_with(
        shapes, tmp_path, lambda d: d["images"].append({**d["images"][0], "id": 99})
    )
    assert problems == (
        "train.json: image id 99: the same image file as train.json: image id 1 (images/0000.jpg)",
    )


def test_an_image_name_too_long_for_the_system_is_named_in_one_short_line(
    shapes: ShapesData, tmp_path: Path
) -> None:
    problems = problems_with(
        shapes, tmp_path, lambda d: d["images"][0].update(file_name="x" * 100_000 + ".jpg")
    )
    (problem,) = problems
    assert problem.startswith("train.json: image id 1: cannot be read (File name too long): x")
    assert "(100004 characters)" in problem
    assert len(problem) < 300


def test_a_device_listed_as_an_image_is_named_not_a_regular_file(
    shapes: ShapesData, tmp_path: Path
) -> None:
    problems = problems_with(
        shapes, tmp_path, lambda d: d["images"][0].update(file_name="/dev/zero")
    )
    (problem,) = problems
    assert problem == (
        "train.json: image id 1: not a regular file (a device or a pipe), not an image: /dev/zero"
    )


def test_an_iscrowd_other_than_0_or_1_is_named_not_read_as_one_object(
    shapes: ShapesData, tmp_path: Path
) -> None:
    problems = problems_with(shapes, tmp_path, lambda d: d["annotations"][0].update(iscrowd="1"))
    assert problems == ("train.json: annotation id 1: iscrowd must be 0 or 1, got '1'",)


def test_a_bbox_integer_beyond_floats_range_is_named_not_a_traceback(
    shapes: ShapesData, tmp_path: Path
) -> None:
    huge = 10**400  # JSON integers have no bound; a float has (about 1.8e308)
    problems = problems_with(
        shapes, tmp_path, lambda d: d["annotations"][0].update(bbox=[1, 1, huge, 5])
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "train.json: annotation id 1: bbox must be a list of 4 numbers [x, y, width, height], "
        "got [1, 1, 1000"
    )
    assert len(problems[0]) < 200


def test_a_polygon_integer_beyond_floats_range_is_named_not_a_traceback(
    shapes: ShapesData, tmp_path: Path
) -> None:
    outline = [1, 1, 10**400, 1, 3, 3]
    problems = problems_with(
        shapes, tmp_path, lambda d: d["annotations"][0].update(bbox=None, segmentation=[outline])
    )
    assert problems == (
        "train.json: annotation id 1: segmentation[0] must be a list of numbers x1, y1, x2, y2, ...",
    )


def test_a_json_of_too_many_arrays_and_objects_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coco, "MAX_JSON_CONTAINERS", 100)
    path = tmp_path / "train.json"
    path.write_text(
        '{"images": [], "annotations": [], "categories": [], "x": [' + "[]," * 97 + "[]]}"
    )
    with pytest.raises(DatasetError) as caught:
        read_dataset(path)
    assert caught.value.problems == (
        "train.json: too many JSON arrays and objects (103, the limit is 100), "
        "each taking memory many times its few characters",
    )
