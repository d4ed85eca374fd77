"""A parsed TF Object Detection API SSD(Lite) MobileNetV2 graph -> `TFSSDConfig` + state dict.

Derives the architecture (channels, blocks, extra layers, predictors, classes, anchors, box
coder, score function) from the graph's nodes, folds batch norm into the convolutions and
checks every weight is used. `detector.tf_graph` parses the GraphDef; `detector.convert_tf`
reads the file and writes the result.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from detector.tf_graph import Node
from detector.tf_ssd_config import BlockSpec, ExtraSpec, TFSSDConfig

FE = "FeatureExtractor/MobilenetV2/"
ANCHORS = "MultipleGridAnchorGenerator/"
# Names of trainable variables (and batch-norm statistics) in TF-OD-API graphs.
_WEIGHT_NAMES = frozenset(
    ("weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance")
)
_BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")


class ConversionError(ValueError):
    """The graph is not one this converter understands; the message says why, in one line."""


class GraphIndex:
    """Nodes by name, with helpers that follow Identity chains and record used weights."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.nodes

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise ConversionError(f"graph has no node {name!r}") from None

    def source(self, ref: str) -> Node:
        """The node producing input `ref` ("name", "name:1", "^name"), past Identity nodes."""
        node = self.node(ref.lstrip("^").split(":")[0])
        while node.op == "Identity":
            node = self.node(node.inputs[0].split(":")[0])
        return node

    def const(self, ref: str) -> npt.NDArray[np.generic]:
        """Value of the Const feeding `ref`; marks it used."""
        node = self.source(ref)
        if node.op != "Const" or not isinstance(node.attrs.get("value"), np.ndarray):
            raise ConversionError(f"{ref} is computed by a {node.op} node, expected a constant")
        self.used.add(node.name)
        value = node.attrs["value"]
        assert isinstance(value, np.ndarray)
        return value

    def scalar(self, ref: str) -> float:
        value = self.const(ref)
        if value.size != 1:
            raise ConversionError(f"{ref} holds {value.size} values, expected one")
        return float(value.reshape(()))


def folded_conv(
    graph: GraphIndex, scope: str, stride: int | None = None
) -> tuple[Tensor, Tensor, int]:
    """Weights of the conv (+ batch norm or bias) at `scope`, folded to PyTorch layout.

    Returns (weight [out, in/groups, kh, kw], bias [out], stride).
    """
    if graph.has(f"{scope}/Conv2D"):
        op = graph.node(f"{scope}/Conv2D")
    elif graph.has(f"{scope}/depthwise"):
        op = graph.node(f"{scope}/depthwise")
    else:
        raise ConversionError(f"graph has no convolution at {scope}")
    attrs = op.attrs
    if attrs.get("padding") != b"SAME" or attrs.get("data_format", b"NHWC") != b"NHWC":
        raise ConversionError(f"{op.name}: only SAME padding in NHWC is supported")
    strides = attrs.get("strides")
    if not isinstance(strides, list) or len(strides) != 4 or strides[1] != strides[2]:
        raise ConversionError(f"{op.name}: unsupported strides {strides}")
    if any(d != 1 for d in attrs.get("dilations", [1, 1, 1, 1])):  # type: ignore[attr-defined]
        raise ConversionError(f"{op.name}: dilated convolutions are not supported")
    if stride is not None and strides[1] != stride:
        raise ConversionError(f"{op.name}: stride {strides[1]}, expected {stride}")

    w = graph.const(op.inputs[1]).astype(np.float64)
    if w.ndim != 4 or w.shape[0] != w.shape[1]:
        raise ConversionError(f"{op.name}: unexpected kernel shape {list(w.shape)}")
    if op.op == "Conv2D":
        weight = w.transpose(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]
    elif op.op == "DepthwiseConv2dNative":
        kh, kw, cin, mult = w.shape  # output channel c * mult + m reads input channel c
        weight = w.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]
    else:
        raise ConversionError(f"{op.name}: unsupported op {op.op}")
    cout = weight.shape[0]
    bias = np.zeros(cout)

    bn_names = [f"{scope}/BatchNorm/{op}" for op in _BN_OPS if graph.has(f"{scope}/BatchNorm/{op}")]
    if bn_names:
        bn = graph.node(bn_names[0])
        if bn.op not in _BN_OPS or bn.attrs.get("is_training", False):
            raise ConversionError(f"{bn.name}: unsupported batch norm ({bn.op}, training mode)")
        gamma, beta, mean, var = (graph.const(ref).astype(np.float64) for ref in bn.inputs[1:5])
        eps = bn.attrs.get("epsilon", 1e-3)
        assert isinstance(eps, float)
        scale = gamma / np.sqrt(var + eps)
        weight = weight * scale[:, None, None, None]
        bias = beta - mean * scale
    elif graph.has(f"{scope}/BiasAdd"):
        bias = graph.const(graph.node(f"{scope}/BiasAdd").inputs[1]).astype(np.float64)
    elif graph.has(f"{scope}/BatchNorm/batchnorm/add_1"):
        raise ConversionError(f"{scope}: unfused batch norm is not supported; export with fused BN")
    if bias.shape != (cout,):
        raise ConversionError(f"{scope}: bias of shape {list(bias.shape)} for {cout} channels")
    return (
        torch.from_numpy(weight.astype(np.float32)),
        torch.from_numpy(bias.astype(np.float32)),
        int(strides[1]),
    )


def _put(state: dict[str, Tensor], key: str, conv: tuple[Tensor, Tensor, int]) -> None:
    state[f"{key}.weight"], state[f"{key}.bias"] = conv[0], conv[1]


def _numbered(graph: GraphIndex, pattern: str) -> list[re.Match[str]]:
    """Matches of `pattern` over node names, sorted by their first group as an integer."""
    rx = re.compile(pattern)
    found = [m for m in (rx.fullmatch(n) for n in graph.nodes) if m]
    return sorted(found, key=lambda m: int(m.group(1)))


def _check_kind(graph: GraphIndex) -> None:
    if any(n.startswith("FeatureExtractor/MobilenetV1/") for n in graph.nodes):
        raise ConversionError(
            "this is an SSD MobileNet V1 graph; only SSD/SSDLite MobileNetV2 graphs are supported"
        )
    if not graph.has(f"{FE}Conv/Conv2D") or not graph.has("BoxPredictor_0/ClassPredictor/Conv2D"):
        raise ConversionError(
            "not a TF Object Detection API SSD MobileNetV2 graph (no "
            "FeatureExtractor/MobilenetV2 or BoxPredictor_0 nodes)"
        )


def _block_names(graph: GraphIndex) -> list[str]:
    names = ["expanded_conv"]
    while graph.has(f"{FE}expanded_conv_{len(names)}/depthwise/depthwise"):
        names.append(f"expanded_conv_{len(names)}")
    return names


def _anchor_specs(graph: GraphIndex, levels: int) -> tuple[tuple[tuple[float, float], ...], ...]:
    """(scale, aspect ratio) per box per level, read from the anchor generator's constants."""
    base = graph.const(graph.node(f"{ANCHORS}strided_slice").inputs[0])  # base_anchor_size
    if not np.allclose(base, 1.0):
        raise ConversionError(f"unsupported base_anchor_size {base.tolist()} (expected [1, 1])")
    divisions = {
        graph.source(n.inputs[1]).name: n
        for n in graph.nodes.values()
        if n.name.startswith(ANCHORS) and n.op == "RealDiv"
    }
    specs = []
    for level in range(levels):
        sqrt = graph.node(f"{ANCHORS}Sqrt" + (f"_{level}" if level else ""))
        ratios = graph.const(sqrt.inputs[0]).astype(np.float64)
        if sqrt.name not in divisions:
            raise ConversionError(f"no anchor scales found for {sqrt.name}")
        scales = graph.const(divisions[sqrt.name].inputs[0]).astype(np.float64)
        if ratios.shape != scales.shape or ratios.ndim != 1:
            raise ConversionError(
                f"anchor level {level}: {scales.size} scales, {ratios.size} ratios"
            )
        specs.append(tuple((float(s), float(a)) for s, a in zip(scales, ratios, strict=True)))
    if graph.has(f"{ANCHORS}Sqrt_{levels}"):
        raise ConversionError(f"the anchor generator has more than {levels} levels")
    return tuple(specs)


def convert_graph(nodes: dict[str, Node]) -> tuple[TFSSDConfig, dict[str, Tensor]]:
    """Architecture and PyTorch state dict of a parsed TF-OD-API SSD MobileNetV2 graph.

    Raises ConversionError (one line) when the graph is not one this converter knows.
    """
    graph = GraphIndex(nodes)
    _check_kind(graph)
    state: dict[str, Tensor] = {}

    stem = folded_conv(graph, f"{FE}Conv", stride=2)
    _put(state, "backbone.stem.0", stem)
    blocks = []
    cin = stem[0].shape[0]
    for i, name in enumerate(_block_names(graph)):
        scope = f"{FE}{name}"
        prefix = f"backbone.blocks.{i}"
        expand = 0
        if graph.has(f"{scope}/expand/Conv2D"):
            conv = folded_conv(graph, f"{scope}/expand", stride=1)
            expand = conv[0].shape[0]
            _put(state, f"{prefix}.expand.0", conv)
        depthwise = folded_conv(graph, f"{scope}/depthwise")
        _put(state, f"{prefix}.depthwise.0", depthwise)
        project = folded_conv(graph, f"{scope}/project", stride=1)
        _put(state, f"{prefix}.project", project)
        out = project[0].shape[0]
        residual = graph.has(f"{scope}/add")
        if residual and (depthwise[2] != 1 or cin != out):
            raise ConversionError(f"{scope}: residual add on a block that changes shape")
        blocks.append(BlockSpec(expand, out, depthwise[2], residual))
        cin = out
    last = folded_conv(graph, f"{FE}Conv_1", stride=1)
    _put(state, "backbone.last.0", last)

    extras = []
    for j, m in enumerate(
        _numbered(graph, re.escape(FE) + r"layer_19_1_Conv2d_(\d+)_1x1_\d+/Conv2D")
    ):
        scope_1x1 = m.group(0).rsplit("/", 1)[0]
        k = m.group(1)
        found = _numbered(graph, re.escape(FE) + rf"layer_19_2_Conv2d_({k})_3x3_s2_\d+/Conv2D")
        if len(found) != 1:
            raise ConversionError(f"extra layer {k}: no 3x3 stride-2 conv after {scope_1x1}")
        scope_3x3 = found[0].group(0).rsplit("/", 1)[0]
        prefix = f"backbone.extras.{j}"
        first = folded_conv(graph, scope_1x1, stride=1)
        _put(state, f"{prefix}.0.0", first)
        separable = graph.has(f"{scope_3x3}_depthwise/depthwise")
        if separable:
            _put(state, f"{prefix}.1.0", folded_conv(graph, f"{scope_3x3}_depthwise", stride=2))
            final = folded_conv(graph, scope_3x3, stride=1)
            _put(state, f"{prefix}.2.0", final)
        else:
            final = folded_conv(graph, scope_3x3, stride=2)
            _put(state, f"{prefix}.1.0", final)
        extras.append(ExtraSpec(first[0].shape[0], final[0].shape[0], separable))

    levels = 2 + len(extras)
    head_depthwise = graph.has("BoxPredictor_0/BoxEncodingPredictor_depthwise/depthwise")
    head_kernel = 1
    anchors_per_level = []
    num_classes = 0
    for i in range(levels):
        for kind, key in (("BoxEncodingPredictor", "box"), ("ClassPredictor", "cls")):
            scope = f"BoxPredictor_{i}/{kind}"
            if head_depthwise:
                _put(
                    state, f"head.{key}.{i}.0.0", folded_conv(graph, f"{scope}_depthwise", stride=1)
                )
                conv = folded_conv(graph, scope, stride=1)
                _put(state, f"head.{key}.{i}.1", conv)
            else:
                conv = folded_conv(graph, scope, stride=1)
                head_kernel = conv[0].shape[-1]
                _put(state, f"head.{key}.{i}.0", conv)
            if key == "box":
                if conv[0].shape[0] % 4:
                    raise ConversionError(f"{scope}: {conv[0].shape[0]} outputs, not 4 per box")
                anchors_per_level.append(conv[0].shape[0] // 4)
            else:
                num_classes = conv[0].shape[0] // anchors_per_level[-1]
    if graph.has(f"BoxPredictor_{levels}/BoxEncodingPredictor/Conv2D"):
        raise ConversionError(f"graph has more box predictors than its {levels} feature maps")

    tap = graph.source(
        graph.node(
            "BoxPredictor_0/BoxEncodingPredictor"
            + ("_depthwise/depthwise" if head_depthwise else "/Conv2D")
        ).inputs[0]
    ).name
    match = re.fullmatch(re.escape(FE) + r"expanded_conv_(\d+)/expand/Relu6", tap)
    if not match:
        raise ConversionError(f"first feature map is {tap}, expected a block's expansion output")

    specs = _anchor_specs(graph, levels)
    if [len(s) for s in specs] != anchors_per_level:
        raise ConversionError(
            f"anchor generator makes {[len(s) for s in specs]} boxes per cell, "
            f"predictors expect {anchors_per_level}"
        )
    size = graph.const("Preprocessor/map/while/ResizeImage/stack")
    if size.shape != (2,) or size[0] != size[1]:
        raise ConversionError(f"unsupported input size {size.tolist()} (expected square)")
    scale, offset = graph.scalar("Preprocessor/mul/x"), graph.scalar("Preprocessor/sub/y")
    score_op = graph.node("Postprocessor/convert_scores").op
    if score_op not in ("Sigmoid", "Softmax"):
        raise ConversionError(f"unsupported score conversion {score_op}")

    config = TFSSDConfig(
        input_size=int(size[0]),
        num_classes=num_classes,
        stem=stem[0].shape[0],
        blocks=tuple(blocks),
        last=last[0].shape[0],
        tap_block=int(match.group(1)),
        extras=tuple(extras),
        head_depthwise=head_depthwise,
        head_kernel=head_kernel,
        anchor_specs=specs,
        box_coder_weights=tuple(  # type: ignore[arg-type]
            graph.scalar(f"Postprocessor/Decode/truediv{s}/y") for s in ("", "_1", "_2", "_3")
        ),
        logit_scale=graph.scalar("Postprocessor/scale_logits/y"),
        score_fn=score_op.lower(),
        mean=offset / scale,  # pixel * scale - offset == (pixel - offset / scale) * scale
        std=1.0 / scale,
    )
    unused = sorted(
        n.name
        for n in graph.nodes.values()
        if n.op == "Const"
        and n.name.startswith(("FeatureExtractor/", "BoxPredictor"))
        and n.name.rsplit("/", 1)[-1] in _WEIGHT_NAMES
        and n.name not in graph.used
    )
    if unused:
        raise ConversionError(f"{len(unused)} weights the converter does not map, e.g. {unused[0]}")
    return config, state
