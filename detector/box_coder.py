"""Encoding and decoding of SSD box regressions relative to default boxes (anchors)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class BoxCoder:
    """Turns SSD regression codes into boxes and back, following the SSD paper / torchvision /
    TF OD API.

    For an anchor with centre (xa, ya) and size (wa, ha), codes (tx, ty, tw, th) decode to
    centre (xa + tx / wx * wa, ya + ty / wy * ha) and size (wa * exp(tw / ww), ha * exp(th / wh)).

    Args:
        weights: scale factors, in the same order as the codes: (wx, wy, ww, wh), or
            (wy, wx, wh, ww) when `yx_order` is set (TF's `scale_factors`).
        yx_order: codes are (ty, tx, th, tw), as produced by the TF Object Detection API.
        clamp: upper bound on the scaled log-size codes before `exp` (torchvision's
            `bbox_xform_clip`); None disables it, as TF does.
    """

    def __init__(
        self,
        weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        yx_order: bool = False,
        clamp: float | None = math.log(1000.0 / 16),
    ) -> None:
        if len(weights) != 4:
            raise ValueError(f"BoxCoder weights must have 4 values, got {list(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.yx_order = yx_order
        self.clamp = clamp

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights}, yx_order={self.yx_order}, clamp={self.clamp})"

    def decode(self, rel_codes: Tensor, anchors: Tensor) -> Tensor:
        """Decode codes [B, A, 4] against anchors [A, 4] (xyxy) into boxes [B, A, 4] (xyxy).

        Output boxes are in the units of the anchors (e.g. normalised [0, 1]); not clipped.
        """
        if rel_codes.shape[-2:] != anchors.shape:
            raise ValueError(
                f"codes {list(rel_codes.shape)} do not match anchors {list(anchors.shape)}"
            )
        weights = torch.tensor(self.weights, dtype=anchors.dtype, device=anchors.device)
        codes = rel_codes.to(anchors.dtype) / weights
        if self.yx_order:
            dy, dx, dh, dw = codes.unbind(-1)
        else:
            dx, dy, dw, dh = codes.unbind(-1)
        if self.clamp is not None:
            dw = dw.clamp(max=self.clamp)
            dh = dh.clamp(max=self.clamp)

        wa = anchors[:, 2] - anchors[:, 0]
        ha = anchors[:, 3] - anchors[:, 1]
        xa = anchors[:, 0] + 0.5 * wa
        ya = anchors[:, 1] + 0.5 * ha

        cx = dx * wa + xa
        cy = dy * ha + ya
        half_w = 0.5 * torch.exp(dw) * wa
        half_h = 0.5 * torch.exp(dh) * ha
        return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1)

    def encode(self, boxes: Tensor, anchors: Tensor) -> Tensor:
        """Codes [..., 4] of boxes [..., 4] (xyxy) against anchors [..., 4] (xyxy, broadcast
        against `boxes`), in this coder's code order and weights: the inverse of `decode`.

        Boxes and anchors in the same units (e.g. normalised [0, 1]), with positive widths
        and heights (log sizes). `decode(encode(b, a), a) == b` wherever the size codes stay
        under `clamp`, which `encode` does not apply.
        """
        wa = anchors[..., 2] - anchors[..., 0]
        ha = anchors[..., 3] - anchors[..., 1]
        xa = anchors[..., 0] + 0.5 * wa
        ya = anchors[..., 1] + 0.5 * ha
        w = boxes[..., 2] - boxes[..., 0]
        h = boxes[..., 3] - boxes[..., 1]
        x = boxes[..., 0] + 0.5 * w
        y = boxes[..., 1] + 0.5 * h

        dx, dy = (x - xa) / wa, (y - ya) / ha
        dw, dh = torch.log(w / wa), torch.log(h / ha)
        codes = (dy, dx, dh, dw) if self.yx_order else (dx, dy, dw, dh)
        weights = torch.tensor(self.weights, dtype=codes[0].dtype, device=codes[0].device)
        return torch.stack(codes, dim=-1) * weights
