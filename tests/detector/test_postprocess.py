"""Batched post-processing on hand-built logits and anchors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from detector.box_coder import BoxCoder
from detector.postprocess import BatchDetections, postprocess, top_k_nan_last

NUM_CLASSES = 4  # column 0 is background


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid_logits(
    batch: int, anchors: int, scores: dict[tuple[int, int, int], float]
) -> torch.Tensor:
    """class_logits [B, A, C] where (image, anchor, class) -> score, everything else ~0."""
    logits = torch.full((batch, anchors, NUM_CLASSES), -20.0)
    for (image, anchor, cls), p in scores.items():
        logits[image, anchor, cls] = logit(p)
    return logits


def run(
    anchors: torch.Tensor,
    logits: torch.Tensor,
    regression: torch.Tensor | None = None,
    **overrides: Any,
) -> BatchDetections:
    """postprocess, with zero regressions unless given, so every box decodes to its anchor."""
    params: dict[str, Any] = {
        "anchors": anchors,
        "box_coder": BoxCoder(),
        "score_fn": "sigmoid",
        "background_class": 0,
        "score_threshold": 0.5,
        "nms_threshold": 0.5,
        "max_detections": 100,
        "pre_nms_top_k": 1000,
    }
    params.update(overrides)
    if regression is None:
        regression = torch.zeros(logits.shape[0], anchors.shape[0], 4)
    return postprocess(regression, logits, **params)


def rows(result: BatchDetections) -> list[tuple[int, int, float]]:
    """(image, label, score) of every detection, in output order."""
    return [
        (int(i), int(c), round(float(s), 4))
        for i, c, s in zip(result.image_index, result.labels, result.scores, strict=True)
    ]


APART = torch.tensor(
    [
        [0.1, 0.1, 0.3, 0.3],
        [0.6, 0.6, 0.9, 0.8],
        [0.12, 0.1, 0.32, 0.3],  # IoU ~0.82 with anchor 0
        [0.0, 0.5, 0.2, 0.9],
    ]
)


def test_confident_boxes_come_out_with_their_anchor_box_label_and_score():
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9, (0, 1, 3): 0.8})
    result = run(APART, logits)
    assert rows(result) == [(0, 1, 0.9), (0, 3, 0.8)]
    torch.testing.assert_close(result.boxes, APART[[0, 1]])
    assert result.boxes.dtype == torch.float32 and result.labels.dtype == torch.int64


def test_overlapping_boxes_of_one_class_are_suppressed_but_not_across_classes_or_images():
    logits = sigmoid_logits(
        2,
        4,
        {
            (0, 0, 1): 0.9,
            (0, 2, 1): 0.8,  # same class, overlaps anchor 0: suppressed
            (0, 2, 2): 0.7,  # other class on the same box: kept
            (1, 0, 1): 0.6,  # same box and class in another image: kept
        },
    )
    assert rows(run(APART, logits)) == [(0, 1, 0.9), (0, 2, 0.7), (1, 1, 0.6)]


def test_scores_below_threshold_are_dropped():
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9, (0, 1, 1): 0.45, (0, 3, 2): 0.55})
    assert rows(run(APART, logits, score_threshold=0.5)) == [(0, 1, 0.9), (0, 2, 0.55)]
    assert rows(run(APART, logits, score_threshold=0.6)) == [(0, 1, 0.9)]


@pytest.mark.parametrize("score_fn", ["softmax", "sigmoid"])
def test_a_score_exactly_at_the_threshold_is_kept_and_one_just_below_dropped(score_fn: str):
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9, (0, 3, 2): 0.7})
    logits[0, 1] = torch.tensor([0.0, 0.0, -20.0, -20.0])  # scores 0.5 either way (sigmoid(0))
    if score_fn == "softmax":
        logits[0, 1] = torch.tensor([2.0, 2.0, -30.0, -30.0])
    at = run(APART, logits, score_fn=score_fn, score_threshold=0.5).scores.tolist()
    assert 0.5 in at  # exact in float32
    just_above = float(np.nextafter(np.float32(0.5), np.float32(1)))
    above = run(APART, logits, score_fn=score_fn, score_threshold=just_above).scores.tolist()
    assert sorted([*above, 0.5]) == sorted(at)


def test_label_filter_keeps_only_listed_classes():
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9, (0, 1, 3): 0.8, (0, 3, 2): 0.7})
    result = run(APART, logits, classes=torch.tensor([2, 3]))
    assert rows(result) == [(0, 3, 0.8), (0, 2, 0.7)]


def test_background_column_is_never_reported_even_if_listed():
    logits = sigmoid_logits(1, 4, {(0, 0, 0): 0.99, (0, 1, 2): 0.8})
    assert rows(run(APART, logits)) == [(0, 2, 0.8)]
    assert rows(run(APART, logits, classes=torch.tensor([0, 2]))) == [(0, 2, 0.8)]


def test_softmax_scores_are_over_all_columns_including_background():
    logits = torch.zeros(1, 4, NUM_CLASSES)
    logits[0, :, 0] = 5.0  # mostly background
    logits[0, 1] = torch.tensor([0.0, 3.0, 0.0, 0.0])
    result = run(APART, logits, score_fn="softmax")
    expected = math.exp(3) / (math.exp(3) + 3)
    assert rows(result) == [(0, 1, round(expected, 4))]


def test_max_detections_keeps_the_best_per_image():
    grid = torch.tensor([[0.2 * i, 0.0, 0.2 * i + 0.1, 0.1] for i in range(5)])  # disjoint
    scores = {(image, i, 1): 0.6 + 0.05 * i for image in range(2) for i in range(5)}
    result = run(grid, sigmoid_logits(2, 5, scores), max_detections=3)
    assert rows(result) == [
        (image, 1, round(0.8 - 0.05 * k, 4)) for image in (0, 1) for k in range(3)
    ]


def test_batch_gives_the_same_detections_as_one_image_at_a_time():
    g = torch.Generator().manual_seed(0)
    anchors_xy = torch.rand(200, 2, generator=g) * 0.8
    anchors = torch.cat((anchors_xy, anchors_xy + 0.05 + torch.rand(200, 2, generator=g) * 0.15), 1)
    regression = torch.randn(3, 200, 4, generator=g)
    logits = torch.randn(3, 200, 6, generator=g) * 3
    params: dict[str, Any] = {
        "anchors": anchors,
        "box_coder": BoxCoder(),
        "score_fn": "softmax",
        "background_class": 0,
        "score_threshold": 0.3,
        "nms_threshold": 0.45,
        "max_detections": 20,
        "pre_nms_top_k": 150,
    }
    together = postprocess(regression, logits, **params).to_detections()
    alone = [
        postprocess(regression[i : i + 1], logits[i : i + 1], **params).to_detections()[0]
        for i in range(3)
    ]
    assert len(together) == 3
    assert all(len(d) > 0 for d in alone)
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.score, b.score, rtol=1e-6)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-6)


def test_scaled_detections_are_in_each_image_pixels_and_clipped():
    result = BatchDetections(
        boxes=torch.tensor([[0.1, 0.2, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0]]),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([1, 2]),
        image_index=torch.tensor([0, 2]),
        batch_size=3,
    )
    sizes = torch.tensor([[100.0, 200.0], [10.0, 10.0], [480.0, 640.0]])  # (H, W)
    per_image = result.scaled(sizes).to_detections()
    assert [len(d) for d in per_image] == [1, 0, 1]
    np.testing.assert_allclose(per_image[0].xyxy, [[20.0, 20.0, 100.0, 100.0]], rtol=1e-6)
    np.testing.assert_allclose(per_image[2].xyxy, [[0.0, 0.0, 640.0, 480.0]])
    assert per_image[2].label.tolist() == [2] and per_image[0].score.dtype == np.float32


@pytest.mark.parametrize("score_fn", ["softmax", "sigmoid"])
def test_no_candidates_gives_empty_detections_for_every_image(score_fn: str):
    logits = torch.zeros(2, 4, NUM_CLASSES)
    per_image = run(APART, logits, score_fn=score_fn, score_threshold=0.9).to_detections()
    assert [len(d) for d in per_image] == [0, 0]


@pytest.mark.parametrize("code", [math.nan, math.inf, -math.inf])
def test_a_box_that_is_not_finite_is_dropped_before_nms_and_counted(code: float):
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9, (0, 2, 1): 0.8, (0, 1, 2): 0.7})
    assert rows(run(APART, logits)) == [(0, 1, 0.9), (0, 2, 0.7)]  # anchor 2 suppressed
    regression = torch.zeros(1, 4, 4)
    regression[0, 0, 0] = code  # anchor 0's x: its box is NaN or infinite
    result = run(APART, logits, regression)
    # anchor 0 goes before NMS, so the box it suppressed is reported
    assert rows(result) == [(0, 1, 0.8), (0, 2, 0.7)]
    torch.testing.assert_close(result.boxes[0], APART[2])
    assert result.non_finite == NUM_CLASSES - 1  # anchor 0 with each reportable class
    assert run(APART, logits).non_finite == 0


def test_nan_scores_are_dropped_and_counted():
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9, (0, 1, 2): 0.7})
    logits[0, 1, 2] = math.nan
    result = run(APART, logits)
    assert rows(result) == [(0, 1, 0.9)]
    assert result.non_finite == 1


def test_nan_scores_rank_last_so_they_do_not_push_real_boxes_out_of_the_top_k():
    logits = sigmoid_logits(2, 4, {(0, 0, 1): 0.9, (0, 1, 3): 0.8, (1, 3, 2): 0.6})
    logits[0, 2:] = math.nan  # 6 NaN scores in image 0, 6 numbers; 3 enter NMS
    result = run(APART, logits, pre_nms_top_k=3)
    assert rows(result) == [(0, 1, 0.9), (0, 3, 0.8), (1, 2, 0.6)]
    assert result.non_finite == 6  # counted, though image 0's top 3 are numbers


def test_nan_scores_enter_the_top_k_only_where_too_few_scores_are_numbers():
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9})
    logits[0, 1:] = math.nan  # 9 NaN scores, 3 numbers: the top 5 hold 2 NaN
    result = run(APART, logits, pre_nms_top_k=5)
    assert rows(result) == [(0, 1, 0.9)]
    assert result.non_finite == 9  # every NaN score, in the top 5 or not


@pytest.mark.parametrize("code", [math.nan, math.inf])
def test_a_box_that_is_not_finite_outside_the_top_k_is_counted(code: float):
    logits = sigmoid_logits(2, 4, {(0, 0, 1): 0.9, (1, 1, 2): 0.8})
    regression = torch.zeros(2, 4, 4)
    regression[1, 3, 0] = code  # image 1, anchor 3's x: scores ~0, far from its top 2
    result = run(APART, logits, regression, pre_nms_top_k=2)
    assert rows(result) == [(0, 1, 0.9), (1, 2, 0.8)]
    assert result.non_finite == NUM_CLASSES - 1  # the anchor with each reportable class
    assert run(APART, logits, pre_nms_top_k=2).non_finite == 0


def test_a_finite_batch_whose_boxes_sum_past_float32_counts_nothing():
    logits = sigmoid_logits(1, 4, {(0, 0, 1): 0.9})
    anchors = APART * 3e38  # each box finite, their sum not
    assert not torch.isfinite(anchors.sum())
    assert run(anchors, logits).non_finite == 0


def test_top_k_nan_last_ranks_nan_below_every_number_and_keeps_it():
    flat = torch.tensor([[0.2, math.nan, 0.9, math.nan, 0.1], [0.3, 0.5, 0.4, 0.1, 0.2]])
    scores, index, any_nan = top_k_nan_last(flat, 4)
    assert any_nan
    assert index[0, :3].tolist() == [2, 0, 4] and int(index[0, 3]) in (1, 3)
    assert index[1].tolist() == [1, 2, 0, 4]
    assert bool(scores[0, 3].isnan())
    torch.testing.assert_close(scores[:, :3], torch.tensor([[0.9, 0.2, 0.1], [0.5, 0.4, 0.3]]))
    assert top_k_nan_last(flat[1:], 4)[2] is False
