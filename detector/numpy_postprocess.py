"""SSD post-processing in numpy, NMS by OpenCV: `detector.postprocess.postprocess` without torch.

A run whose network ONNX Runtime runs from the cache (`detector.cached_onnx`) never imports
torch, whose import alone takes seconds and hundreds of MB (docs/performance.md, "Start-up
and memory"); so its post-processing cannot use torch or torchvision. The decoding mirrors
`detector.box_coder.BoxCoder.decode`, the rest `detector.postprocess.postprocess`, and the
NMS is OpenCV's class-aware one (`cv2.dnn.NMSBoxesBatched`); tests hold all of it to torch's
and torchvision's results on random inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detector.request import reaches_threshold
from pipeline.types import Detections

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Decoding:
    """What turns an SSD's raw outputs into boxes and scores (the `SSD`'s attributes).

    Attributes:
        anchors: float32 [A, 4] xyxy default boxes, normalised to the model input.
        weights, yx_order, clamp: the `BoxCoder`'s.
        score_fn: "softmax" over the class columns, or per-column "sigmoid".
        background_class: the column never reported (None: the model has none).
    """

    anchors: Floats
    weights: tuple[float, float, float, float]
    yx_order: bool
    clamp: float | None
    score_fn: str
    background_class: int | None

    def __post_init__(self) -> None:
        if self.score_fn not in ("softmax", "sigmoid"):
            raise ValueError(f"score_fn must be 'softmax' or 'sigmoid', got {self.score_fn!r}")

    def boxes(self, codes: Floats) -> Floats:
        """Codes [B, A, 4] -> xyxy boxes [B, A, 4] in the anchors' units, not clipped."""
        anchors = self.anchors
        codes = np.divide(codes, np.asarray(self.weights, np.float32), dtype=np.float32)
        if self.yx_order:
            dy, dx, dh, dw = np.moveaxis(codes, -1, 0)
        else:
            dx, dy, dw, dh = np.moveaxis(codes, -1, 0)
        if self.clamp is not None:
            dw = np.minimum(dw, np.float32(self.clamp))
            dh = np.minimum(dh, np.float32(self.clamp))
        wa = anchors[:, 2] - anchors[:, 0]
        ha = anchors[:, 3] - anchors[:, 1]
        xa = anchors[:, 0] + 0.5 * wa
        ya = anchors[:, 1] + 0.5 * ha
        cx = dx * wa + xa
        cy = dy * ha + ya
        half_w = 0.5 * np.exp(dw) * wa
        half_h = 0.5 * np.exp(dh) * ha
        return np.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), axis=-1)

    def scores(self, logits: Floats) -> Floats:
        """Class logits [B, A, C] -> float32 scores [B, A, C]."""
        logits = logits.astype(np.float32, copy=False)
        if self.score_fn == "sigmoid":
            return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)

    def reportable(self, num_classes: int, classes: Ints | None) -> Ints:
        """The columns that may be reported: `classes` (default all), never the background."""
        columns = np.arange(num_classes, dtype=np.int64) if classes is None else classes
        return columns[columns != self.background_class]


def postprocess_numpy(
    box_regression: Floats,
    class_logits: Floats,
    decoding: Decoding,
    sizes: Sequence[tuple[int, int]],
    *,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    pre_nms_top_k: int,
    classes: Ints | None = None,
) -> tuple[list[Detections], int]:
    """One `Detections` per image, boxes in its pixels: what `postprocess(...).scaled(sizes)`
    gives, for outputs box_regression [B, A, 4] and class_logits [B, A, C] of images whose
    (H, W) are `sizes`; and its `non_finite` count (`non_finite_pairs`). The arguments are
    `detector.postprocess.postprocess`'s."""
    boxes = decoding.boxes(box_regression)  # [B, A, 4], not clipped yet
    columns = decoding.reportable(class_logits.shape[-1], classes)
    scores = decoding.scores(class_logits)[..., columns]  # [B, A, K]
    found = [
        _image_detections(
            boxes[i],
            scores[i],
            columns,
            size,
            score_threshold=score_threshold,
            nms_threshold=nms_threshold,
            max_detections=max_detections,
            pre_nms_top_k=pre_nms_top_k,
        )
        for i, size in enumerate(sizes)
    ]
    any_nan = any(nan for _, nan in found)  # scores are in [0, 1] or NaN
    non_finite = non_finite_pairs(boxes, scores) if any_nan or not np.isfinite(boxes).all() else 0
    return [detections for detections, _ in found], non_finite


def non_finite_pairs(boxes: Floats, scores: Floats) -> int:
    """How many (box, class) pairs of boxes [..., A, 4] and their scores [..., A, K] have a
    box or a score that is NaN or infinite (`detector.postprocess.non_finite_pairs`)."""
    bad_box = ~np.isfinite(boxes).all(axis=-1, keepdims=True)  # [..., A, 1]
    return int(np.count_nonzero(bad_box | ~np.isfinite(scores)))


def _image_detections(
    boxes: Floats,
    scores: Floats,
    columns: Ints,
    size: tuple[int, int],
    *,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    pre_nms_top_k: int,
) -> tuple[Detections, bool]:
    """One image's detections, and whether its scores hold NaN: boxes [A, 4] normalised, not
    clipped, scores [A, K] of the `columns`."""
    flat = scores.ravel()
    k = min(pre_nms_top_k, flat.size)
    if k == 0:
        return Detections.empty(), False
    # numpy's partition ranks NaN above every number, so any NaN shows among the k highest;
    # only then are they partitioned again with NaN last, as `top_k_nan_last` does for
    # torch (a NaN left among the top k means the image has fewer than k numbers)
    top = np.argpartition(flat, flat.size - k)[flat.size - k :]
    top_scores = flat[top]
    any_nan = bool(np.isnan(top_scores).any())
    if any_nan:
        top = np.argpartition(-flat, k - 1)[:k]
        top_scores = flat[top]
    order = np.argsort(-top_scores, kind="stable")
    top, top_scores = top[order], top_scores[order]
    anchor, label = np.divmod(top, len(columns))
    top_boxes = boxes[anchor]
    # NaN or infinite outputs go before NMS, and before clipping (`postprocess`'s rule).
    finite = np.isfinite(top_boxes).all(axis=1) & np.isfinite(top_scores)
    keep = np.logical_and(reaches_threshold(top_scores, score_threshold), finite)
    top_scores = top_scores[keep]
    label = columns[label[keep]]
    candidates = np.clip(top_boxes[keep], 0.0, 1.0)
    xywh = np.concatenate((candidates[:, :2], candidates[:, 2:] - candidates[:, :2]), axis=1)
    # Candidates are already above the score threshold: OpenCV's own (score > -1) keeps all.
    # OpenCV's stubs say sequences; its binding takes arrays.
    kept = np.asarray(
        cv2.dnn.NMSBoxesBatched(
            xywh.astype(np.float64),  # type: ignore[arg-type]
            top_scores,  # type: ignore[arg-type]
            label.astype(np.int32),  # type: ignore[arg-type]
            -1.0,
            nms_threshold,
        ),
        dtype=np.int64,
    ).reshape(-1)
    kept = kept[np.argsort(-top_scores[kept], kind="stable")][:max_detections]
    height, width = size
    limit = np.asarray((width, height, width, height), dtype=np.float32)
    xyxy = np.minimum(np.maximum(candidates[kept] * limit, 0.0), limit)
    detections = Detections(
        xyxy=np.ascontiguousarray(xyxy, dtype=np.float32),
        score=np.ascontiguousarray(top_scores[kept], dtype=np.float32),
        label=label[kept].astype(np.int64),
    )
    return detections, any_nan
