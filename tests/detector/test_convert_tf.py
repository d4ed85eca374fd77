"""The TF frozen-graph converter's file and CLI side: refusals, real round trip."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from detector.convert_tf import ConversionError, convert_file, main
from detector.tf_graph import GraphFormatError, Node, parse_graph_def, serialize_graph_def
from detector.tf_ssd import BUNDLED_WEIGHTS, load_tf_ssd
from tests.detector.tf_graphs import WHEEL_SHA256, conv_graph, local_wheel, needs_wheel

GOLDEN = Path(__file__).parent / "fixtures" / "tf_person_ssdlite_golden.npz"


def _write(path: Path, nodes: list[Node]) -> Path:
    path.write_bytes(serialize_graph_def(nodes))
    return path


def test_converter_refuses_a_graph_that_is_not_an_ssd(tmp_path: Path) -> None:
    nodes, _ = conv_graph(False, np.random.default_rng(0))
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
    nodes, _ = conv_graph(False, np.random.default_rng(0))
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


@needs_wheel
def test_converting_the_real_graph_reproduces_the_bundled_weights(tmp_path: Path) -> None:
    wheel = local_wheel()
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


def test_an_output_path_that_cannot_be_written_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import detector.convert_tf as convert_tf

    def save_there(graph: str, out: str, labels: list[str], half: bool = False) -> None:
        torch.save({}, out)  # what convert_file ends with

    monkeypatch.setattr(convert_tf, "convert_file", save_there)
    out = tmp_path / "no-such-folder" / "model.pt"
    assert main(["graph.pb", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {out}") and "Traceback" not in err
