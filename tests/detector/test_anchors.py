"""Default boxes: layout of the generic grid and conversion of torchvision's generator."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from detector.anchors import feature_map_sizes, grid_default_boxes, torchvision_default_boxes


def test_grid_default_boxes_are_ordered_level_row_column_box():
    boxes = grid_default_boxes([(2, 3), (1, 1)], [[(0.2, 0.4), (0.1, 0.1)], [(1.0, 0.5)]])
    assert boxes.shape == (2 * 3 * 2 + 1, 4)
    # Level 0, row 1, column 2, second box: centre (2.5 / 3, 1.5 / 2), size 0.1 x 0.1.
    torch.testing.assert_close(
        boxes[(1 * 3 + 2) * 2 + 1], torch.tensor([2.5 / 3 - 0.05, 0.75 - 0.05, 2.5 / 3 + 0.05, 0.8])
    )
    torch.testing.assert_close(boxes[-1], torch.tensor([0.0, 0.25, 1.0, 0.75]))


def test_feature_map_sizes_reads_backbone_output_shapes():
    norm = nn.BatchNorm2d(4)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), norm)

    class TwoMaps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = backbone
            self.down = nn.MaxPool2d(2)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            a = self.body(x)
            return {"a": a, "b": self.down(a)}

    model = TwoMaps().train()
    assert feature_map_sizes(model, (60, 80)) == [(30, 40), (15, 20)]
    assert model.training  # mode restored
    assert (
        norm.num_batches_tracked is not None and norm.num_batches_tracked.item() == 0
    )  # no real forward ran


def test_torchvision_default_boxes_are_generator_boxes_normalised():
    generator = DefaultBoxGenerator([[2], [2, 3]], steps=[8, 16])
    sizes, input_size = [(4, 5), (2, 3)], (32, 40)
    ours = torchvision_default_boxes(generator, sizes, input_size)
    features = [torch.zeros(1, 1, h, w) for h, w in sizes]
    pixels = generator(ImageList(torch.zeros(1, 3, 32, 40), [(32, 40)]), features)[0]
    assert ours.shape == (4 * 5 * 4 + 2 * 3 * 6, 4)
    torch.testing.assert_close(ours * torch.tensor([40.0, 32.0, 40.0, 32.0]), pixels)
