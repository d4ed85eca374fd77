"""dataset_stats: per-class counts and box-size bins that add up to the data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from detector.training.samples import DetectionData, Sample
from detector.training.stats import SIZE_EDGES, dataset_stats
from tests.detector.training.datasets import ShapesData


def test_counts_per_class_add_up_to_every_box_of_each_split(shapes: ShapesData) -> None:
    data = DetectionData(shapes.class_names, shapes.train, shapes.val)
    train, val = dataset_stats(data)
    for split, samples in ((train, shapes.train), (val, shapes.val)):
        assert split.images == len(samples)
        assert split.boxes == sum(len(s.labels) for s in samples)
        for label, c in enumerate(split.classes, start=1):
            assert c.name == shapes.class_names[label]
            assert c.boxes == sum(int((s.labels == label).sum()) for s in samples)
            assert sum(c.sizes) == c.boxes
            assert c.images == sum(1 for s in samples if (s.labels == label).any())


def test_a_box_falls_in_the_bin_of_its_side_and_an_image_without_boxes_is_counted(
    tmp_path: Path,
) -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 40, 40], [0, 0, 300, 300]], np.float32)
    full = Sample(tmp_path / "a.jpg", 400, 400, boxes, np.array([1, 1, 1]), "a")
    empty = Sample(
        tmp_path / "b.jpg", 400, 400, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "b"
    )
    (train,) = dataset_stats(DetectionData(("background", "thing"), (full, empty), ()))
    assert train.empty_images == 1
    (thing,) = train.classes
    expected = [0] * len(SIZE_EDGES)
    for side in (10, 40, 300):
        expected[max(i for i, edge in enumerate(SIZE_EDGES) if side >= edge)] += 1
    assert list(thing.sizes) == expected


def test_images_outside_the_folder_by_path_or_link_are_counted(tmp_path: Path) -> None:
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "linked").symlink_to(tmp_path / "elsewhere")
    none = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    images = [
        tmp_path / "data" / "images" / "in.jpg",
        tmp_path / "elsewhere" / "out.jpg",  # a COCO file_name "../elsewhere/out.jpg"
        (tmp_path / "data" / "linked" / "out.jpg").resolve(),  # as the readers resolve it
    ]
    samples = tuple(Sample(image, 40, 30, *none, image.name) for image in images)
    data = DetectionData(("background", "thing"), samples, ())
    assert dataset_stats(data)[0].outside == 0  # no folder given, nothing counted
    (train,) = dataset_stats(replace(data, folder=(tmp_path / "data").resolve()))
    assert (train.images, train.outside) == (3, 2)
