"""Graph to weights: batch norm folded into TF convs, unmapped or missing weights refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector.convert_tf import read_graph_bytes
from detector.tf_convert_graph import ConversionError, GraphIndex, convert_graph, folded_conv
from detector.tf_graph import Node, parse_graph_def, serialize_graph_def
from detector.tf_ssd_layers import SameConv2d
from tests.detector.tf_graphs import const_node, conv_graph, local_wheel, needs_wheel


def _with_strides(nodes: list[Node]) -> dict[str, Node]:
    # The test writer stores ints/bytes/arrays; list and float attrs are added after parsing.
    parsed = parse_graph_def(serialize_graph_def(nodes))
    for node in parsed.values():
        if node.op in ("Conv2D", "DepthwiseConv2dNative"):
            node.attrs["strides"] = [1, 1, 1, 1]
        if node.op == "FusedBatchNorm":
            node.attrs["epsilon"] = 1e-3
    return parsed


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv1x1", "depthwise3x3"])
def test_folded_conv_computes_what_tf_conv_and_batch_norm_compute(depthwise: bool) -> None:
    rng = np.random.default_rng(0)
    nodes, w = conv_graph(depthwise, rng)
    weight, bias, stride = folded_conv(GraphIndex(_with_strides(nodes)), "unit")
    x = rng.normal(size=(1, 5, 6, 3))  # NHWC
    # Reference: TF semantics written out in numpy (SAME padding, stride 1).
    if depthwise:
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        y = sum(
            padded[:, i : i + 5, j : j + 6, :] * w["kernel"][i, j, :, 0]
            for i in range(3)
            for j in range(3)
        )
    else:
        y = x @ w["kernel"][0, 0]
    y = (y - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3) * w["gamma"] + w["beta"]

    conv = SameConv2d(3, weight.shape[0], weight.shape[-1], stride, groups=3 if depthwise else 1)
    with torch.no_grad():
        conv.weight.copy_(weight)
        assert conv.bias is not None
        conv.bias.copy_(bias)
        ours = conv(torch.from_numpy(x).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(ours.numpy(), y, rtol=1e-5, atol=1e-5)


@needs_wheel
def test_converter_refuses_real_graph_with_an_unknown_or_missing_weight() -> None:
    wheel = local_wheel()
    assert wheel is not None
    nodes = parse_graph_def(read_graph_bytes(wheel))
    extra = dict(nodes)
    name = "FeatureExtractor/MobilenetV2/mystery/weights"
    extra[name] = const_node(name, np.ones((1, 1, 8, 8), np.float32))
    with pytest.raises(ConversionError, match="1 weights the converter does not map"):
        convert_graph(extra)
    missing = {k: v for k, v in nodes.items() if k != "BoxPredictor_3/ClassPredictor/biases"}
    with pytest.raises(ConversionError, match="BoxPredictor_3/ClassPredictor/biases"):
        convert_graph(missing)
