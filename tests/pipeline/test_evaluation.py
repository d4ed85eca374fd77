"""`evaluate` scores a model's classes under the dataset's by name, as a config's `labels:`
names them (`LabelMap.columns`)."""

from __future__ import annotations

from pipeline.evaluation import label_translation
from pipeline.types import LabelMap


def test_model_columns_take_the_dataset_class_of_the_same_name_case_aside() -> None:
    model = LabelMap(("background", "Person", "car", "N/A", "dog"))
    data = ("background", "person", "bus", "dog ")
    assert label_translation(model, data, background=0).tolist() == [-1, 1, -1, -1, 3]


def test_the_models_background_column_is_never_a_dataset_class() -> None:
    model = LabelMap(("cat", "background"))  # a model whose background is its last column
    data = ("background", "cat")
    assert label_translation(model, data, background=1).tolist() == [1, -1]
