"""coco_metrics: COCO box mAP in memory, by faster-coco-eval or pycocotools."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from detector.training.evaluation import (
    BACKENDS,
    EvaluationUnavailableError,
    Prediction,
    coco_metrics,
    detections_to_prediction,
)
from pipeline.types import Detections

pytest.importorskip("faster_coco_eval", reason="installed by the `train` extra")
pytest.importorskip("pycocotools", reason="installed by the `train` extra")

NAMES = ("background", "cat", "dog", "bird")
IOU_THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]  # COCO's 0.50:0.05:0.95


@dataclass(frozen=True)
class Annotated:
    """The part of a training `Sample` evaluation reads."""

    width: int
    height: int
    boxes: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]


def annotated(boxes: Sequence[Sequence[float]], labels: list[int]) -> Annotated:
    return Annotated(
        640,
        480,
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(labels, dtype=np.int64),
    )


def prediction(
    boxes: Sequence[Sequence[float]], scores: Sequence[float], labels: Sequence[int]
) -> Prediction:
    return Prediction(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(scores, dtype=np.float32),
        np.array(labels, dtype=np.int64),
    )


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


def interpolated_ap(hits: list[bool], num_truth: int) -> float:
    """COCO's AP of detections ranked by score (True: matches a new ground truth): the mean
    over recall points 0, 0.01, ..., 1 of the best precision at that recall or above."""
    tp = np.cumsum(hits)
    recall = tp / num_truth
    precision = tp / np.arange(1, len(hits) + 1)
    points = [
        max((p for p, r in zip(precision, recall, strict=True) if r >= point), default=0.0)
        for point in np.linspace(0.0, 1.0, 101)
    ]
    return float(np.mean(points))


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_predictions_give_map_one(backend):
    truth = [
        annotated([[10, 10, 100, 80], [200, 50, 300, 200]], [1, 2]),
        annotated([[0, 0, 640, 480]], [3]),
        annotated([], []),
    ]
    perfect = [
        prediction(t.boxes.tolist(), [0.9] * len(t.labels), t.labels.tolist()) for t in truth
    ]
    metrics = coco_metrics(truth, perfect, NAMES, backend=backend)
    assert metrics.map == pytest.approx(1.0)
    assert metrics.map50 == pytest.approx(1.0)
    assert metrics.per_class == pytest.approx({"cat": 1.0, "dog": 1.0, "bird": 1.0})


@pytest.mark.parametrize("backend", BACKENDS)
def test_shifted_box_scores_at_the_iou_thresholds_it_passes(backend):
    box, shifted = [100, 100, 200, 200], [120, 100, 220, 200]
    overlap = iou(box, shifted)  # 2/3: well away from any threshold
    metrics = coco_metrics(
        [annotated([box], [1])], [prediction([shifted], [0.8], [1])], NAMES, backend=backend
    )
    assert metrics.map50 == pytest.approx(1.0)
    expected = np.mean([overlap >= t for t in IOU_THRESHOLDS])
    assert expected == pytest.approx(0.4)  # the case is the one intended
    assert metrics.map == pytest.approx(expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_positive_ranked_above_true_ones_lowers_ap_by_101_point_interpolation(backend):
    boxes = [[0, 0, 50, 50], [100, 0, 150, 50], [200, 0, 250, 50]]
    truth = [annotated(boxes, [1, 1, 1])]
    ranked = prediction(
        [boxes[0], [400, 300, 450, 350], boxes[1], boxes[2]], [0.9, 0.8, 0.7, 0.6], [1] * 4
    )
    metrics = coco_metrics(truth, [ranked], NAMES, backend=backend)
    expected = interpolated_ap([True, False, True, True], num_truth=3)
    assert expected < 1.0
    assert metrics.map50 == pytest.approx(expected)
    assert metrics.map == pytest.approx(expected)  # exact boxes: every threshold alike


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_class_ap_is_keyed_by_name_without_classes_lacking_ground_truth(backend):
    truth = [annotated([[10, 10, 110, 110], [300, 300, 400, 400]], [1, 2])]
    guesses = prediction(
        [[10, 10, 110, 110], [320, 300, 420, 400], [500, 0, 600, 100]],
        [0.9, 0.8, 0.7],
        [1, 2, 3],  # no bird in the ground truth: its false positive counts nowhere
    )
    metrics = coco_metrics(truth, [guesses], NAMES, backend=backend)
    dog = np.mean([iou([300, 300, 400, 400], [320, 300, 420, 400]) >= t for t in IOU_THRESHOLDS])
    assert metrics.per_class == pytest.approx({"cat": 1.0, "dog": dog})
    assert metrics.map == pytest.approx((1.0 + dog) / 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_predictions_give_zero(backend):
    truth = [annotated([[10, 10, 100, 100]], [1]), annotated([[0, 0, 50, 60]], [2])]
    nothing = [prediction([], [], [])] * 2
    metrics = coco_metrics(truth, nothing, NAMES, backend=backend)
    assert (metrics.map, metrics.map50) == (0.0, 0.0)
    assert metrics.per_class == {"cat": 0.0, "dog": 0.0}


def random_boxes(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    xy = rng.uniform(0, 500, (n, 2))
    return np.concatenate((xy, xy + rng.uniform(5, 140, (n, 2))), axis=1)


def test_faster_coco_eval_and_pycocotools_agree_on_noisy_predictions():
    rng = np.random.default_rng(0)
    truth, guesses = [], []
    for _ in range(12):
        n = int(rng.integers(0, 6))
        boxes, labels = random_boxes(rng, n), rng.integers(1, 4, n)
        truth.append(annotated(boxes.tolist(), labels.tolist()))
        near = boxes + rng.normal(0, 8, boxes.shape)  # good, loose and wrong-class guesses
        near_labels = np.where(rng.random(n) < 0.8, labels, rng.integers(1, 4, n))
        extra = int(rng.integers(0, 5))
        guesses.append(
            prediction(
                np.concatenate((near, random_boxes(rng, extra))).tolist(),
                rng.random(n + extra).tolist(),
                np.concatenate((near_labels, rng.integers(1, 4, extra))).tolist(),
            )
        )
    fast = coco_metrics(truth, guesses, NAMES, backend="faster_coco_eval")
    reference = coco_metrics(truth, guesses, NAMES, backend="pycocotools")
    assert 0.05 < reference.map < 0.95  # neither trivial case
    assert fast.map == pytest.approx(reference.map, abs=1e-6)
    assert fast.map50 == pytest.approx(reference.map50, abs=1e-6)
    assert fast.per_class.keys() == reference.per_class.keys()
    assert fast.per_class == pytest.approx(reference.per_class, abs=1e-6)


def test_engine_detections_become_predictions_unchanged():
    detections = Detections(
        xyxy=np.array([[1, 2, 30, 40], [5, 6, 70, 80]], dtype=np.float32),
        score=np.array([0.9, 0.4], dtype=np.float32),
        label=np.array([2, 1], dtype=np.int64),
    )
    converted = detections_to_prediction(detections)
    np.testing.assert_array_equal(converted.boxes, detections.xyxy)
    np.testing.assert_array_equal(converted.scores, detections.score)
    np.testing.assert_array_equal(converted.labels, detections.label)


def test_inputs_that_do_not_fit_are_named():
    truth = [annotated([[10, 10, 100, 100]], [1])]
    with pytest.raises(ValueError, match="2 predictions for 1 images"):
        coco_metrics(truth, [prediction([], [], [])] * 2, NAMES)
    with pytest.raises(
        ValueError, match=r"prediction of image 0 has labels \[0\]; they must be 1..3"
    ):
        coco_metrics(truth, [prediction([[0, 0, 5, 5]], [0.5], [0])], NAMES)
    with pytest.raises(ValueError, match="no ground-truth box"):
        coco_metrics([annotated([], [])], [prediction([], [], [])], NAMES)
    with pytest.raises(ValueError, match="scores"):
        Prediction(np.zeros((2, 4), np.float32), np.zeros(1, np.float32), np.zeros(2, np.int64))


@pytest.mark.parametrize(
    ("backend", "module"),
    [("faster_coco_eval", "faster_coco_eval"), ("pycocotools", "pycocotools.coco")],
)
def test_missing_library_says_how_to_install_it(monkeypatch, backend, module):
    monkeypatch.setitem(sys.modules, module, None)  # import of it fails
    truth = [annotated([[10, 10, 100, 100]], [1])]
    with pytest.raises(EvaluationUnavailableError, match=r'pip install -e "\.\[train\]"'):
        coco_metrics(truth, [prediction([], [], [])], NAMES, backend=backend)
