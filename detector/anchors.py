"""Default boxes (anchors) of SSD models, as [A, 4] xyxy tensors normalised to [0, 1].

Anchors are ordered level by level, then row (y), column (x), box: the order in which SSD
heads flatten their per-level outputs [B, boxes*K, H, W] -> [B, H*W*boxes, K].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call


def feature_map_sizes(backbone: nn.Module, input_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(H, W) of each feature map `backbone` returns for a [1, 3, *input_size] input.

    Runs the backbone on the "meta" device (shapes only, no compute, no memory), in eval
    mode; the backbone may return a list/tuple or a dict of feature maps.
    """
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in (*backbone.named_parameters(), *backbone.named_buffers())
    }
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = functional_call(backbone, state, (torch.empty(1, 3, *input_size, device="meta"),))
    finally:
        backbone.train(was_training)
    maps = list(out.values()) if isinstance(out, dict) else list(out)
    return [(int(f.shape[-2]), int(f.shape[-1])) for f in maps]


def grid_default_boxes(
    feature_sizes: Sequence[tuple[int, int]],
    box_sizes: Sequence[Sequence[tuple[float, float]]],
    offset: float = 0.5,
) -> Tensor:
    """Anchors centred on every cell of every feature map.

    Args:
        feature_sizes: (H, W) of each feature map.
        box_sizes: for each feature map, the (width, height) of its boxes, normalised to
            the model input.
        offset: position of the centre inside a cell; centre x = (col + offset) / W.

    Returns:
        float32 [A, 4] xyxy, A = sum(H * W * len(box_sizes[level])).
    """
    if len(feature_sizes) != len(box_sizes):
        raise ValueError(
            f"{len(feature_sizes)} feature maps but box sizes for {len(box_sizes)} levels"
        )
    levels = []
    for (h, w), sizes in zip(feature_sizes, box_sizes, strict=True):
        cy = (torch.arange(h, dtype=torch.float32) + offset) / h
        cx = (torch.arange(w, dtype=torch.float32) + offset) / w
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack((cx, cy, cx, cy), dim=-1).reshape(h * w, 1, 4)
        wh = torch.tensor(sizes, dtype=torch.float32).reshape(1, -1, 2)
        half = torch.cat((-0.5 * wh, 0.5 * wh), dim=-1)
        levels.append((centres + half).reshape(-1, 4))
    return torch.cat(levels)


def torchvision_default_boxes(
    generator: nn.Module, feature_sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
) -> Tensor:
    """Anchors of a torchvision `DefaultBoxGenerator`, computed once on empty dummy maps.

    Returns:
        float32 [A, 4] xyxy normalised by `input_size` (H, W).
    """
    from torchvision.models.detection.image_list import ImageList

    h, w = input_size
    images = ImageList(torch.empty(1, 3, h, w), [(h, w)])
    features = [torch.empty(1, 0, fh, fw) for fh, fw in feature_sizes]
    boxes = generator(images, features)[0]
    return (boxes / torch.tensor([w, h, w, h], dtype=boxes.dtype)).to(torch.float32)
