"""Samples, the format dispatch of read_dataset, the validation split, DatasetError."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from detector.training.samples import (
    SHOWN_PROBLEMS,
    DatasetError,
    Sample,
    read_dataset,
    split_validation,
)
from tests.detector.training.datasets import ShapesData, write_coco, write_voc, write_yolo


def fake_samples(n: int) -> list[Sample]:
    return [
        Sample(
            Path(f"/data/{i}.jpg"),
            10,
            10,
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int64),
            f"#{i}",
        )
        for i in range(n)
    ]


def test_a_sample_keeps_its_own_read_only_arrays() -> None:
    boxes = np.array([[1, 2, 3, 4]], np.float32)
    sample = Sample(Path("/a.jpg"), 10, 10, boxes, np.array([1]), "a")
    boxes[0, 0] = 9
    assert sample.boxes.tolist() == [[1, 2, 3, 4]]
    assert sample.boxes.dtype == np.float32 and sample.labels.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        sample.boxes[0, 0] = 5


def test_a_sample_with_more_boxes_than_labels_is_refused() -> None:
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        Sample(Path("/a.jpg"), 10, 10, np.zeros((2, 4), np.float32), np.array([1]), "a")


@pytest.mark.parametrize("writer", [write_coco, write_voc, write_yolo])
def test_each_format_is_recognised_from_its_folder(
    writer: object, shapes: ShapesData, tmp_path: Path
) -> None:
    root = writer(shapes, tmp_path / "data")  # type: ignore[operator]
    data = read_dataset(root)
    assert data.class_names == shapes.class_names
    assert [s.image.name for s in data.train] == [s.image.name for s in shapes.train]
    assert [s.image.name for s in data.val] == [s.image.name for s in shapes.val]


def test_a_coco_json_file_given_alone_is_all_training_data(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    data = read_dataset(root / "train.json")
    assert len(data.train) == len(shapes.train) and data.val == ()


def test_a_yolo_yaml_given_by_its_path_is_read(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "data.yaml").rename(root / "shapes.yml")
    assert len(read_dataset(root / "shapes.yml").val) == len(shapes.val)


def not_a_dataset(kind: str, path: Path) -> Path:
    """A path that read_dataset must refuse: missing, an empty folder or a text file."""
    if kind == "empty folder":
        path.mkdir()
    elif kind == "text file":
        path = path.with_suffix(".txt")
        path.write_text("x")
    elif kind == "loop of links":
        path = path.with_suffix(".json")
        path.symlink_to(path.name)
    elif kind == "pipe":
        path = path.with_suffix(".json")
        os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file or folder"),
        ("empty folder", "not a dataset: expected a COCO"),
        ("text file", "not a dataset"),
        ("loop of links", "a broken symbolic link"),
        ("pipe", r"not a regular file or folder \(a device or a pipe\)"),
    ],
)
def test_what_is_not_a_dataset_is_named(kind: str, message: str, tmp_path: Path) -> None:
    path = not_a_dataset(kind, tmp_path / "nothing")
    with pytest.raises(DatasetError, match=message) as caught:
        read_dataset(path)
    assert str(path) in str(caught.value)


def test_a_folder_of_images_without_annotations_is_not_a_dataset(
    shapes: ShapesData, tmp_path: Path
) -> None:
    (tmp_path / "images").mkdir()
    shutil.copy(shapes.train[0].image, tmp_path / "images")
    with pytest.raises(DatasetError, match="Annotations/ and JPEGImages/"):
        read_dataset(tmp_path)


def test_a_coco_folder_takes_val_json_as_its_validation_set(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_coco(shapes, tmp_path / "coco")
    doc = json.loads((root / "val.json").read_text())
    doc["images"] = doc["images"][:1]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] == doc["images"][0]["id"]]
    (root / "val.json").write_text(json.dumps(doc))
    assert [s.image.name for s in read_dataset(root).val] == [shapes.val[0].image.name]


def test_the_split_is_the_same_for_the_same_seed_and_disjoint() -> None:
    samples = fake_samples(40)
    train, val = split_validation(samples, 0.25, seed=7)
    assert (train, val) == split_validation(samples, 0.25, seed=7)
    assert len(val) == 10 and len(train) == 30
    assert {s.origin for s in train} | {s.origin for s in val} == {s.origin for s in samples}
    assert not {s.origin for s in train} & {s.origin for s in val}
    assert split_validation(samples, 0.25, seed=8)[1] != val


def test_the_split_keeps_the_input_order_in_both_parts() -> None:
    samples = fake_samples(20)
    position = {s.origin: i for i, s in enumerate(samples)}
    for part in split_validation(samples, 0.3, seed=1):
        indices = [position[s.origin] for s in part]
        assert indices == sorted(indices)


def test_a_split_of_zero_keeps_everything_for_training() -> None:
    samples = fake_samples(5)
    assert split_validation(samples, 0.0, seed=0) == (tuple(samples), ())


def test_a_small_fraction_still_holds_out_one_image() -> None:
    assert len(split_validation(fake_samples(5), 0.01, seed=0)[1]) == 1


def test_a_split_that_would_leave_nothing_to_train_on_is_refused() -> None:
    with pytest.raises(DatasetError, match="cannot hold out 50% of 1 image"):
        split_validation(fake_samples(1), 0.5, seed=0)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        split_validation(fake_samples(4), fraction, seed=0)


def test_a_dataset_error_lists_the_first_problems_and_counts_the_rest() -> None:
    problems = [f"labels/{i}.txt:1: bad" for i in range(SHOWN_PROBLEMS + 5)]
    error = DatasetError(problems, "/data/set")
    lines = str(error).splitlines()
    assert lines[0] == f"dataset /data/set: {SHOWN_PROBLEMS + 5} problems"
    assert lines[1:-1] == [f"  {p}" for p in problems[:SHOWN_PROBLEMS]]
    assert lines[-1] == "  and 5 more"
    assert error.problems == tuple(problems)


def test_a_dataset_error_with_one_problem_is_one_line() -> None:
    assert str(DatasetError(["a.json: annotation id 3: bad"], "d")) == (
        "dataset d: a.json: annotation id 3: bad"
    )
    assert DatasetError("one problem").problems == ("one problem",)


@pytest.mark.parametrize("single", [True, False], ids=["one problem", "a list"])
def test_a_newline_or_escape_in_a_file_name_stays_on_its_problem_line(single: bool) -> None:
    problems = ["train.json: image id 1: missing image: images/a\nb\x1b[31m.jpg"]
    if not single:
        problems.append("train.json: image id 2: missing image: images/c.jpg")
    message = str(DatasetError(problems, "data\rset"))
    assert message.count("\n") == len(problems) - (1 if single else 0)
    assert "images/a\\nb\\x1b[31m.jpg" in message and "data\\rset" in message
