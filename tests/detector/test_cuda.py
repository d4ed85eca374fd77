"""The CUDA path on a real GPU: fp16 follows fp32, pipelined batches equal `detect`.

Skipped without CUDA (CI has none); the same logic is covered on the CPU by faking CUDA in
`test_engine_paths.py`. Run on a GPU machine with `pytest tests/detector/test_cuda.py`.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from detector.agreement import compare
from detector.engine import Detector
from detector.quantize import DEFAULT_CALIBRATION
from detector.ssd import SSD
from pipeline.types import Detections, Frame, LabelMap
from tests.detector.building import make_detector

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PERSON = LabelMap(("background", "person"))


@pytest.fixture(scope="module")
def clip_frames() -> list[Frame]:
    with av.open(str(DEFAULT_CALIBRATION)) as clip:
        images = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)][::5]
    return [Frame("cam", i, 0.0, 0.0, image) for i, image in enumerate(images)]


def batches(detector: Detector, frames: list[Frame], size: int = 8) -> list[Detections]:
    return [d for i in range(0, len(frames), size) for d in detector.detect(frames[i : i + size])]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_detections_follow_float32(
    person: SSD, clip_frames: list[Frame], precision: str
) -> None:
    fp32 = make_detector(person, PERSON, device="cuda", precision="fp32")
    half = make_detector(person, PERSON, device="cuda", precision=precision)
    result = compare(batches(fp32, clip_frames), batches(half, clip_frames))
    assert result.reference > 50
    assert result.recall >= 0.95 and result.precision >= 0.95
    assert float(np.mean(result.ious)) >= 0.95


def test_cuda_detections_follow_the_cpu(person: SSD, clip_frames: list[Frame]) -> None:
    cpu = make_detector(person, PERSON, runtime="torch")
    cuda = make_detector(person, PERSON, device="cuda", precision="fp32")
    result = compare(batches(cpu, clip_frames), batches(cuda, clip_frames))
    # Both see the same uint8 pixels; TF32 convolutions move boxes a little, not in number.
    assert result.recall >= 0.97 and result.precision >= 0.97


def test_batches_in_flight_give_what_detect_gives(person: SSD, clip_frames: list[Frame]) -> None:
    detector = make_detector(person, PERSON, device="cuda")
    assert detector.pipelined
    first, second = clip_frames[:8], clip_frames[8:16]
    expected = detector.detect(first) + detector.detect(second)
    pending = [detector.submit(first), detector.submit(second)]
    got = [d for p in pending for d in p.result()]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.score, b.score, atol=1e-4)


def test_a_padded_batch_gives_each_frame_its_own_detections(
    person: SSD, clip_frames: list[Frame]
) -> None:
    detector = make_detector(person, PERSON, device="cuda", precision="fp32", batch_size=8)
    assert detector.options.forward_rows(3) == 4  # one black image pads the batch
    together = detector.detect(clip_frames[:3])
    for frame, got in zip(clip_frames[:3], together, strict=True):
        (alone,) = detector.detect([frame])
        np.testing.assert_array_equal(got.label, alone.label)
        np.testing.assert_allclose(got.xyxy, alone.xyxy, atol=1e-2)
        np.testing.assert_allclose(got.score, alone.score, atol=1e-3)


def test_a_cuda_detector_turns_cudnn_autotuning_on(
    person: SSD, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    make_detector(person, PERSON, device="cuda")
    assert torch.backends.cudnn.benchmark


def test_frames_resized_ahead_give_what_frames_resized_by_the_detector_give(
    person: SSD, clip_frames: list[Frame]
) -> None:
    """A run's readers resize ahead (`Frame.model_image`); `detect` on full frames resizes
    the same way on the host, so the boxes are the same."""
    detector = make_detector(person, PERSON, device="cuda", precision="fp32")
    ahead = [
        Frame(f.camera_id, f.index, f.pts, f.wall_time, f.image, detector.model_image(f.image))
        for f in clip_frames[:8]
    ]
    for a, b in zip(detector.detect(ahead), detector.detect(clip_frames[:8]), strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.score, b.score, atol=1e-4)


def test_a_warm_up_runs_each_padded_batch_size_and_changes_no_detections(
    person: SSD, clip_frames: list[Frame]
) -> None:
    detector = make_detector(person, PERSON, device="cuda", precision="fp32", batch_size=8)
    assert detector.options.warm_up_batches() == [1, 2, 4, 8]
    before = detector.detect(clip_frames[:8])
    detector.warm_up()
    for a, b in zip(before, detector.detect(clip_frames[:8]), strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
