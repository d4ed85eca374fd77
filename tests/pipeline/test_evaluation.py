"""`evaluate` scores a model's classes under the dataset's by name, as a config's `labels:`
names them (`LabelMap.columns`), and refuses a dataset none of whose classes the model has."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from detector.engine import Detector
from detector.training.samples import DatasetError
from pipeline.evaluation import evaluate_detector, label_translation
from pipeline.types import LabelMap


def test_model_columns_take_the_dataset_class_of_the_same_name_case_aside() -> None:
    model = LabelMap(("background", "Person", "car", "N/A", "dog"))
    data = ("background", "person", "bus", "dog ")
    assert label_translation(model, data, background=0).tolist() == [-1, 1, -1, -1, 3]


def test_the_models_background_column_is_never_a_dataset_class() -> None:
    model = LabelMap(("cat", "background"))  # a model whose background is its last column
    data = ("background", "cat")
    assert label_translation(model, data, background=1).tolist() == [1, -1]


def test_a_dataset_without_one_class_of_the_model_is_refused_not_scored_zero() -> None:
    def detect(frames: object) -> list[object]:
        raise AssertionError("nothing to run: every AP would be 0")

    labels = LabelMap(("background", "disc", "square", "triangle"))
    detector = SimpleNamespace(
        labels=labels, model=SimpleNamespace(background_class=0), detect=detect
    )
    with pytest.raises(DatasetError) as info:
        evaluate_detector(cast(Detector, detector), [], ("background", "cat", "dog"))
    assert str(info.value) == (
        "dataset: none of its classes (cat, dog) is one the model detects (disc, square, "
        "triangle); evaluate a model trained on them"
    )
