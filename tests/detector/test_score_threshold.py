"""`score_threshold` means the same whatever runs the network: a box scoring exactly the
threshold is reported, one scoring just below it is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detector import host, onnx_runtime
from detector.engine import Detector
from pipeline.types import Detections, Frame, LabelMap
from tests.detector.building import cpu_options
from tests.detector.test_onnx_runtime import tiny_ssd

LABELS = LabelMap(("background", "thing"))
NEEDS_ONNXRUNTIME = pytest.mark.skipif(
    not host.onnxruntime_available(), reason="onnxruntime, onnx or onnxscript missing"
)
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def frames(count: int = 4) -> list[Frame]:
    """Smooth random 16x16 frames: the tiny network's input size, no resize."""
    g = np.random.default_rng(1)
    ramp = np.linspace(0, 255, 16, dtype=np.float32)[None, :, None]
    images = [
        np.clip(ramp * g.uniform(0.2, 1.0, 3) + g.normal(0, 20, (16, 16, 3)), 0, 255)
        for _ in range(count)
    ]
    return [Frame("cam", i, 0.0, 0.0, image.astype(np.uint8)) for i, image in enumerate(images)]


def detected(device: str, runtime: str, precision: str, threshold: float) -> list[Detections]:
    calibration = [f.image for f in frames()] if precision == "int8" else None
    options = cpu_options(
        device=device, runtime=runtime, precision=precision, score_threshold=threshold
    )
    detector = Detector(tiny_ssd(0), LABELS, options, calibration=calibration)
    chosen = (detector.device.type, detector.runtime, detector.precision)
    assert chosen == (device, runtime, precision)
    return detector.detect(frames())


@pytest.mark.parametrize(
    ("device", "runtime", "precision"),
    [
        ("cpu", "torch", "fp32"),
        pytest.param("cpu", "onnxruntime", "fp32", marks=NEEDS_ONNXRUNTIME),
        pytest.param("cpu", "onnxruntime", "int8", marks=NEEDS_ONNXRUNTIME),
        pytest.param("cuda", "torch", "fp32", marks=NEEDS_CUDA),
        pytest.param("cuda", "torch", "fp16", marks=NEEDS_CUDA),
    ],
)
def test_a_box_scoring_exactly_the_threshold_is_kept_and_one_just_below_dropped(
    device: str,
    runtime: str,
    precision: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    asked = (device, runtime, precision)
    everything = np.concatenate([d.score for d in detected(*asked, 0.0)])
    score = float(np.sort(everything)[len(everything) // 2])  # exact as a Python float
    at = np.concatenate([d.score for d in detected(*asked, score)])
    assert (at == np.float32(score)).any() and (at >= np.float32(score)).all()
    just_above = float(np.nextafter(np.float32(score), np.float32(1)))
    above = np.concatenate([d.score for d in detected(*asked, just_above)])
    assert not (above == np.float32(score)).any()
    assert len(above) == len(at) - int((at == np.float32(score)).sum())
