"""The model's detections on validation images, in the units COCO evaluation takes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from detector.postprocess import postprocess
from detector.request import DetectorRequest
from detector.ssd import SSD
from detector.training.evaluation import Prediction

MAX_DETECTIONS = 100
"""Detections kept per image when measuring mAP: COCO's largest `maxDets`."""
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
            for row in range(found.batch_size):
                mine = found.image_index == row
                width, height = sizes[len(out)]
                scale = torch.tensor([width, height, width, height], dtype=torch.float32)
                out.append(
                    Prediction(
                        boxes=(found.boxes[mine].float().cpu() * scale).numpy(),
                        scores=found.scores[mine].float().cpu().numpy(),
                        labels=found.labels[mine].cpu().numpy().astype("int64"),
                    )
                )
    finally:
        model.train(was_training)
    if len(out) != len(sizes):
        raise ValueError(f"predicted {len(out)} images for {len(sizes)} sizes")
    return out
