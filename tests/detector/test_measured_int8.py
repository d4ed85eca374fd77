"""`precision: auto` runs a checkpoint in int8 only where its int8 network, kept beside it,
was measured within `MAX_MAP50_LOSS` of float32; the start line says which figures decided,
and a record that does not belong to the file beside it counts as none."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector import host
from detector.measured_int8 import (
    MAX_MAP50_LOSS,
    Int8Measurement,
    file_digest,
    measured_int8,
    network_path,
    record_path,
)
from detector.options import DetectorOptions
from detector.request import DetectorRequest


@pytest.fixture
def onnxruntime_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "onnxruntime_available", lambda: True)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A checkpoint and an int8 network beside it (their bytes only: nothing here loads them)."""
    path = tmp_path / "best.pt"
    path.write_bytes(b"weights of a trained model")
    network_path(path).write_bytes(b"its int8 network")
    return path


def measured(checkpoint: Path, fp32: float, int8: float) -> Int8Measurement:
    found = Int8Measurement(
        checkpoint_sha256=file_digest(checkpoint),
        network_sha256=file_digest(network_path(checkpoint)),
        fp32_map50=fp32,
        int8_map50=int8,
        images=20,
        calibration_images=50,
        recipe="test",
        vnni=True,
    )
    found.save(checkpoint)
    return found


def auto(checkpoint: Path) -> DetectorOptions:
    return DetectorOptions.resolve(DetectorRequest(model=str(checkpoint), device="cpu"))


def test_auto_runs_the_measured_int8_network_where_int8_lost_at_most_the_bound(
    checkpoint: Path, vnni: None, onnxruntime_here: None
) -> None:
    found = measured(checkpoint, fp32=0.8, int8=0.8 - MAX_MAP50_LOSS)
    resolved = auto(checkpoint)
    assert (resolved.precision, resolved.runtime) == ("int8", "onnxruntime")
    assert resolved.int8_network == network_path(checkpoint)
    assert resolved.reasons["precision"] == (
        f"int8: {found.describe()} and this CPU has 8-bit dot products (VNNI)"
    )
    assert "0.790 against float32's 0.800 on 20 validation images" in resolved.describe()
    assert f"int8 (measured: {network_path(checkpoint).name})" in resolved.describe()


def test_auto_keeps_float32_where_int8_lost_more_than_the_bound(
    checkpoint: Path, vnni: None, onnxruntime_here: None
) -> None:
    found = measured(checkpoint, fp32=0.8, int8=0.8 - MAX_MAP50_LOSS - 0.002)
    resolved = auto(checkpoint)
    assert resolved.precision == "fp32" and resolved.int8_network is None
    assert resolved.reasons["precision"] == f"fp32: int8 lost too much: {found.describe()}"


def test_asked_int8_runs_the_measured_network_even_beyond_the_bound(
    checkpoint: Path, onnxruntime_here: None
) -> None:
    measured(checkpoint, fp32=0.8, int8=0.5)
    asked = DetectorOptions.resolve(
        DetectorRequest(model=str(checkpoint), device="cpu", precision="int8")
    )
    assert asked.precision == "int8" and asked.int8_network == network_path(checkpoint)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("checkpoint", "best.int8.json measured another best.pt"),
        ("network", "best.int8.onnx is not the int8 network measured"),
        ("record", "is unreadable"),
    ],
)
def test_a_record_that_is_not_of_the_files_beside_it_counts_as_none(
    checkpoint: Path, vnni: None, onnxruntime_here: None, change: str, said: str
) -> None:
    measured(checkpoint, fp32=0.8, int8=0.8)
    changed = {
        "checkpoint": checkpoint,
        "network": network_path(checkpoint),
        "record": record_path(checkpoint),
    }[change]
    changed.write_bytes(b"trained again")
    assert measured_int8(checkpoint).measurement is None
    resolved = auto(checkpoint)
    assert resolved.precision == "fp32" and resolved.int8_network is None
    assert said in resolved.reasons["precision"]


def test_without_a_record_auto_says_where_it_looked_and_who_writes_one(
    checkpoint: Path, vnni: None, onnxruntime_here: None
) -> None:
    resolved = auto(checkpoint)
    assert resolved.reasons["precision"] == (
        "fp32: no int8 measurement beside it (best.int8.json); `python -m pipeline train` "
        "measures the checkpoints it writes"
    )


def test_a_measured_checkpoint_still_needs_8_bit_dot_products_for_auto_int8(
    checkpoint: Path, onnxruntime_here: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host, "has_int8_dot_products", lambda cpuinfo=None: False)
    measured(checkpoint, fp32=0.8, int8=0.8)
    resolved = auto(checkpoint)
    assert resolved.precision == "fp32"
    assert "no 8-bit dot products" in resolved.reasons["precision"]
