"""The engine's fast paths give the answers of the plain ones, and pick CUDA-only paths
(pinned memory, autocast) only for CUDA devices. Runs on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detector import engine
from detector.engine import Detector, fold_batch_norms, prepare_model, resolve_precision
from detector.errors import ModelConfigError
from detector.ssd import SSD
from detector.tf_ssd import SameConv2d, person_ssdlite
from detector.torchvision_models import from_torchvision
from pipeline.types import Frame, LabelMap
from tests.detector import random_models

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
PHOTO = Path(__file__).resolve().parents[2] / "docs" / "images" / "lobby.jpg"
PERSON = LabelMap(("background", "person"))


@pytest.fixture(scope="module")
def calibrated_ssdlite() -> SSD:
    """Random SSDLite320 with batch-norm statistics measured on noise (non-trivial BNs)."""
    return from_torchvision(random_models.calibrated_ssdlite(seed=0))


@pytest.fixture(scope="module")
def person() -> SSD:
    return person_ssdlite("default")[0]


def frames(count: int, height: int = 240, width: int = 320) -> list[Frame]:
    rng = np.random.default_rng(3)
    return [
        Frame("cam", i, 0.0, 0.0, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for i in range(count)
    ]


def test_folded_batch_norms_give_the_same_outputs_and_leave_the_model_alone(calibrated_ssdlite):
    count = sum(isinstance(m, torch.nn.BatchNorm2d) for m in calibrated_ssdlite.modules())
    prepared = prepare_model(calibrated_ssdlite, CPU)
    assert count > 50
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in calibrated_ssdlite.modules()) == count
    images = torch.randint(0, 256, (2, 3, 320, 320), dtype=torch.uint8).float()
    with torch.inference_mode():
        expected = calibrated_ssdlite(images)
        folded = prepared(images.contiguous(memory_format=torch.channels_last))
    for a, b in zip(folded, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_batch_norm_not_after_a_conv_is_kept():
    seq = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 1))
    fold_batch_norms(seq)
    assert isinstance(seq[0], torch.nn.BatchNorm2d)


def photo_frames(count: int) -> list[Frame]:
    """Crops of a real photo of people (the README's frame), RGB."""
    bgr = cv2.imread(str(PHOTO))
    assert bgr is not None, f"missing {PHOTO}"
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    return [Frame("cam", i, 0.0, 0.0, rgb[i * 20 :, i * 30 :].copy()) for i in range(count)]


def test_micro_batches_give_the_detections_of_one_pass(person):
    batch = photo_frames(5)
    options = {"score_threshold": 0.05, "runtime": "torch"}  # onnxruntime takes whole batches
    whole = Detector(person, PERSON, "cpu", micro_batch=8, **options).detect(batch)
    split = Detector(person, PERSON, "cpu", micro_batch=2, **options).detect(batch)
    assert sum(len(d) for d in whole) > 0
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_cpu_uses_small_micro_batches_and_cuda_one_pass(person):
    assert Detector(person, PERSON, "cpu").micro_batch == engine.CPU_MICRO_BATCH
    with pytest.raises(ModelConfigError, match="micro_batch must be >= 1"):
        Detector(person, PERSON, "cpu", micro_batch=0)


def test_uint8_resize_is_within_one_grey_level_of_float_resize(person):
    batch = frames(3, 576, 768)
    fast = Detector(person, PERSON, "cpu")._model_input(batch)
    exact = Detector(person, PERSON, "cpu", exact_resize=True)._model_input(batch)
    assert fast.dtype == torch.uint8 and exact.dtype == torch.float32
    assert fast.shape == exact.shape == (3, 3, 300, 300)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    error = (fast.float() - exact).abs()
    assert error.max() < 1.05 and error.mean() < 0.4  # rounding, with fixed-point weights


def test_mixed_frame_sizes_are_resized_per_group_into_one_batch(person):
    batch = [*frames(1, 240, 320), *frames(1, 300, 300), *frames(1, 120, 160)]
    detector = Detector(person, PERSON, "cpu")
    together = detector._model_input(batch)
    for i, f in enumerate(batch):
        torch.testing.assert_close(together[i], detector._model_input([f])[0])


def test_precision_auto_is_fp16_on_cuda_and_fp32_on_the_cpu():
    assert resolve_precision("auto", CPU) is None
    assert resolve_precision("fp32", CUDA) is None
    assert resolve_precision("auto", CUDA) == torch.float16
    assert resolve_precision("BF16", CUDA) == torch.bfloat16


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_the_cpu_is_a_config_error(precision):
    with pytest.raises(ModelConfigError, match=f"precision {precision} needs a CUDA device"):
        resolve_precision(precision, CPU)


def test_unknown_precision_is_a_config_error_listing_the_valid_ones():
    with pytest.raises(ModelConfigError, match=r"invalid precision 'fp8'.*fp32, fp16, bf16"):
        resolve_precision("fp8", CPU)


class _RecordingTensor(torch.Tensor):
    """Records `.to` calls instead of copying (stands in for a CUDA transfer)."""

    calls: ClassVar[list[tuple[Any, ...]]] = []

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        _RecordingTensor.calls.append((args, kwargs))
        return self.as_subclass(torch.Tensor)


def test_cuda_upload_stacks_into_pinned_memory_and_copies_without_blocking(monkeypatch):
    pinned: list[bool] = []
    real_empty = torch.empty

    def fake_empty(*shape: Any, **kwargs: Any) -> torch.Tensor:
        pinned.append(bool(kwargs.pop("pin_memory", False)))
        return real_empty(*shape, **kwargs).as_subclass(_RecordingTensor)

    monkeypatch.setattr(torch, "empty", fake_empty)
    _RecordingTensor.calls = []
    images = [f.image for f in frames(2, 12, 16)]
    out = engine._upload(images, CUDA)
    assert pinned == [True]
    assert _RecordingTensor.calls == [((CUDA,), {"non_blocking": True})]
    np.testing.assert_array_equal(out.numpy(), np.stack(images))


def test_cpu_upload_uses_no_pinned_memory(monkeypatch):
    monkeypatch.setattr(torch, "empty", pytest.fail)  # the CPU path must not allocate pinned
    images = [f.image for f in frames(2, 12, 16)]
    out = engine._upload(images, CPU)
    assert out.dtype == torch.uint8 and not out.is_pinned()
    np.testing.assert_array_equal(out.numpy(), np.stack(images))


def test_small_tensors_reach_cuda_through_pinned_memory_without_blocking(monkeypatch):
    # frame sizes and the rows of mixed-size batches: from pageable memory the copy would
    # wait for the stream, i.e. for the batch before
    pinned: list[torch.Tensor] = []

    def fake_pin_memory(self: torch.Tensor) -> torch.Tensor:
        pinned.append(self)
        return self.clone().as_subclass(_RecordingTensor)

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin_memory)
    _RecordingTensor.calls = []
    host = torch.tensor([[240.0, 320.0], [120.0, 160.0]])
    out = engine._to_device(host, CUDA)
    assert len(pinned) == 1 and pinned[0] is host
    assert _RecordingTensor.calls == [((CUDA,), {"non_blocking": True})]
    torch.testing.assert_close(out, host)
    _RecordingTensor.calls = []
    assert engine._to_device(host, CPU) is host and pinned == [host]  # the CPU: nothing to copy


@pytest.mark.parametrize("size", [(10, 9), (9, 10), (10, 10), (7, 7)])
def test_same_conv_grown_kernel_equals_explicit_tf_padding(size):
    torch.manual_seed(0)
    conv = SameConv2d(4, 4, kernel=3, stride=2, groups=4)
    x = torch.randn(2, 4, *size).contiguous(memory_format=torch.channels_last)
    pads = []
    for n in (size[1], size[0]):  # F.pad: last dim first
        total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
        pads += [total // 2, total - total // 2]
    expected = F.conv2d(F.pad(x, pads), conv.weight, conv.bias, stride=2, groups=4)
    torch.testing.assert_close(conv(x), expected)


def test_stage_times_add_up_per_batch_when_asked(person):
    detector = Detector(person, PERSON, "cpu")
    detector.detect(frames(2))  # no StageTimes: nothing recorded, nothing fails
    detector.stage_times = engine.StageTimes()
    detector.detect(frames(3))
    detector.detect(frames(1))
    times = detector.stage_times
    assert (times.batches, times.images) == (2, 4)
    assert times.prepare_s > 0 and times.forward_s > 0 and times.postprocess_s > 0


def assert_same_detections(ours: list[Any], expected: list[Any]) -> None:
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.track_id, b.track_id)


def test_submitted_batches_collected_later_give_the_detections_of_detect(person):
    detector = Detector(person, PERSON, "cpu", score_threshold=0.05, runtime="torch")
    blank = Frame("cam", 9, 0.0, 0.0, np.full((120, 160, 3), 128, np.uint8))
    first = [*photo_frames(2), blank, *photo_frames(1)]  # mixed sizes, nobody in the blank
    second = photo_frames(2)[::-1]
    expected_first, expected_second = detector.detect(first), detector.detect(second)
    assert [len(d) > 0 for d in expected_first] == [True, True, False, True]
    # as the pipelined loop does: the next batch is submitted before the last one is collected
    pending_first = detector.submit(first)
    pending_second = detector.submit(second)
    assert_same_detections(pending_first.result(), expected_first)
    assert_same_detections(pending_second.result(), expected_second)
    assert detector.submit([]).result() == []


def test_only_cuda_detectors_pipeline(person):
    assert Detector(person, PERSON, "cpu").pipelined is False


class _FakeEvent:
    """Stands in for `torch.cuda.Event`: records what is asked of it."""

    made: ClassVar[list[_FakeEvent]] = []

    def __init__(self) -> None:
        self.recorded_on: list[object] = []
        self.waits = 0
        _FakeEvent.made.append(self)

    def record(self, stream: object) -> None:
        self.recorded_on.append(stream)

    def synchronize(self) -> None:
        self.waits += 1


class _CopyRecordingTensor(torch.Tensor):
    """Records `copy_` calls, then copies (stands in for a pinned host buffer)."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def copy_(self, src: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:  # type: ignore[override]
        _CopyRecordingTensor.calls.append({"non_blocking": non_blocking})
        return self.as_subclass(torch.Tensor).copy_(src)


def test_cuda_results_copy_into_pinned_memory_and_wait_on_their_own_event(monkeypatch):
    pinned: list[bool] = []
    real_empty = torch.empty

    def fake_empty(*shape: Any, **kwargs: Any) -> torch.Tensor:
        pinned.append(bool(kwargs.pop("pin_memory", False)))
        return real_empty(*shape, **kwargs).as_subclass(_CopyRecordingTensor)

    stream = object()
    monkeypatch.setattr(torch, "empty", fake_empty)
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "synchronize", pytest.fail)  # never the whole device
    _FakeEvent.made, _CopyRecordingTensor.calls = [], []
    packed = torch.tensor(  # x1 y1 x2 y2 score label image: one box in image 0, two in 2
        [[1, 2, 3, 4, 0.9, 1, 0], [5, 6, 7, 8, 0.8, 1, 2], [0, 0, 9, 9, 0.7, 1, 2]]
    )
    pending = engine.PendingDetections.download(packed, 3, CUDA)
    assert pinned == [True]
    assert _CopyRecordingTensor.calls == [{"non_blocking": True}]
    (event,) = _FakeEvent.made
    assert event.recorded_on == [stream] and event.waits == 0  # nothing waited for yet
    detections = pending.result()
    assert event.waits == 1
    assert [len(d) for d in detections] == [1, 0, 2]
    np.testing.assert_array_equal(detections[2].xyxy, [[5, 6, 7, 8], [0, 0, 9, 9]])
