"""The torch-free post-processing gives what torch's and torchvision's does, on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector.box_coder import BoxCoder
from detector.numpy_postprocess import Decoding, postprocess_numpy
from detector.postprocess import postprocess, unpack_detections
from pipeline.types import Detections

SIZES = [(576, 768), (300, 300), (1080, 1920)]


def random_outputs(
    seed: int, anchors: int = 600, classes: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchors [A, 4] (clustered, so that boxes overlap), box_regression [B, A, 4] and
    class_logits [B, A, C], with some logits exactly 0 (a sigmoid score of exactly 0.5, the
    threshold below)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.1, 0.9, (anchors, 2))
    sides = rng.uniform(0.05, 0.4, (anchors, 2))
    anchor_boxes = np.concatenate((centres - sides / 2, centres + sides / 2), axis=1)
    codes = rng.normal(0.0, 1.0, (len(SIZES), anchors, 4))
    logits = rng.normal(-1.0, 2.0, (len(SIZES), anchors, classes))
    logits[rng.random(logits.shape) < 0.02] = 0.0
    return (
        anchor_boxes.astype(np.float32),
        codes.astype(np.float32),
        logits.astype(np.float32),
    )


def torch_detections(
    anchors: np.ndarray,
    codes: np.ndarray,
    logits: np.ndarray,
    coder: BoxCoder,
    score_fn: str,
    classes: np.ndarray | None,
    **settings: float,
) -> tuple[list[Detections], int]:
    """What `postprocess` gives, scaled to `SIZES` and unpacked, and its `non_finite`."""
    result = postprocess(
        torch.from_numpy(codes),
        torch.from_numpy(logits),
        anchors=torch.from_numpy(anchors),
        box_coder=coder,
        score_fn=score_fn,  # type: ignore[arg-type]
        background_class=0,
        classes=None if classes is None else torch.from_numpy(classes),
        **settings,  # type: ignore[arg-type]
    )
    scaled = result.scaled(torch.tensor(SIZES, dtype=torch.float32))
    return unpack_detections(scaled.packed().numpy(), len(SIZES)), result.non_finite


def numpy_detections(
    anchors: np.ndarray,
    codes: np.ndarray,
    logits: np.ndarray,
    coder: BoxCoder,
    score_fn: str,
    classes: np.ndarray | None,
    **settings: float,
) -> tuple[list[Detections], int]:
    """What `postprocess_numpy` gives for the same arguments as `torch_detections`."""
    decoding = Decoding(anchors, coder.weights, coder.yx_order, coder.clamp, score_fn, 0)  # type: ignore[arg-type]
    return postprocess_numpy(
        codes,
        logits,
        decoding,
        SIZES,
        classes=classes,
        score_threshold=settings["score_threshold"],
        nms_threshold=settings["nms_threshold"],
        max_detections=int(settings["max_detections"]),
        pre_nms_top_k=int(settings["pre_nms_top_k"]),
    )


@pytest.mark.parametrize(
    ("seed", "coder", "score_fn", "classes", "settings"),
    [
        (0, BoxCoder(), "sigmoid", None, {}),
        (1, BoxCoder((10.0, 10.0, 5.0, 5.0), yx_order=True, clamp=None), "sigmoid", None, {}),
        (2, BoxCoder(), "softmax", None, {"score_threshold": 0.3}),
        (3, BoxCoder(), "sigmoid", np.array([0, 2]), {"nms_threshold": 0.3}),
        (4, BoxCoder(), "sigmoid", None, {"max_detections": 5, "pre_nms_top_k": 40}),
    ],
)
def test_numpy_postprocess_matches_torchvision_on_random_outputs(
    seed: int,
    coder: BoxCoder,
    score_fn: str,
    classes: np.ndarray | None,
    settings: dict[str, float],
) -> None:
    anchors, codes, logits = random_outputs(seed)
    asked = {
        "score_threshold": 0.5,
        "nms_threshold": 0.6,
        "max_detections": 100,
        "pre_nms_top_k": 1000,
        **settings,
    }
    expected, counted = torch_detections(anchors, codes, logits, coder, score_fn, classes, **asked)
    got, non_finite = numpy_detections(anchors, codes, logits, coder, score_fn, classes, **asked)
    assert sum(len(d) for d in expected) > 10  # the case has detections to compare
    assert non_finite == counted == 0
    assert any(len(d) < int(asked["pre_nms_top_k"]) for d in expected)
    assert_same_detections(expected, got)


def assert_same_detections(expected: list[Detections], got: list[Detections]) -> None:
    for want, have in zip(expected, got, strict=True):
        # boxes of equal score may come in either order: compare in one order
        w = np.lexsort((want.xyxy[:, 1], want.xyxy[:, 0], -want.score, want.label))
        h = np.lexsort((have.xyxy[:, 1], have.xyxy[:, 0], -have.score, have.label))
        np.testing.assert_array_equal(have.label[h], want.label[w])
        np.testing.assert_allclose(have.score[h], want.score[w], rtol=1e-5)
        np.testing.assert_allclose(have.xyxy[h], want.xyxy[w], atol=1e-2)


def test_numpy_postprocess_of_no_candidates_is_empty() -> None:
    anchors, codes, logits = random_outputs(5)
    decoding = Decoding(anchors, (10.0, 10.0, 5.0, 5.0), False, None, "sigmoid", 0)
    got, non_finite = postprocess_numpy(
        codes,
        np.full_like(logits, -30.0),
        decoding,
        SIZES,
        score_threshold=0.5,
        nms_threshold=0.5,
        max_detections=100,
        pre_nms_top_k=1000,
    )
    assert [len(d) for d in got] == [0, 0, 0] and non_finite == 0


def test_numpy_postprocess_drops_and_counts_boxes_that_are_not_finite_as_torch_does() -> None:
    anchors, codes, logits = random_outputs(6)
    rng = np.random.default_rng(6)
    broken = rng.choice(codes.shape[1], 60, replace=False)
    codes[0, broken[:20], 0] = np.nan
    codes[1, broken[20:40], 2] = np.inf  # a width code: exp overflows, the box is infinite
    codes[2, broken[40:], 1] = -np.inf
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0), clamp=None)
    asked = {
        "score_threshold": 0.3,
        "nms_threshold": 0.5,
        "max_detections": 100,
        "pre_nms_top_k": 100,  # most of the broken boxes are outside it: counted all the same
    }
    want, counted = torch_detections(anchors, codes, logits, coder, "sigmoid", None, **asked)
    got, non_finite = numpy_detections(anchors, codes, logits, coder, "sigmoid", None, **asked)
    assert non_finite == counted == 60 * (logits.shape[2] - 1)
    assert all(len(d) > 0 for d in got)
    for w, h in zip(want, got, strict=True):
        np.testing.assert_allclose(np.sort(h.score), np.sort(w.score), rtol=1e-5)


@pytest.mark.parametrize("score_fn", ["sigmoid", "softmax"])
def test_nan_scores_rank_last_in_both_so_both_keep_the_real_boxes_and_count_alike(
    score_fn: str,
) -> None:
    anchors, codes, logits = random_outputs(7)
    # image 0: 1000 NaN scores, 200 numbers; image 2: 1180 NaN, 20 numbers (2 classes each)
    logits[0, 100:] = np.nan
    logits[2, 10:] = np.nan
    coder = BoxCoder()
    top_k = 100
    asked = {
        "score_threshold": 0.2,
        "nms_threshold": 0.5,
        "max_detections": 100,
        "pre_nms_top_k": top_k,
    }
    expected, counted = torch_detections(anchors, codes, logits, coder, score_fn, None, **asked)
    got, non_finite = numpy_detections(anchors, codes, logits, coder, score_fn, None, **asked)
    # every NaN score: image 0's, though its top k are numbers, and all of image 2's
    assert non_finite == counted == (500 + 590) * (logits.shape[2] - 1)
    assert all(len(d) > 0 for d in expected)
    assert_same_detections(expected, got)
