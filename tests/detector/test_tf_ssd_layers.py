"""The TF SSD modules: TensorFlow "SAME" padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detector.tf_ssd_layers import SameConv2d


def test_same_padding_pads_more_at_bottom_right_for_stride_2() -> None:
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel=3, stride=2)
    even = torch.randn(1, 2, 10, 10)  # TF pads (0, 1): total 1, the extra row/column at the end
    expected = F.conv2d(F.pad(even, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(even), expected)
    odd = torch.randn(1, 2, 9, 9)  # total 2: symmetric
    expected = F.conv2d(F.pad(odd, (1, 1, 1, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(odd), expected)
    assert conv(torch.randn(1, 2, 19, 10)).shape[-2:] == (10, 5)
