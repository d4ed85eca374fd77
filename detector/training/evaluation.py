"""COCO box mAP of a detector's predictions, computed in memory by faster-coco-eval or
pycocotools (the optional extra `train`)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from pipeline.types import Detections

Backend = Literal["faster_coco_eval", "pycocotools"]
BACKENDS: tuple[Backend, ...] = ("faster_coco_eval", "pycocotools")
Dataset = dict[str, list[dict[str, Any]]]
"""A COCO dataset in memory: images, categories and annotations."""
INSTALL_HINT = 'pip install -e ".[train]"'
MAX_DETECTIONS = 100
"""Detections kept per image when measuring mAP: COCO's largest `maxDets`."""
SCORE_FLOOR = 0.01
"""The lowest score kept when measuring mAP: COCO's practice (a high threshold cuts the
precision-recall curve short and understates AP)."""


class EvaluationUnavailableError(RuntimeError):
    """The COCO evaluation library of the chosen backend is not installed (or broken); the
    message says how to install it."""


class GroundTruth(Protocol):
    """What evaluation reads of an annotated image (a `detector.training.samples.Sample`)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def boxes(self) -> npt.NDArray[np.float32]:
        """float32 [N, 4] xyxy in pixels of the image."""
        ...

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """int64 [N], 1..K."""
        ...


@dataclass(frozen=True)
class Prediction:
    """A detector's boxes for one image.

    Attributes:
        boxes: float32 [M, 4] xyxy in pixels of the image; scores: float32 [M];
        labels: int64 [M], 1..K (0, the background, is never a prediction).
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        boxes, scores, labels = (np.asarray(a) for a in (self.boxes, self.scores, self.labels))
        rows = (len(boxes),)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not scores.shape == labels.shape == rows:
            raise ValueError(
                f"a prediction needs boxes [M, 4], scores [M] and labels [M], got "
                f"{list(boxes.shape)}, {list(scores.shape)} and {list(labels.shape)}"
            )


@dataclass(frozen=True)
class Metrics:
    """COCO box metrics (area "all", at most `MAX_DETECTIONS` detections per image).

    Attributes:
        map: AP averaged over the IoU thresholds 0.50:0.05:0.95 and the classes.
        map50: AP at IoU 0.5, averaged over the classes.
        per_class: AP@[.5:.95] by class name, for the classes with ground truth; a class
            without any is left out (COCO has no AP for it, and its false positives count
            nowhere), so every value is a number.
    """

    map: float
    map50: float
    per_class: dict[str, float]


def detections_to_prediction(detections: Detections) -> Prediction:
    """The engine's output for one image (`detector.engine.Detector.detect`: boxes in that
    image's pixels) as a `Prediction`."""
    return Prediction(boxes=detections.xyxy, scores=detections.score, labels=detections.label)


def coco_metrics(
    ground_truth: Sequence[GroundTruth],
    predictions: Sequence[Prediction],
    class_names: Sequence[str],
    backend: Backend = "faster_coco_eval",
) -> Metrics:
    """COCO mAP of `predictions` (one per image, in the order of `ground_truth`).

    The COCO datasets are built in memory: image ids are positions in `ground_truth`,
    category ids the labels 1..K, named `class_names[1:]` (`class_names[0]` is the
    background), areas the box areas, no crowd boxes. Raises ValueError when the inputs do
    not fit together or hold no ground-truth box, `EvaluationUnavailableError` when the
    backend's library is missing.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truth)} images")
    if len(class_names) < 2:
        raise ValueError(f"class names must be background and 1 or more classes: {class_names}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must differ from each other: {list(class_names)}")
    coco, coco_eval = _backend(backend)
    gt_dataset, dt_dataset = _coco_datasets(ground_truth, predictions, class_names)
    # Both libraries print progress and a summary table; only stdout is silenced, so their
    # errors (exceptions, warnings) still reach the user.
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = coco_eval(_index(coco, gt_dataset), _index(coco, dt_dataset), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return _metrics(evaluator, class_names)


def _backend(backend: str) -> tuple[Any, Any]:
    """(COCO, COCOeval) classes of `backend`, imported now: the libraries are optional."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown COCO evaluation backend {backend!r}; use one of {BACKENDS}")
    try:
        if backend == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            return COCO, COCOeval_faster
        from pycocotools.coco import COCO as PyCOCO
        from pycocotools.cocoeval import COCOeval

        return PyCOCO, COCOeval
    except ImportError as error:
        package = backend.replace("_", "-")
        raise EvaluationUnavailableError(
            f"COCO evaluation with {package} needs it installed ({error}): {INSTALL_HINT}"
        ) from error


def _index(coco: Any, dataset: Dataset) -> Any:
    """A COCO object of either library over an in-memory dataset."""
    indexed = coco()
    indexed.dataset = dataset
    indexed.createIndex()
    return indexed


def _xywh(boxes: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """xyxy [N, 4] -> COCO's xywh [N, 4], float64."""
    xywh = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    xywh[:, 2:] -= xywh[:, :2]
    return xywh


def _coco_datasets(
    ground_truth: Sequence[GroundTruth],
    predictions: Sequence[Prediction],
    class_names: Sequence[str],
) -> tuple[Dataset, Dataset]:
    """The COCO ground truth and detections (as `loadRes` would make them, areas included)."""
    num_classes = len(class_names) - 1
    images = [
        {"id": i, "width": int(t.width), "height": int(t.height)}
        for i, t in enumerate(ground_truth)
    ]
    categories = [{"id": k, "name": class_names[k]} for k in range(1, num_classes + 1)]
    truth: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for image_id, (sample, prediction) in enumerate(zip(ground_truth, predictions, strict=True)):
        _check_labels(sample.labels, num_classes, f"ground truth of image {image_id}")
        _check_labels(prediction.labels, num_classes, f"prediction of image {image_id}")
        truth += _annotations(image_id, sample.boxes, sample.labels, len(truth))
        found = _annotations(image_id, prediction.boxes, prediction.labels, len(detections))
        for detection, score in zip(found, np.asarray(prediction.scores).tolist(), strict=True):
            detection["score"] = score
        detections += found
    if not truth:
        raise ValueError("no ground-truth box to evaluate against")
    return (
        {"images": images, "categories": categories, "annotations": truth},
        {"images": images, "categories": categories, "annotations": detections},
    )


def _check_labels(labels: npt.NDArray[np.integer], num_classes: int, what: str) -> None:
    """Raises ValueError unless every label [N] is a class, 1..`num_classes`."""
    found = set(np.asarray(labels).tolist())
    if found and (min(found) < 1 or max(found) > num_classes):
        raise ValueError(f"{what} has labels {sorted(found)}; they must be 1..{num_classes}")


def _annotations(
    image_id: int,
    boxes: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    before: int,
) -> list[dict[str, Any]]:
    """COCO annotations of one image's boxes xyxy [N, 4] and labels [N], numbered on from
    `before` + 1 (the libraries take an annotation id of 0 for "unmatched")."""
    rows = zip(_xywh(boxes).tolist(), np.asarray(labels).tolist(), strict=True)
    return [
        {
            "id": before + i + 1,
            "image_id": image_id,
            "category_id": int(label),
            "bbox": box,
            "area": box[2] * box[3],
            "iscrowd": 0,
        }
        for i, (box, label) in enumerate(rows)
    ]


def _metrics(evaluator: Any, class_names: Sequence[str]) -> Metrics:
    """`Metrics` out of an accumulated and summarised COCOeval of either library."""
    params = evaluator.params
    # [iou threshold, recall, category, area range, max detections]; -1 where a category
    # has no ground truth.
    precision = evaluator.eval["precision"][:, :, :, params.areaRngLbl.index("all"), -1]
    per_class = {}
    for k, category in enumerate(params.catIds):
        values = precision[:, :, k]
        if (values > -1).any():
            per_class[class_names[category]] = float(values[values > -1].mean())
    return Metrics(
        map=float(evaluator.stats[0]), map50=float(evaluator.stats[1]), per_class=per_class
    )
