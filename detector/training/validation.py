"""The model's detections on validation images, in the units COCO evaluation takes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from detector.postprocess import postprocess
from detector.request import DetectorRequest
from detector.ssd import SSD
from detector.training.evaluation import (
    MAX_DETECTIONS,
    Prediction,
    detections_to_prediction,
)

NMS_THRESHOLD = DetectorRequest.nms_threshold
"""The engine's default: mAP is measured with the suppression the deployed model uses."""


@torch.no_grad()
def predict(
    model: SSD,
    images: Iterable[Tensor],
    sizes: Sequence[tuple[int, int]],
    device: torch.device,
    score_threshold: float,
) -> list[Prediction]:
    """Detections of `model` on batches of images, scaled back to each image's own size.

    Args:
        images: batches uint8 [B, 3, S, S], already resized to the model's input.
        sizes: (width, height) of the original image behind each row of the batches, in order.
        score_threshold: the lowest score kept (low, as COCO evaluation expects).

    Returns:
        one `Prediction` per image: boxes float32 [M, 4] xyxy in original pixels.
    """
    was_training = model.training
    model.eval()
    out: list[Prediction] = []
    try:
        for batch in images:
            box_regression, class_logits = model(batch.to(device, non_blocking=True))
            found = postprocess(
                box_regression.float(),
                class_logits.float(),
                anchors=model.anchors,
                box_coder=model.box_coder,
                score_fn=model.score_fn,
                background_class=model.background_class,
                score_threshold=score_threshold,
                nms_threshold=NMS_THRESHOLD,
                max_detections=MAX_DETECTIONS,
            )
            # (height, width) of the images behind this batch's rows, in order
            shapes = torch.tensor([s[::-1] for s in sizes[len(out) : len(out) + len(batch)]])
            out.extend(detections_to_prediction(d) for d in found.scaled(shapes).to_detections())
    finally:
        model.train(was_training)
    if len(out) != len(sizes):
        raise ValueError(f"predicted {len(out)} images for {len(sizes)} sizes")
    return out
