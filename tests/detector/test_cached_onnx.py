"""A run's detector from the cache: what the `Detector` finds, and only where it may be used."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from detector import Detector, DetectorRequest
from detector.cached_onnx import CachedOnnxDetector, bundle_path
from detector.measured_int8 import Int8Measurement, file_digest, network_path
from detector.options import DetectorOptions
from pipeline.types import Frame

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "pedestrians.mp4"


def sample_frames(count: int) -> list[Frame]:
    frames = []
    with av.open(str(SAMPLE)) as container:
        for i, image in enumerate(container.decode(video=0)):
            if i % 10 == 0:
                frames.append(Frame("lobby", i, 0.0, 0.0, image.to_ndarray(format="rgb24")))
            if len(frames) == count:
                break
    return frames


@pytest.fixture(scope="module")
def onnx_detector() -> Detector:
    """The bundled person model's float32 network run by onnxruntime, kept for the next run
    as a run keeps it."""
    request = DetectorRequest(device="cpu", runtime="onnxruntime", precision="fp32")
    detector = Detector.build(request)
    assert detector.onnx_file is not None
    CachedOnnxDetector.keep(detector.options, detector.model, detector.labels, detector.onnx_file)
    return detector


@pytest.fixture
def fp32_onnx(onnx_detector: Detector) -> DetectorOptions:
    return onnx_detector.options


def test_cached_detector_finds_exactly_the_boxes_the_detector_finds_on_the_sample_clip(
    onnx_detector: Detector,
) -> None:
    """The same resize feeds both the same pixels, so a run finds the same boxes whether its
    network came from the cache or was just built (a run's first time, or after an update)."""
    cached = CachedOnnxDetector.open(onnx_detector.options)
    assert cached is not None
    assert cached.describe() == onnx_detector.describe()
    assert cached.labels == onnx_detector.labels
    frames = sample_frames(8)
    found = 0
    for want, have in zip(onnx_detector.detect(frames), cached.detect(frames), strict=True):
        assert len(want) == len(have)
        np.testing.assert_allclose(have.xyxy, want.xyxy, atol=1e-3)
        np.testing.assert_allclose(have.score, want.score, atol=1e-5)
        np.testing.assert_array_equal(have.label, want.label)
        found += len(want)
    assert found >= 8  # the clip has people to find


Outputs = tuple[np.ndarray, np.ndarray]


class AlteredOutputs:
    """An ONNX Runtime session whose network's outputs (box_regression, class_logits) pass
    through `alter` (on copies) before post-processing."""

    def __init__(self, session: Any, alter: Callable[[Outputs], None]) -> None:
        self.session = session
        self.alter = alter

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        box_regression, class_logits = (o.copy() for o in self.session.run(outputs, feeds))
        self.alter((box_regression, class_logits))
        return [box_regression, class_logits]


def nan_boxes_for_the_first_frame(outputs: Outputs) -> None:
    outputs[0][0] = np.nan


def nan_scores_for_the_first_frames_worst_anchors(outputs: Outputs) -> None:
    """NaN class logits for the 100 anchors of the first frame that score lowest: far below
    its best `pre_nms_top_k`."""
    class_logits = outputs[1]
    worst = np.argsort(class_logits[0, :, 1])[:100]  # the person column
    class_logits[0, worst] = np.nan


def test_boxes_the_cached_network_gives_as_nan_are_dropped_and_said_once(
    onnx_detector: Detector, caplog: pytest.LogCaptureFixture
) -> None:
    cached = CachedOnnxDetector.open(onnx_detector.options)
    assert cached is not None
    frames = sample_frames(3)
    before = cached.detect(frames)
    assert all(len(d) > 0 for d in before)
    cached.session = AlteredOutputs(cached.session, nan_boxes_for_the_first_frame)
    with caplog.at_level(logging.WARNING, logger="detector"):
        for _ in range(2):
            after = cached.detect(frames)
            assert len(after[0]) == 0
            for have, want in zip(after[1:], before[1:], strict=True):
                np.testing.assert_array_equal(have.xyxy, want.xyxy)
    (said,) = [r.getMessage() for r in caplog.records]  # two batches, one warning
    assert said.startswith(f"model {onnx_detector.options.request.model} produced ")
    assert "boxes with non-finite coordinates or scores" in said


def test_nan_scores_outside_the_best_candidates_change_no_box_and_are_said(
    onnx_detector: Detector, caplog: pytest.LogCaptureFixture
) -> None:
    cached = CachedOnnxDetector.open(onnx_detector.options)
    assert cached is not None
    assert onnx_detector.options.request.pre_nms_top_k < 1917 - 100  # the model's anchors
    frames = sample_frames(2)
    before = cached.detect(frames)
    cached.session = AlteredOutputs(cached.session, nan_scores_for_the_first_frames_worst_anchors)
    with caplog.at_level(logging.WARNING, logger="detector"):
        after = cached.detect(frames)
    for have, want in zip(after, before, strict=True):
        np.testing.assert_array_equal(have.xyxy, want.xyxy)
        np.testing.assert_array_equal(have.score, want.score)
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"model {onnx_detector.options.request.model} produced 100 boxes ")


def test_a_damaged_bundle_is_not_used(fp32_onnx: DetectorOptions) -> None:
    path = bundle_path(fp32_onnx)
    assert path is not None
    good = path.read_bytes()
    try:
        path.write_bytes(good[: len(good) // 2])
        assert CachedOnnxDetector.open(fp32_onnx) is None
    finally:
        path.write_bytes(good)
    assert CachedOnnxDetector.open(fp32_onnx) is not None


def test_a_bundle_naming_a_class_too_long_for_the_sql_tables_is_not_used(
    fp32_onnx: DetectorOptions, tmp_path: Path
) -> None:
    path = bundle_path(fp32_onnx)
    assert path is not None
    good = path.read_bytes()
    with np.load(path) as data:
        meta, anchors = json.loads(str(data["meta"])), data["anchors"]
    meta["labels"][-1] = "p" * 129  # as a version that did not check kept it
    try:
        np.savez(tmp_path / "long.npz", anchors=anchors, meta=np.array(json.dumps(meta)))
        path.write_bytes((tmp_path / "long.npz").read_bytes())
        assert CachedOnnxDetector.open(fp32_onnx) is None
    finally:
        path.write_bytes(good)
    assert CachedOnnxDetector.open(fp32_onnx) is not None


def test_the_bundle_is_per_calibration_clip_and_weights(tmp_path: Path) -> None:
    def path(**asked: object) -> Path | None:
        return bundle_path(DetectorOptions.resolve(DetectorRequest(device="cpu", **asked)))  # type: ignore[arg-type]

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"one clip")
    int8 = path(runtime="onnxruntime", precision="int8", calibration=clip)
    clip.write_bytes(b"another clip")
    assert path(runtime="onnxruntime", precision="int8", calibration=clip) != int8
    assert path(runtime="onnxruntime", precision="fp32") not in (None, int8)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"weights")
    assert path(runtime="onnxruntime", precision="fp32", weights=str(weights)) != path(
        runtime="onnxruntime", precision="fp32"
    )


def test_the_bundle_of_a_checkpoint_in_int8_is_per_measured_network(tmp_path: Path) -> None:
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"trained weights")
    network = network_path(checkpoint)

    def measured(network_bytes: bytes) -> Path | None:
        network.write_bytes(network_bytes)
        Int8Measurement(
            file_digest(checkpoint), file_digest(network), 0.8, 0.8, 4, 8, "", True
        ).save(checkpoint)
        asked = DetectorRequest(model=str(checkpoint), device="cpu", precision="int8")
        options = DetectorOptions.resolve(asked)
        assert options.int8_network == network
        return bundle_path(options)

    first = measured(b"an int8 network")
    assert measured(b"the int8 network of a second measurement") not in (None, first)


def test_no_bundle_for_torch_random_weights_or_several_workers() -> None:
    def path(**asked: object) -> Path | None:
        return bundle_path(DetectorOptions.resolve(DetectorRequest(device="cpu", **asked)))  # type: ignore[arg-type]

    assert path(runtime="torch") is None
    assert path(runtime="onnxruntime", weights="none") is None
    assert path(runtime="onnxruntime", workers=2) is None
