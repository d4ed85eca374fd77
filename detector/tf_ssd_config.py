"""Architecture of a TF Object Detection API SSD / SSDLite MobileNetV2 model, as plain data.

`TFSSDConfig` says what to build (channels, inverted-residual blocks, extra layers,
predictors, anchors, box coder, score function, input normalisation); `detector.tf_ssd_layers`
holds the modules built from it, `detector.tf_ssd` builds, saves and loads the model, and
`detector.tf_convert_graph` reads a config out of a frozen graph. The defaults are the
bundled person graph.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


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
