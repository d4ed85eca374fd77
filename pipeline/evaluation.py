"""A deployed detector measured on a labelled dataset: COCO mAP and the speed it ran at.

The detector is the engine `run` uses (ONNX Runtime, int8, CUDA as configured), so the
figures are those of the model as deployed, not of the training-time network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.engine import Detector
from detector.models import build_model
from detector.options import DetectorOptions
from detector.request import DetectorRequest
from detector.training.evaluation import (
    Metrics,
    Prediction,
    coco_metrics,
    detections_to_prediction,
)
from detector.training.images import UnreadableImage, decode_rgb
from detector.training.samples import DatasetError, Sample
from pipeline.types import Detections, Frame, LabelMap

SHOWN_CLASSES = 10
"""How many of a model's classes a message names before "and N more"."""


@dataclass(frozen=True)
class Evaluation:
    """mAP of a detector on some images, and how fast it ran on them."""

    metrics: Metrics
    images: int
    seconds: float
    """Time spent inside the detector (decoding the images excluded)."""
    detector: str
    """What ran it (`Detector.describe`)."""

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


def label_translation(
    model: LabelMap, data: Sequence[str], background: int | None = None
) -> np.ndarray:
    """int64 [C]: the dataset's label of each model column, matched by class name
    (`LabelMap.columns`); -1 for a column the dataset does not have (its detections are not
    scored) and for the model's `background` column."""
    translate = np.full(len(model.names), -1, dtype=np.int64)
    for label, name in enumerate(data):
        if label > 0:  # the dataset's background
            translate[list(model.columns(name, background))] = label
    return translate


def scored_columns(
    model: LabelMap, background: int | None, class_names: Sequence[str]
) -> np.ndarray:
    """`label_translation` of the model's columns into the dataset's labels; DatasetError
    when the model knows none of the dataset's classes: every AP would be 0, saying nothing
    of the model."""
    translate = label_translation(model, class_names, background)
    if not (translate > 0).any():
        detects = [model.names[i] for i in model.classes(background)]
        shown = ", ".join(detects[:SHOWN_CLASSES])
        more = f" and {len(detects) - SHOWN_CLASSES} more" if len(detects) > SHOWN_CLASSES else ""
        raise DatasetError(
            f"none of its classes ({', '.join(class_names[1:])}) is one the model detects "
            f"({shown}{more}); evaluate a model trained on them"
        )
    return translate


def build_detector(request: DetectorRequest, class_names: Sequence[str]) -> Detector:
    """The detector of `request` for data of `class_names`: its model built and checked
    against the data (`scored_columns`) before the engine is prepared, which may export
    and quantize the network first (half a minute or more)."""
    options = DetectorOptions.resolve(request)  # a bad device fails before the model is built
    model, labels = build_model(request.model, request.weights)
    scored_columns(labels, model.background_class, class_names)
    return Detector(model, labels, options)


def evaluate_detector(
    detector: Detector,
    samples: Sequence[Sample],
    class_names: Sequence[str],
    batch_size: int = 8,
) -> Evaluation:
    """Runs `detector` over `samples` (in batches of `batch_size`) and scores it with COCO mAP.

    A model class is matched to a dataset class by name (`LabelMap.columns`); a dataset
    class the model does not know scores 0 AP; DatasetError when it knows none of them
    (`scored_columns`).
    """
    translate = scored_columns(detector.labels, detector.model.background_class, class_names)
    predictions: list[Prediction] = []
    seconds = 0.0
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        frames = [
            Frame(
                camera_id="evaluate", index=start + i, pts=0.0, wall_time=0.0, image=sample_rgb(s)
            )
            for i, s in enumerate(chunk)
        ]
        began = time.perf_counter()
        found = detector.detect(frames)
        seconds += time.perf_counter() - began
        predictions.extend(_prediction(d, translate) for d in found)
    metrics = coco_metrics(samples, predictions, class_names)
    return Evaluation(metrics, len(samples), seconds, detector.describe())


def _prediction(found: Detections, translate: np.ndarray) -> Prediction:
    """`found` in the dataset's labels, without the classes the dataset does not have."""
    known = translate[found.label] > 0
    return detections_to_prediction(
        Detections(found.xyxy[known], found.score[known], translate[found.label[known]])
    )


def sample_rgb(sample: Sample) -> np.ndarray:
    """The upright pixels of `sample.image`, uint8 [H, W, 3] RGB, as training reads them;
    DatasetError naming the image if it cannot be decoded."""
    try:
        return decode_rgb(sample.image)
    except UnreadableImage as error:
        raise DatasetError([f"{sample.origin}: {error}: {sample.image}"]) from None
