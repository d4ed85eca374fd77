"""Batched SSD post-processing: decode, score, threshold, top-k and one NMS for the batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from detector.box_coder import BoxCoder
from detector.request import reaches_threshold
from detector.ssd import ScoreFn
from pipeline.types import Detections

PACKED_COLUMNS = 7
"""Columns of `BatchDetections.packed`: x1, y1, x2, y2, score, label, image index."""


@dataclass(frozen=True)
class BatchDetections:
    """Detections of a whole batch in flat device tensors.

    Rows are sorted by image, then by decreasing score. Boxes are xyxy in whatever units the
    producer used (normalised [0, 1] out of `postprocess`, pixels after `scaled`).

    Attributes:
        boxes: float32 [N, 4]; scores: float32 [N]; labels: int64 [N] (class_logits column);
        image_index: int64 [N], position of the image in the batch; batch_size: B.
        non_finite: (box, class) pairs of the batch, among all its anchors and reportable
            classes, whose box or score was NaN or infinite (`non_finite_pairs`); those that
            reached an image's top `pre_nms_top_k` were dropped before NMS.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    image_index: Tensor
    batch_size: int
    non_finite: int = 0

    def scaled(self, sizes: Tensor) -> BatchDetections:
        """Normalised boxes -> pixels of each image, clipped to it; sizes: [B, 2] (H, W)."""
        wh = sizes.to(device=self.boxes.device, dtype=self.boxes.dtype).flip(-1)
        limit = wh.repeat(1, 2)[self.image_index]
        boxes = torch.minimum((self.boxes * limit).clamp_min(0.0), limit)
        return BatchDetections(
            boxes, self.scores, self.labels, self.image_index, self.batch_size, self.non_finite
        )

    def packed(self) -> Tensor:
        """float32 [N, PACKED_COLUMNS] on the detections' device, every column in one tensor
        so that the batch crosses to the host in one copy (`unpack_detections` reads it)."""
        return torch.cat(
            (
                self.boxes.float(),
                self.scores.float()[:, None],
                self.labels.float()[:, None],  # small ints: exact in float32
                self.image_index.float()[:, None],
            ),
            dim=1,
        )

    def to_detections(self) -> list[Detections]:
        """One `Detections` per image, after a single device -> host copy."""
        return unpack_detections(self.packed().cpu().numpy(), self.batch_size)


def unpack_detections(packed: npt.NDArray[np.float32], batch_size: int) -> list[Detections]:
    """One `Detections` per image from a host copy of `BatchDetections.packed`.

    `packed`: float32 [N, PACKED_COLUMNS], rows sorted by image; `batch_size`: B images.
    """
    counts = np.bincount(packed[:, 6].astype(np.int64), minlength=batch_size)
    ends = np.cumsum(counts)
    result = []
    for start, end in zip(ends - counts, ends, strict=True):
        rows = packed[start:end]
        result.append(
            Detections(
                xyxy=np.ascontiguousarray(rows[:, :4], dtype=np.float32),
                score=np.ascontiguousarray(rows[:, 4], dtype=np.float32),
                label=rows[:, 5].astype(np.int64),
            )
        )
    return result


def reportable_classes(
    num_classes: int, background_class: int | None, device: torch.device | str = "cpu"
) -> Tensor:
    """int64 indices of every class_logits column except the background one."""
    columns = torch.arange(num_classes, device=device)
    if background_class is None:
        return columns
    return torch.cat((columns[:background_class], columns[background_class + 1 :]))


def non_finite_pairs(boxes: Tensor, scores: Tensor) -> int:
    """How many (box, class) pairs of boxes [..., A, 4] and their scores [..., A, K] have a
    box or a score that is NaN or infinite."""
    bad_box = ~torch.isfinite(boxes).all(-1)
    return int((bad_box[..., None] | ~torch.isfinite(scores)).sum())


def top_k_nan_last(flat: Tensor, k: int) -> tuple[Tensor, Tensor, bool]:
    """The k highest scores [B, k] of each row of flat [B, M], in decreasing order, their
    indices [B, k], and whether `flat` holds NaN; NaN ranks below every number, as in numpy's
    sort, so that a row has NaN among its top k only where it has fewer than k numbers.

    torch's own `topk` ranks NaN above everything: a network giving NaN for some anchors
    would fill the top k with them and push its real boxes out.
    """
    top_scores, top_index = flat.topk(k, dim=1)
    # A row's NaN are among its top k (torch ranks them first), so this sees any NaN in
    # `flat`; the one `bool` is a host sync on CUDA, and the redo is paid only with NaN.
    if not bool(top_scores.isnan().any()):
        return top_scores, top_index, False
    top_index = flat.masked_fill(flat.isnan(), -math.inf).topk(k, dim=1).indices
    return flat.gather(1, top_index), top_index, True  # the NaN scores, not -inf: dropped


def postprocess(
    box_regression: Tensor,
    class_logits: Tensor,
    *,
    anchors: Tensor,
    box_coder: BoxCoder,
    score_fn: ScoreFn,
    background_class: int | None,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    pre_nms_top_k: int = 1000,
    classes: Tensor | None = None,
) -> BatchDetections:
    """Turn raw SSD outputs for a batch into final detections, without loops over images.

    Args:
        box_regression: float [B, A, 4] codes for `anchors` ([A, 4] xyxy, normalised).
        class_logits: float [B, A, C].
        score_fn: "softmax" over the C columns, or per-column "sigmoid".
        background_class: column never reported (None if the model has none).
        score_threshold: keep (box, class) pairs scoring at least this (`reaches_threshold`);
            a pair whose box or score is NaN or infinite is dropped (all such pairs of the
            batch, candidates or not, are counted in `non_finite`).
        nms_threshold: IoU above which a lower-scoring box of the same image and class goes.
        max_detections: at most this many detections per image.
        pre_nms_top_k: at most this many (box, class) pairs per image enter NMS: its highest
            scores, NaN ranked last (`top_k_nan_last`).
        classes: int64 columns that may be reported (label filter); default: all but the
            background column. The background column is never reported.

    Returns:
        BatchDetections with boxes clipped to [0, 1], still on the input's device.
    """
    from torchvision.ops import batched_nms  # here: keeps `import detector` light

    batch, _, num_classes = class_logits.shape
    device = class_logits.device
    boxes = box_coder.decode(box_regression, anchors)  # [B, A, 4], not clipped yet
    if score_fn == "softmax":
        scores = torch.softmax(class_logits.float(), dim=-1)
    else:
        scores = torch.sigmoid(class_logits.float())

    if classes is None:
        classes = reportable_classes(num_classes, background_class, device)
    elif background_class is not None:
        classes = classes[classes != background_class]
    classes = classes.to(device)
    scores = scores.index_select(-1, classes)  # [B, A, K]

    # One top-k over all (anchor, class) pairs of each image.
    flat = scores.reshape(batch, -1)
    k = min(pre_nms_top_k, flat.shape[1])
    top_scores, top_index, any_nan = top_k_nan_last(flat, k)  # [B, k]; scores: [0, 1] or NaN
    # Any box that is not finite makes the sum so (a finite sum that overflows only costs
    # the exact count below); read after NMS, which the host waits for anyway.
    any_bad_box = ~torch.isfinite(boxes.sum(dtype=torch.float32))
    num_kept_classes = classes.numel()
    top_anchor = torch.div(top_index, num_kept_classes, rounding_mode="floor")
    top_label = classes[top_index % num_kept_classes]
    top_boxes = boxes.gather(1, top_anchor[..., None].expand(-1, -1, 4))  # [B, k, 4]
    # A diverged network's NaN or infinite outputs go before NMS, which they would upset
    # (checked before clipping, which would make an infinite box look like a real one).
    finite = torch.isfinite(top_boxes).all(-1) & torch.isfinite(top_scores)
    keep = reaches_threshold(top_scores, score_threshold) & finite
    image = torch.arange(batch, device=device)[:, None].expand(-1, k)

    cand_boxes = top_boxes[keep].clamp(0.0, 1.0)
    cand_scores = top_scores[keep]
    cand_labels = top_label[keep]
    cand_image = image[keep]
    groups = cand_image * num_classes + cand_labels
    kept = batched_nms(cand_boxes, cand_scores, groups, nms_threshold)

    # `kept` is sorted by score; a stable sort by image keeps that order inside each image,
    # so the rank of a row within its image is its offset from the image's first row.
    by_image = kept[torch.sort(cand_image[kept], stable=True).indices]
    image_of_row = cand_image[by_image]
    counts = torch.bincount(image_of_row, minlength=batch)
    first_row = torch.cumsum(counts, 0) - counts
    rank = torch.arange(by_image.numel(), device=device) - first_row[image_of_row]
    final = by_image[rank < max_detections]
    non_finite = non_finite_pairs(boxes, scores) if any_nan or bool(any_bad_box) else 0
    return BatchDetections(
        boxes=cand_boxes[final],
        scores=cand_scores[final],
        labels=cand_labels[final],
        image_index=cand_image[final],
        batch_size=batch,
        non_finite=non_finite,
    )
