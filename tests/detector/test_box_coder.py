"""BoxCoder.decode against a reference encoder written from the SSD paper."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TorchvisionBoxCoder

from detector.box_coder import BoxCoder


def encode(boxes: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """SSD paper: (tx, ty, tw, th) = ((x - xa) / wa, (y - ya) / ha, log(w / wa), log(h / ha)),
    each multiplied by its weight (wx, wy, ww, wh)."""
    wa, ha = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    xa, ya = anchors[:, 0] + wa / 2, anchors[:, 1] + ha / 2
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    x, y = boxes[..., 0] + w / 2, boxes[..., 1] + h / 2
    wx, wy, ww, wh = weights
    return torch.stack(
        (wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)),
        dim=-1,
    )


def random_boxes(generator: torch.Generator, *shape: int) -> torch.Tensor:
    xy = torch.rand(*shape, 2, generator=generator) * 0.6
    wh = torch.rand(*shape, 2, generator=generator) * 0.35 + 0.05
    return torch.cat((xy, xy + wh), dim=-1)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return random_boxes(g, 3, 50), random_boxes(g, 50)  # boxes [3, 50, 4], anchors [50, 4]


def test_decode_inverts_paper_encoding_for_whole_batch(batch: tuple[torch.Tensor, torch.Tensor]):
    boxes, anchors = batch
    weights = (10.0, 8.0, 5.0, 4.0)
    decoded = BoxCoder(weights).decode(encode(boxes, anchors, weights), anchors)
    assert decoded.shape == boxes.shape
    torch.testing.assert_close(decoded, boxes, atol=1e-5, rtol=0)


def test_yx_order_reads_codes_and_weights_as_y_x_h_w(batch: tuple[torch.Tensor, torch.Tensor]):
    boxes, anchors = batch
    xy_codes = encode(boxes, anchors, (10.0, 8.0, 5.0, 4.0))
    yx_codes = xy_codes[..., [1, 0, 3, 2]]  # TF order: (ty, tx, th, tw)
    decoded = BoxCoder((8.0, 10.0, 4.0, 5.0), yx_order=True).decode(yx_codes, anchors)
    torch.testing.assert_close(decoded, boxes, atol=1e-5, rtol=0)


def test_decode_matches_torchvision_box_coder(batch: tuple[torch.Tensor, torch.Tensor]):
    _, anchors = batch
    codes = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(1)) * 3
    ours = BoxCoder().decode(codes, anchors)
    theirs = torch.stack(
        [TorchvisionBoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(c, anchors) for c in codes]
    )
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_clamp_bounds_size_codes_and_none_disables_it():
    anchors = torch.tensor([[0.4, 0.4, 0.6, 0.6]])
    codes = torch.tensor([[[0.0, 0.0, 100.0, 100.0]]])  # exp(100 / 5) would be huge
    clamped = BoxCoder(clamp=math.log(1000 / 16)).decode(codes, anchors)
    width = clamped[0, 0, 2] - clamped[0, 0, 0]
    assert width.item() == pytest.approx(0.2 * 1000 / 16, rel=1e-5)
    unclamped = BoxCoder(clamp=None).decode(codes, anchors)
    assert (unclamped[0, 0, 2] - unclamped[0, 0, 0]).item() > 1e6


@pytest.mark.parametrize(
    ("weights", "yx_order"), [((10.0, 8.0, 5.0, 4.0), False), ((8.0, 10.0, 4.0, 5.0), True)]
)
def test_encode_is_the_inverse_of_decode_in_both_code_orders(
    batch: tuple[torch.Tensor, torch.Tensor], weights: tuple[float, ...], yx_order: bool
):
    boxes, anchors = batch
    coder = BoxCoder(weights, yx_order=yx_order)
    codes = coder.encode(boxes, anchors)
    assert codes.shape == boxes.shape
    torch.testing.assert_close(coder.decode(codes, anchors), boxes, atol=1e-5, rtol=0)
    random_codes = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        coder.encode(coder.decode(random_codes, anchors), anchors), random_codes, atol=1e-4, rtol=0
    )


def test_encode_follows_the_paper_and_reads_weights_in_code_order(
    batch: tuple[torch.Tensor, torch.Tensor],
):
    boxes, anchors = batch
    xy_codes = encode(boxes, anchors, (10.0, 8.0, 5.0, 4.0))
    torch.testing.assert_close(BoxCoder((10.0, 8.0, 5.0, 4.0)).encode(boxes, anchors), xy_codes)
    yx = BoxCoder((8.0, 10.0, 4.0, 5.0), yx_order=True).encode(boxes, anchors)
    torch.testing.assert_close(yx, xy_codes[..., [1, 0, 3, 2]])


def test_encode_matches_torchvision_encode_single(batch: tuple[torch.Tensor, torch.Tensor]):
    boxes, anchors = batch
    weights = (10.0, 10.0, 5.0, 5.0)
    ours = BoxCoder(weights).encode(boxes, anchors)
    theirs = torch.stack([TorchvisionBoxCoder(weights).encode_single(b, anchors) for b in boxes])
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
