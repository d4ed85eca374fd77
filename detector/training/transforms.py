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


def train_transform(size: int, smallest_box: float) -> v2.Compose:
    """The SSD paper's augmentation (section 2.2 "Data augmentation" and 3.6): photometric
    distortion; zoom out onto a canvas up to 4x the side filled with the mean pixel (half
    of the time), no further than `BoundedZoomOut` allows for `smallest_box` (the side of
    the model's smallest default box, a fraction of its input side); a random crop whose
    overlap with some object reaches one of the sampled minimum IoUs, or the whole image
    (torchvision's sampler options include 1.0, "leave as is"); horizontal flip; resize to
    `size` x `size`; then boxes left without area, or whose centre fell outside the crop,
    are dropped with their labels."""
    return v2.Compose(
        [
            v2.RandomPhotometricDistort(p=0.5),
            BoundedZoomOut(smallest_box, fill={tv_tensors.Image: MEAN_PIXEL, "others": 0}),
            IoUCrop(),
            v2.RandomHorizontalFlip(p=0.5),
            _resize(size),
            v2.SanitizeBoundingBoxes(),
        ]
    )


class BoundedZoomOut(v2.RandomZoomOut):
    """`v2.RandomZoomOut` (half of the time, a canvas 1-4x the side) that shrinks no object
    below `smallest_box`: the canvas grows at most by the factor that brings the image's
    smallest box (the side of a square of its area, as a fraction of the image's) down to
    that side, and an image holding a box smaller already is not zoomed out.

    The zoom-out is there to make small objects out of large ones. An object smaller than
    every default box overlaps none well, yet matching gives it the one it overlaps most:
    its regression targets are huge and its class target sits on features that barely show
    it. On people already smaller than the bundled model's smallest default box, such
    boxes made the first gradients 3-4 times larger and took the fine-tuned model's
    validation mAP@.5 from 0.72 to 0.57-0.59 in three steps, where the same training
    without them stayed at 0.70 or above (docs/training.md, the fourth figure).

    Args:
        smallest_box: the side (square root of the area) of the model's smallest default
            box, as a fraction of its input side, in (0, 1].
    """

    def __init__(self, smallest_box: float, fill: Any, p: float = 0.5) -> None:
        if not 0.0 < smallest_box <= 1.0:
            raise ValueError(f"smallest_box must be in (0, 1], got {smallest_box}")
        super().__init__(fill=fill, side_range=(1.0, 4.0), p=p)
        self.smallest_box = smallest_box

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """The padding of the canvas: [left, top, right, bottom] pixels."""
        height, width = next(i for i in flat_inputs if isinstance(i, tv_tensors.Image)).shape[-2:]
        low, high = self.side_range
        for boxes in (i for i in flat_inputs if isinstance(i, tv_tensors.BoundingBoxes)):
            if len(boxes):
                high = min(high, smallest_side(boxes, width, height) / self.smallest_box)
        if high <= low:
            return {"padding": [0, 0, 0, 0]}
        ratio = low + float(torch.rand(1)) * (high - low)
        canvas_width, canvas_height = int(width * ratio), int(height * ratio)
        where = torch.rand(2)
        left = int((canvas_width - width) * where[0])
        top = int((canvas_height - height) * where[1])
        return {"padding": [left, top, canvas_width - width - left, canvas_height - height - top]}


class IoUCrop(v2.RandomIoUCrop):
    """`v2.RandomIoUCrop`, leaving as is an image too small to crop: under 1/`min_scale`
    pixels on a side (3 at the default 0.3), torchvision's draws a crop 0 pixels high and
    divides by its height (ZeroDivisionError)."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = next(i for i in flat_inputs if isinstance(i, tv_tensors.Image)).shape[-2:]
        if min(height, width) * self.min_scale < 1:
            return {}  # torchvision's "leave as is"
        return dict(super().make_params(flat_inputs))


def smallest_default_box(anchors: torch.Tensor) -> float:
    """The side (square root of the area) of the smallest of `anchors` [A, 4] (xyxy,
    normalised to the input): what `train_transform` takes as `smallest_box`."""
    sides = ((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])).clamp(min=0).sqrt()
    return float(sides.min())


def smallest_side(boxes: tv_tensors.BoundingBoxes, width: int, height: int) -> float:
    """The side of a square of the area of the smallest of `boxes` [N > 0, 4], as a
    fraction of the side of a square of the area of the `width` x `height` image."""
    xyxy = v2.functional.convert_bounding_box_format(
        boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY
    ).as_subclass(torch.Tensor)
    areas = (xyxy[:, 2] - xyxy[:, 0]).clamp(min=0) * (xyxy[:, 3] - xyxy[:, 1]).clamp(min=0)
    return float((areas.min() / (width * height)).sqrt())


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
