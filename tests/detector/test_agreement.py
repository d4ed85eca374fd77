"""`detector.agreement` counts what a candidate detector finds of a reference's detections."""

from __future__ import annotations

import numpy as np
import pytest

from detector.agreement import compare
from pipeline.types import Detections


def dets(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Detections:
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(labels, np.int64),
    )


BOX, FAR = [10.0, 10.0, 50.0, 90.0], [200.0, 10.0, 240.0, 90.0]


def test_identical_detections_agree_fully() -> None:
    frame = dets([BOX, FAR], [0.9, 0.55], [1, 1])
    result = compare([frame, frame], [frame, frame])
    assert (result.reference, result.candidate, result.matched) == (4, 4, 4)
    assert result.recall == result.precision == result.confident_recall == 1.0
    assert result.ious == pytest.approx([1.0] * 4) and result.score_shifts == [0.0] * 4


def test_a_box_counts_only_against_the_same_label_and_enough_overlap() -> None:
    ref = dets([BOX, FAR], [0.9, 0.9], [1, 1])
    shifted = [BOX[0] + 30, BOX[1], BOX[2] + 30, BOX[3]]  # IoU 10/70 with BOX
    cand = dets([shifted, FAR], [0.9, 0.8], [1, 2])  # FAR, but as another class
    result = compare([ref], [cand])
    assert result.matched == 0 and result.recall == 0.0 and result.precision == 0.0


def test_each_detection_matches_at_most_once_best_overlap_first() -> None:
    ref = dets([BOX], [0.7], [1])
    near = [BOX[0] + 2, BOX[1], BOX[2] + 2, BOX[3]]
    cand = dets([near, BOX], [0.6, 0.65], [1, 1])  # a duplicate: one of them is extra
    result = compare([ref], [cand])
    assert (result.matched, result.recall, result.precision) == (1, 1.0, 0.5)
    assert result.ious == [pytest.approx(1.0)]  # the exact box, not the first listed
    assert result.score_shifts == [pytest.approx(-0.05)]


def test_confident_recall_counts_only_confident_reference_boxes() -> None:
    ref = dets([BOX, FAR], [0.9, 0.52], [1, 1])
    cand = dets([BOX], [0.85], [1])  # the weak one is missed
    result = compare([ref], [cand], confident_score=0.6)
    assert result.recall == 0.5 and result.confident_recall == 1.0
    assert compare([ref], [Detections.empty()]).confident_recall == 0.0


def test_frame_counts_must_match() -> None:
    with pytest.raises(ValueError, match="2 reference frames but 1"):
        compare([Detections.empty()] * 2, [Detections.empty()])
