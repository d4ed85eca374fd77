"""A single-shot detector composed of a backbone, a head and default boxes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from detector.box_coder import BoxCoder

ScoreFn = Literal["softmax", "sigmoid"]


class SSD(nn.Module):
    """Backbone + head over fixed default boxes; returns raw regressions and class logits.

    Args:
        backbone: images [B, 3, H, W] (normalised) -> list of feature maps.
        head: list of feature maps -> (box_regression [B, A, 4], class_logits [B, A, C]).
        anchors: float [A, 4] xyxy default boxes, normalised to [0, 1] of the model input.
        box_coder: decodes `box_regression` against `anchors`.
        input_size: (H, W) the images must be resized to before `forward`.
        mean, std: per-channel normalisation in 0..255 pixel units: x = (pixel - mean) / std.
        score_fn: how class logits become scores ("softmax" over classes, or "sigmoid").
        background_class: column of `class_logits` that means "no object", or None.

    Labels reported by the detector are column indices of `class_logits`.
    """

    anchors: Tensor
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        anchors: Tensor,
        box_coder: BoxCoder,
        input_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        score_fn: ScoreFn = "softmax",
        background_class: int | None = 0,
    ) -> None:
        super().__init__()
        if anchors.ndim != 2 or anchors.shape[1] != 4:
            raise ValueError(f"anchors must have shape [A, 4], got {list(anchors.shape)}")
        if score_fn not in ("softmax", "sigmoid"):
            raise ValueError(f"score_fn must be 'softmax' or 'sigmoid', got {score_fn!r}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values, got {list(mean)} and {list(std)}")
        self.backbone = backbone
        self.head = head
        self.box_coder = box_coder
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.score_fn: ScoreFn = score_fn
        self.background_class = background_class
        # Derived from the architecture, so kept out of state_dict (checkpoints hold weights).
        self.register_buffer("anchors", anchors.to(torch.float32), persistent=False)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images: uint8 or float [B, 3, H, W] in 0..255, (H, W) == `input_size`.

        Returns:
            box_regression float [B, A, 4] and class_logits float [B, A, C].
        """
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(
                f"SSD expects images [B, 3, {self.input_size[0]}, {self.input_size[1]}], "
                f"got {list(images.shape)}"
            )
        x = (images.to(self.mean.dtype) - self.mean) / self.std
        box_regression, class_logits = self.head(self.backbone(x))
        if box_regression.shape[1] != self.num_anchors:
            raise RuntimeError(
                f"head produced {box_regression.shape[1]} boxes for {self.num_anchors} anchors"
            )
        return box_regression, class_logits
