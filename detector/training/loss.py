"""The SSD paper's MultiBox loss: Smooth-L1 localisation of the matched default boxes plus
softmax confidence with hard negative mining (Liu et al., 2016, section 2.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou

from detector.box_coder import BoxCoder

BACKGROUND = 0
"""The class index of "no object" (`SSD.background_class` of every trained model)."""


@dataclass(frozen=True)
class LossParts:
    """The two terms of the MultiBox loss, each a scalar already divided by the positives."""

    localisation: Tensor
    confidence: Tensor

    @property
    def total(self) -> Tensor:
        """What training minimises: localisation + confidence (the paper's alpha = 1)."""
        return self.localisation + self.confidence


class MultiBoxLoss:
    """The SSD training loss over a batch of raw model outputs.

    Matching (torchvision's `SSDMatcher`): each ground-truth box takes the default box it
    overlaps most, whatever the IoU, and every default box with IoU >= `iou_threshold` with
    some ground truth takes the one it overlaps most; the other default boxes are background.
    Localisation is Smooth-L1 between the regressions of the matched default boxes and
    `box_coder.encode` of their ground truths. Confidence is softmax cross-entropy, over the
    positives and, per image, the `neg_pos_ratio` x positives background boxes of highest
    loss (hard negatives; all of them when there are fewer). Both sums are divided by the
    number of positives in the batch (at least 1).

    An image without boxes has no positives and still contributes its `neg_pos_ratio`
    hardest negatives, as if it had one positive: images of nothing but background teach the
    model what is not an object (the paper's rule would give them no loss at all), at the
    weight of an image with one object. For images with boxes this is the paper's rule,
    since each ground truth makes at least one positive.

    Written here rather than taken from `torchvision.models.detection.SSD.compute_loss`:
    that one encodes targets with torchvision's box coder, whose (x, y, w, h) code order is
    wrong for the TF models (person_ssdlite regresses (y, x, h, w)); `box_coder.encode` is the
    model's own. It also works on the whole batch at once (only matching is per image) and
    accepts images without boxes.

    Args:
        box_coder: the model's `SSD.box_coder`.
        anchors: float [A, 4] xyxy default boxes normalised to [0, 1] (`SSD.anchors`).
        iou_threshold: IoU from which a default box matches a ground truth.
        neg_pos_ratio: hard negatives kept per positive.
    """

    def __init__(
        self,
        box_coder: BoxCoder,
        anchors: Tensor,
        iou_threshold: float = 0.5,
        neg_pos_ratio: int = 3,
    ) -> None:
        if anchors.ndim != 2 or anchors.shape[1] != 4 or anchors.shape[0] == 0:
            raise ValueError(f"anchors must have shape [A, 4], A > 0, got {list(anchors.shape)}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if neg_pos_ratio < 1:
            raise ValueError(f"neg_pos_ratio must be at least 1, got {neg_pos_ratio}")
        self.box_coder = box_coder
        self.anchors = anchors.detach().to(torch.float32)
        self.iou_threshold = float(iou_threshold)
        self.neg_pos_ratio = int(neg_pos_ratio)
        self.matcher = SSDMatcher(self.iou_threshold)

    def __repr__(self) -> str:
        return (
            f"MultiBoxLoss({self.box_coder!r}, anchors={self.anchors.shape[0]}, "
            f"iou_threshold={self.iou_threshold}, neg_pos_ratio={self.neg_pos_ratio})"
        )

    def match(self, boxes: Sequence[Tensor]) -> Tensor:
        """int64 [B, A]: for each image's boxes [Ni, 4] (normalised xyxy), the index of the
        box each default box is matched to, or -1 for background."""
        if not boxes:
            return torch.empty((0, self.anchors.shape[0]), dtype=torch.int64)
        anchors = self.anchors.to(boxes[0].device)
        empty = torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
        return torch.stack(
            [self.matcher(box_iou(b.to(anchors), anchors)) if len(b) else empty for b in boxes]
        )

    def __call__(
        self,
        box_regression: Tensor,
        class_logits: Tensor,
        boxes: Sequence[Tensor],
        labels: Sequence[Tensor],
    ) -> LossParts:
        """The loss of a batch.

        Args:
            box_regression: float [B, A, 4] codes, as the model outputs them.
            class_logits: float [B, A, C], column 0 the background.
            boxes: per image, float [Ni, 4] xyxy normalised to [0, 1] of the model input,
                with positive widths and heights (Ni may be 0).
            labels: per image, int64 [Ni] in 1..C-1.
        """
        batch, num_anchors, num_classes = self._check(box_regression, class_logits, boxes, labels)
        device = class_logits.device
        anchors = self.anchors.to(device)
        with torch.no_grad():
            matched = self.match([b.to(device) for b in boxes])  # [B, A]
            positive = matched >= 0
            gt_boxes, gt_labels = _padded(boxes, labels, device)  # [B, M, 4], [B, M]
            index = matched.clamp(min=0)
            target_boxes = gt_boxes.gather(1, index[..., None].expand(-1, -1, 4))
            # Background boxes get their own anchor (codes 0, never counted), so that the
            # padding rows never reach the log of `encode`.
            target_boxes = torch.where(positive[..., None], target_boxes, anchors)
            target_codes = self.box_coder.encode(target_boxes, anchors)  # [B, A, 4]
            target_labels = torch.where(positive, gt_labels.gather(1, index), BACKGROUND)

        localisation = F.smooth_l1_loss(box_regression.float(), target_codes, reduction="none")
        localisation = torch.where(positive[..., None], localisation, 0.0).sum()
        confidence = F.cross_entropy(
            class_logits.float().reshape(-1, num_classes),
            target_labels.reshape(-1),
            reduction="none",
        ).reshape(batch, num_anchors)
        counted = positive | self._hard_negatives(confidence.detach(), positive)
        confidence = torch.where(counted, confidence, 0.0).sum()
        num_positive = positive.sum().clamp(min=1)
        return LossParts(localisation / num_positive, confidence / num_positive)

    def _hard_negatives(self, confidence: Tensor, positive: Tensor) -> Tensor:
        """bool [B, A]: per image, the `neg_pos_ratio` x max(1, positives) background boxes
        with the highest confidence loss [B, A]."""
        loss = confidence.masked_fill(positive, -float("inf"))
        rank = loss.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
        quota = self.neg_pos_ratio * positive.sum(dim=1, keepdim=True).clamp(min=1)
        return ~positive & (rank < quota)

    def _check(
        self,
        box_regression: Tensor,
        class_logits: Tensor,
        boxes: Sequence[Tensor],
        labels: Sequence[Tensor],
    ) -> tuple[int, int, int]:
        """(B, A, C) of the outputs, once their shapes agree with the anchors and targets."""
        if class_logits.ndim != 3:
            raise ValueError(f"class_logits must be [B, A, C], got {list(class_logits.shape)}")
        batch, num_anchors, num_classes = class_logits.shape
        if tuple(box_regression.shape) != (batch, num_anchors, 4):
            raise ValueError(
                f"box_regression {list(box_regression.shape)} does not match class_logits "
                f"{list(class_logits.shape)}: expected [{batch}, {num_anchors}, 4]"
            )
        if num_anchors != self.anchors.shape[0]:
            raise ValueError(f"{num_anchors} outputs per image for {self.anchors.shape[0]} anchors")
        if len(boxes) != batch or len(labels) != batch:
            raise ValueError(
                f"{len(boxes)} box and {len(labels)} label tensors for a batch of {batch}"
            )
        for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
            if b.ndim != 2 or b.shape[1] != 4 or lab.shape != (b.shape[0],):
                raise ValueError(
                    f"image {i}: boxes {list(b.shape)} and labels {list(lab.shape)} "
                    "are not [N, 4] and [N]"
                )
        return batch, num_anchors, num_classes


def _padded(
    boxes: Sequence[Tensor], labels: Sequence[Tensor], device: torch.device
) -> tuple[Tensor, Tensor]:
    """Per-image boxes [Ni, 4] and labels [Ni] stacked into float32 [B, M, 4] and int64
    [B, M], M = max(1, max Ni), padded with zeros."""
    rows = max([1, *(len(b) for b in boxes)])
    out_boxes = torch.zeros((len(boxes), rows, 4), dtype=torch.float32, device=device)
    out_labels = torch.zeros((len(boxes), rows), dtype=torch.int64, device=device)
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        out_boxes[i, : len(b)] = b
        out_labels[i, : len(lab)] = lab
    return out_boxes, out_labels
