"""The shared box geometry: IoU of xyxy boxes and greedy one-to-one matching."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou as torch_box_iou

from pipeline.boxes import box_iou, greedy_assignment


def test_greedy_assignment_takes_the_best_pair_first_and_each_row_and_column_once() -> None:
    pairs = [(-0.5, 0, 0), (-0.9, 1, 0), (-0.6, 0, 1), (-0.6, 1, 1), (-0.6, 2, 2), (-0.6, 2, 3)]
    # (1, 0) is best; ties at 0.6 go to the lower row, then the lower column.
    assert greedy_assignment(pairs) == [(1, 0), (0, 1), (2, 2)]
    assert greedy_assignment([]) == []


def test_box_iou_agrees_with_torchvision_and_gives_0_for_empty_boxes() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((7, 4)) * 100
    a[:, 2:] = a[:, :2] + rng.random((7, 2)) * 50
    b = a[:5] + rng.normal(0, 10, (5, 4))
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])  # some empty boxes
    b[0] = (5.0, 5.0, 5.0, 5.0)
    expected = torch_box_iou(torch.tensor(a), torch.tensor(b)).nan_to_num(0.0).numpy()
    np.testing.assert_allclose(box_iou(a, b), expected, atol=1e-9)
    assert box_iou(b[:1], b[:1])[0, 0] == 0.0
