"""Augmentation for training and resizing for evaluation, on torchvision tv_tensors.

Both pipelines take and return a dict {"image": tv_tensors.Image uint8 [3, H, W],
"boxes": tv_tensors.BoundingBoxes [N, 4] (XYXY pixels, canvas (H, W)), "labels": int64
[N]}; the output image is uint8 [3, size, size] and its boxes are in its pixels.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

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
    return v2.Compose([
        v2.RandomPhotometricDistort(p=0.5),
        v2.RandomZoomOut(fill={tv_tensors.Image: MEAN_PIXEL, "others": 0}, p=0.5),
        v2.RandomIoUCrop(),
        v2.RandomHorizontalFlip(p=0.5),
        _resize(size),
        v2.SanitizeBoundingBoxes(),
    ])


def eval_transform(size: int) -> v2.Compose:
    """Resize to `size` x `size` as the detector does at inference; boxes follow."""
    return v2.Compose([_resize(size)])


def _resize(size: int) -> v2.Resize:
    # Bilinear without antialiasing: what detector.engine does to every frame, so the model
    # trains and is evaluated on pixels like those it will see.
    return v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=False)


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
