"""The PyTorch modules of the TF SSD / SSDLite MobileNetV2 model (`detector.tf_ssd` builds it).

They compute what the TF graph computes: MobileNetV2 tapped at the expansion output of one
inverted-residual block and at its last 1x1 conv, extra stride-2 layers, (depthwise-separable)
box and class predictors, and TensorFlow "SAME" padding. Batch norm is folded into the
convolutions (`detector.tf_convert_graph`), so every conv has a bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.tf_ssd_config import BlockSpec, ExtraSpec, TFSSDConfig


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: for stride 2 it pads more at bottom/right."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        if kernel % 2 == 0:
            raise ValueError(f"SameConv2d needs an odd kernel, got {kernel}")
        # Stride 1 with an odd kernel pads symmetrically, which Conv2d does by itself.
        super().__init__(
            cin,
            cout,
            kernel,
            stride,
            padding=kernel // 2 if stride == 1 else 0,
            groups=groups,
            bias=True,
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> [B, C', ceil(H / stride), ceil(W / stride)].

        TF pads one pixel more at the bottom/right than at the top/left when the total is
        odd. Instead of padding the activations (a zero-filled copy of the largest tensors
        of the network, a fifth of the CPU time: docs/performance.md), the kernel grows by
        one zero row/column at its top/left and the conv pads symmetrically by the larger
        amount: the same sums.
        """
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        before_h, after_h = _same_pads(x.shape[-2], k, s)
        before_w, after_w = _same_pads(x.shape[-1], k, s)
        weight = self.weight
        if after_h != before_h or after_w != before_w:
            weight = F.pad(weight, (after_w - before_w, 0, after_h - before_h, 0))
        return F.conv2d(x, weight, self.bias, s, (after_h, after_w), 1, self.groups)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one dimension; after - before is 0 or 1."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_relu6(
    cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """SAME conv (batch norm folded into its bias) followed by ReLU6."""
    return nn.Sequential(SameConv2d(cin, cout, kernel, stride, groups), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand, ReLU6] -> 3x3 depthwise, ReLU6 -> 1x1 project (+ input)."""

    def __init__(self, cin: int, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.expand or cin
        self.expand = conv_relu6(cin, mid) if spec.expand else nn.Identity()
        self.depthwise = conv_relu6(mid, mid, 3, spec.stride, groups=mid)
        self.project = SameConv2d(mid, spec.out, 1)
        self.residual = spec.residual

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, C, H, W] -> (output [B, out, H', W'], expansion output [B, expand, H, W])."""
        expanded = self.expand(x)
        out = self.project(self.depthwise(expanded))
        return (out + x if self.residual else out), expanded


class ExtraLayer(nn.Sequential):
    """1x1 conv, ReLU6 -> stride-2 3x3 (depthwise + 1x1, or full), ReLU6."""

    def __init__(self, cin: int, spec: ExtraSpec) -> None:
        layers = [conv_relu6(cin, spec.mid)]
        if spec.depthwise:
            layers += [
                conv_relu6(spec.mid, spec.mid, 3, 2, groups=spec.mid),
                conv_relu6(spec.mid, spec.out),
            ]
        else:
            layers.append(conv_relu6(spec.mid, spec.out, 3, 2))
        super().__init__(*layers)


_Spec = TypeVar("_Spec", BlockSpec, ExtraSpec)


def _chain(
    cin: int, specs: Sequence[_Spec], layer: Callable[[int, _Spec], nn.Module]
) -> tuple[nn.ModuleList, int]:
    """One layer per spec, each reading the channels the one before writes.

    Returns (the layers, channels of the last one's output).
    """
    layers = []
    for spec in specs:
        layers.append(layer(cin, spec))
        cin = spec.out
    return nn.ModuleList(layers), cin


class MobileNetV2Features(nn.Module):
    """MobileNetV2 + SSD extra layers; returns the feature maps the predictors read."""

    def __init__(self, config: TFSSDConfig) -> None:
        super().__init__()
        self.stem = conv_relu6(3, config.stem, 3, 2)
        self.blocks, cin = _chain(config.stem, config.blocks, InvertedResidual)
        self.last = conv_relu6(cin, config.last)
        self.extras, _ = _chain(config.last, config.extras, ExtraLayer)
        self.tap_block = config.tap_block

    def forward(self, x: Tensor) -> list[Tensor]:
        """x [B, 3, H, W] in [-1, 1] -> feature maps [B, C_i, H_i, W_i], largest first."""
        # Depthwise convs run faster on the CPU in channels-last (NHWC) layout
        # (docs/performance.md).
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        features = []
        for i, block in enumerate(self.blocks):
            x, expanded = block(x)
            if i == self.tap_block:
                features.append(expanded)
        x = self.last(x)
        features.append(x)
        for extra in self.extras:
            x = extra(x)
            features.append(x)
        return features


class Predictor(nn.Sequential):
    """Per-location outputs: [3x3 depthwise, ReLU6 ->] conv with bias, to boxes * K channels."""

    def __init__(self, cin: int, cout: int, depthwise: bool, kernel: int) -> None:
        if depthwise:
            super().__init__(conv_relu6(cin, cin, 3, groups=cin), SameConv2d(cin, cout, 1))
        else:
            super().__init__(SameConv2d(cin, cout, kernel))


class SSDPredictorHead(nn.Module):
    """Box and class predictors of every feature map, flattened in TF's (y, x, box) order."""

    def __init__(self, config: TFSSDConfig) -> None:
        super().__init__()
        boxes = [len(level) for level in config.anchor_specs]
        channels = config.feature_channels
        self.num_classes = config.num_classes
        self.box = nn.ModuleList(
            Predictor(c, n * 4, config.head_depthwise, config.head_kernel)
            for c, n in zip(channels, boxes, strict=True)
        )
        self.cls = nn.ModuleList(
            Predictor(c, n * config.num_classes, config.head_depthwise, config.head_kernel)
            for c, n in zip(channels, boxes, strict=True)
        )
        self.logit_scale = config.logit_scale

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """feature maps -> (box codes [B, A, 4] as (ty, tx, th, tw), class logits [B, A, C])."""
        batch = features[0].shape[0]
        codes = [
            p(f).permute(0, 2, 3, 1).reshape(batch, -1, 4)
            for p, f in zip(self.box, features, strict=True)
        ]
        logits = [
            p(f).permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)
            for p, f in zip(self.cls, features, strict=True)
        ]
        class_logits = torch.cat(logits, dim=1)
        if self.logit_scale != 1.0:
            class_logits = class_logits / self.logit_scale
        return torch.cat(codes, dim=1), class_logits
