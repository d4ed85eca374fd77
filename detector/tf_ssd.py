"""TF Object Detection API SSD / SSDLite with a MobileNetV2 backbone, rebuilt in PyTorch.

Computes what the TF graph computes (see `detector.convert_tf`, which fills it from a frozen
graph): MobileNetV2 tapped at the expansion output of one inverted-residual block and at its
last 1x1 conv, extra stride-2 layers, (depthwise-separable) box and class predictors,
TensorFlow "SAME" padding, inputs scaled to [-1, 1], and TF's multiple-grid anchors. Batch
norm is folded into the convolutions, so every conv has a bias.

`person_ssdlite` builds the bundled pedestrian detector (classes: background, person).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.anchors import feature_map_sizes, grid_default_boxes
from detector.box_coder import BoxCoder
from detector.errors import ModelConfigError, WeightsUnavailableError
from detector.ssd import SSD
from detector.state_dicts import load_checked, load_file
from pipeline.types import LabelMap

CHECKPOINT_FORMAT = "tf-ssd/1"
ARCH = "person_ssdlite"
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "person_ssdlite.pt"
PERSON_LABELS = ("background", "person")


@dataclass(frozen=True)
class BlockSpec:
    """One MobileNetV2 inverted-residual block.

    Attributes:
        expand: channels of the 1x1 expansion (0: the block has no expansion layer).
        out: channels of the 1x1 projection.
        stride: stride of the 3x3 depthwise conv.
        residual: the block input is added to its output.
    """

    expand: int
    out: int
    stride: int
    residual: bool


@dataclass(frozen=True)
class ExtraSpec:
    """One extra SSD layer: 1x1 conv to `mid`, then a stride-2 3x3 to `out` channels.

    With `depthwise` (SSDLite) the 3x3 is depthwise followed by a 1x1 conv; else a full conv.
    """

    mid: int
    out: int
    depthwise: bool


def _mobilenet_v2_blocks() -> tuple[BlockSpec, ...]:
    # (expansion factor t, output channels c, repeats n, first stride s) of MobileNetV2.
    table = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    blocks = []
    cin = 32
    for t, c, n, s in table:
        for i in range(n):
            stride = s if i == 0 else 1
            expand = cin * t if t != 1 else 0
            blocks.append(BlockSpec(expand, c, stride, stride == 1 and cin == c))
            cin = c
    return tuple(blocks)


def _ssd_anchor_specs(
    num_layers: int = 6,
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5, 3.0, 0.3333),
) -> tuple[tuple[tuple[float, float], ...], ...]:
    """(scale, aspect ratio) of each box of each layer, as TF's `create_ssd_anchors`.

    The default ratios are those of TF's SSDLite configs, which write 1/3 as 0.3333.
    """
    scales = [min_scale + (max_scale - min_scale) * i / (num_layers - 1) for i in range(num_layers)]
    scales.append(1.0)
    specs: list[tuple[tuple[float, float], ...]] = []
    for layer in range(num_layers):
        if layer == 0:  # reduce_boxes_in_lowest_layer
            specs.append(((0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)))
        else:
            boxes = [(scales[layer], ar) for ar in aspect_ratios]
            boxes.append((math.sqrt(scales[layer] * scales[layer + 1]), 1.0))
            specs.append(tuple(boxes))
    return tuple(specs)


@dataclass(frozen=True)
class TFSSDConfig:
    """Architecture of a TF-OD-API SSD MobileNetV2 model; the defaults are the person graph.

    Attributes:
        input_size: side of the square model input.
        num_classes: class_logits columns, background (column 0) included.
        stem: channels of the first 3x3 stride-2 conv.
        blocks: the inverted-residual blocks.
        last: channels of the final 1x1 conv.
        tap_block: index in `blocks` whose expansion output is the first feature map.
        extras: the extra layers after the backbone (one feature map each).
        head_depthwise: predictors are 3x3 depthwise + 1x1 (SSDLite) instead of one conv.
        head_kernel: kernel of the predictor conv when not depthwise.
        anchor_specs: per feature map, (scale, aspect ratio) of each default box.
        box_coder_weights: TF `scale_factors`, (y, x, h, w).
        logit_scale: class logits are divided by this before scoring.
        score_fn: TF's score conversion, "sigmoid" or "softmax".
        mean, std: input normalisation in 0..255 units, (pixel - mean) / std.
    """

    input_size: int = 300
    num_classes: int = 2
    stem: int = 32
    blocks: tuple[BlockSpec, ...] = field(default_factory=_mobilenet_v2_blocks)
    last: int = 1280
    tap_block: int = 13
    extras: tuple[ExtraSpec, ...] = (
        ExtraSpec(256, 512, True),
        ExtraSpec(128, 256, True),
        ExtraSpec(128, 256, True),
        ExtraSpec(64, 128, True),
    )
    head_depthwise: bool = True
    head_kernel: int = 1
    anchor_specs: tuple[tuple[tuple[float, float], ...], ...] = field(
        default_factory=_ssd_anchor_specs
    )
    box_coder_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    logit_scale: float = 1.0
    score_fn: str = "sigmoid"
    mean: float = 127.5
    std: float = 127.5

    def __post_init__(self) -> None:
        if not 0 <= self.tap_block < len(self.blocks) or not self.blocks[self.tap_block].expand:
            raise ValueError(f"tap_block {self.tap_block} is not a block with an expansion layer")
        if len(self.anchor_specs) != 2 + len(self.extras):
            raise ValueError(
                f"{len(self.anchor_specs)} anchor levels for {2 + len(self.extras)} feature maps"
            )
        if self.num_classes < 2:
            raise ValueError(
                f"num_classes must count background and >= 1 class, got {self.num_classes}"
            )
        if self.score_fn not in ("sigmoid", "softmax"):
            raise ValueError(f"score_fn must be 'sigmoid' or 'softmax', got {self.score_fn!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists/ints/floats/bools, storable in a `weights_only` checkpoint."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TFSSDConfig:
        """Inverse of `to_dict`; raises ValueError/TypeError/KeyError on malformed data."""
        return cls(
            input_size=int(data["input_size"]),
            num_classes=int(data["num_classes"]),
            stem=int(data["stem"]),
            blocks=tuple(
                BlockSpec(int(b["expand"]), int(b["out"]), int(b["stride"]), bool(b["residual"]))
                for b in data["blocks"]
            ),
            last=int(data["last"]),
            tap_block=int(data["tap_block"]),
            extras=tuple(
                ExtraSpec(int(e["mid"]), int(e["out"]), bool(e["depthwise"]))
                for e in data["extras"]
            ),
            head_depthwise=bool(data["head_depthwise"]),
            head_kernel=int(data["head_kernel"]),
            anchor_specs=tuple(
                tuple((float(s), float(a)) for s, a in level) for level in data["anchor_specs"]
            ),
            box_coder_weights=tuple(float(w) for w in data["box_coder_weights"]),  # type: ignore[arg-type]
            logit_scale=float(data["logit_scale"]),
            score_fn=str(data["score_fn"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
        )

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each feature map the backbone returns."""
        return [self.blocks[self.tap_block].expand, self.last, *(e.out for e in self.extras)]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


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
        of the network, ~20% of the CPU time), the kernel grows by one zero row/column at
        its top/left and the conv pads symmetrically by the larger amount: the same sums.
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


class MobileNetV2Features(nn.Module):
    """MobileNetV2 + SSD extra layers; returns the feature maps the predictors read."""

    def __init__(self, config: TFSSDConfig) -> None:
        super().__init__()
        self.stem = conv_relu6(3, config.stem, 3, 2)
        blocks = []
        cin = config.stem
        for spec in config.blocks:
            blocks.append(InvertedResidual(cin, spec))
            cin = spec.out
        self.blocks = nn.ModuleList(blocks)
        self.last = conv_relu6(cin, config.last)
        extras = []
        cin = config.last
        for extra in config.extras:
            extras.append(ExtraLayer(cin, extra))
            cin = extra.out
        self.extras = nn.ModuleList(extras)
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


def tf_default_boxes(config: TFSSDConfig, feature_sizes: Sequence[tuple[int, int]]) -> Tensor:
    """TF `MultipleGridAnchorGenerator` anchors (not clipped), float32 [A, 4] xyxy in [0, 1].

    A box of scale s and aspect ratio a is s * sqrt(a) wide and s / sqrt(a) high, centred
    on each cell; per cell the boxes follow `anchor_specs` order.
    """
    sizes = [
        [(s * math.sqrt(a), s / math.sqrt(a)) for s, a in level] for level in config.anchor_specs
    ]
    return grid_default_boxes(feature_sizes, sizes)


def build_tf_ssd(config: TFSSDConfig) -> SSD:
    """An `SSD` with random weights for `config`, in eval mode."""
    backbone = MobileNetV2Features(config)
    size = (config.input_size, config.input_size)
    anchors = tf_default_boxes(config, feature_map_sizes(backbone, size))
    model = SSD(
        backbone=backbone,
        head=SSDPredictorHead(config),
        anchors=anchors,
        box_coder=BoxCoder(config.box_coder_weights, yx_order=True, clamp=None),
        input_size=size,
        mean=(config.mean,) * 3,  # TF: pixel * 2/255 - 1, i.e. mean = std = 127.5
        std=(config.std,) * 3,
        score_fn="sigmoid" if config.score_fn == "sigmoid" else "softmax",
        background_class=0,
    )
    # Weights in the layout of the activations (loading a state dict keeps it).
    return model.to(memory_format=torch.channels_last).eval()


def save_tf_ssd(
    path: str | os.PathLike[str],
    config: TFSSDConfig,
    state_dict: Mapping[str, Tensor],
    labels: Sequence[str],
    source: Mapping[str, str],
) -> None:
    """Write a converted model: architecture, label names, provenance and weights."""
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "labels": list(labels),
            "source": dict(source),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        },
        Path(path).expanduser(),
    )


def load_tf_ssd(path: str | os.PathLike[str]) -> tuple[SSD, LabelMap]:
    """The model and labels of a file written by `save_tf_ssd` (float32, eval mode)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsUnavailableError(
            f"weights file not found: {file}; convert a TF graph with "
            f"`python -m detector.convert_tf GRAPH.pb {file}` or use `default` (bundled)"
        )
    data = load_file(file, "weights file")
    if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelConfigError(
            f"{file} is not a converted TF SSD model (format {CHECKPOINT_FORMAT}); "
            f"make one with `python -m detector.convert_tf GRAPH.pb OUT.pt`"
        )
    try:
        config = TFSSDConfig.from_dict(data["config"])
        labels = LabelMap(tuple(str(n) for n in data["labels"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelConfigError(f"{file} has a malformed model config ({error})") from error
    if len(labels.names) != config.num_classes:
        raise ModelConfigError(
            f"{file} names {len(labels.names)} labels for {config.num_classes} classes"
        )
    model = build_tf_ssd(config)
    state = {k: v.float() for k, v in data["state_dict"].items()}
    load_checked(model, state, str(file), ARCH)
    return model.eval(), labels


def person_ssdlite(weights: str) -> tuple[SSD, LabelMap]:
    """The bundled SSDLite-MobileNetV2 pedestrian detector (classes: background, person).

    Args:
        weights: "default" (the bundled converted weights, offline), "none" (random) or the
            path of a file written by `python -m detector.convert_tf`.
    """
    choice = weights.strip()
    if choice.lower() == "none":
        return build_tf_ssd(TFSSDConfig()), LabelMap(PERSON_LABELS)
    if choice.lower() == "default":
        if not BUNDLED_WEIGHTS.is_file():
            raise WeightsUnavailableError(
                f"bundled weights missing: {BUNDLED_WEIGHTS}; reinstall the package or rebuild "
                f"them as described in {BUNDLED_WEIGHTS.parent / 'README.md'}"
            )
        return load_tf_ssd(BUNDLED_WEIGHTS)
    return load_tf_ssd(choice)
