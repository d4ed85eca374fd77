"""Augmentation for training and resizing for evaluation, on torchvision tv_tensors.

Both pipelines take and return a dict {"image": tv_tensors.Image uint8 [3, H, W],
"boxes": tv_tensors.BoundingBoxes [N, 4] (XYXY pixels, canvas (H, W)), "labels": int64
[N]}; the output image is uint8 [3, size, size] and its boxes are in its pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from detector.resize import resize_rgb

MEAN_PIXEL = (123, 117, 104)
"""RGB mean of ImageNet in 0..255: the "mean pixel" the SSD paper fills zoomed-out images
with (its backbones were pre-trained on ImageNet, as ours are)."""


def train_transform(size: int) -> v2.Compose:
    """The SSD paper's augmentation (section 2.2 "Data augmentation" and 3.6): photometric
    distortion; zoom out onto a canvas up to 4x the side filled with the mean pixel (half
    of the time); a random crop whose overlap with some object reaches one of the sampled
    minimum IoUs, or the whole image (torchvision's sampler options include 1.0, "leave
    as is"); horizontal flip; resize to `size` x `size`; then boxes left without area, or
    whose centre fell outside the crop, are dropped with their labels."""
    return v2.Compose(
        [
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomZoomOut(fill={tv_tensors.Image: MEAN_PIXEL, "others": 0}, p=0.5),
            v2.RandomIoUCrop(),
            v2.RandomHorizontalFlip(p=0.5),
            _resize(size),
            v2.SanitizeBoundingBoxes(),
        ]
    )


def eval_transform(size: int) -> v2.Compose:
    """Resize to `size` x `size` exactly as the detector does at inference on the CPU
    (`detector.resize`), so that validation during training and `evaluate` score the same
    weights alike; boxes follow."""
    return v2.Compose([DetectorResize(size)])


def _resize(size: int) -> v2.Resize:
    # Bilinear without antialiasing, as the detector resizes (within a grey level of it), so
    # the model trains on pixels like those it will see.
    return v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=False)


class DetectorResize(v2.Transform):
    """Resize to `size` x `size`: images with the detector's own resize, boxes scaled."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image):
            pixels = inpt.permute(1, 2, 0).numpy()  # uint8 [H, W, 3]
            resized = resize_rgb(np.ascontiguousarray(pixels), (self.size, self.size))
            return tv_tensors.wrap(torch.from_numpy(resized).permute(2, 0, 1), like=inpt)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return v2.functional.resize(inpt, [self.size, self.size])
        return inpt


def transform_input(
    image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The dict both pipelines take: `image` uint8 [3, H, W], `boxes` float32 [N, 4] xyxy
    pixels of that image, `labels` int64 [N]."""
    height, width = image.shape[-2:]
    return {
        "image": tv_tensors.Image(image),
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
        "labels": labels,
    }
