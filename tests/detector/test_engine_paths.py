"""The engine's fast paths give the answers of the plain ones, and pick CUDA-only paths
(pinned memory, autocast, post-processing on a side stream) only for CUDA devices. Runs on
the CPU: the CUDA paths are taken with CUDA's calls faked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detector import engine
from detector.engine import Detector
from detector.errors import ModelConfigError
from detector.host_copy import HostCopy
from detector.networks import fold_batch_norms, prepare_model
from detector.options import CPU_MICRO_BATCH, DetectorOptions
from detector.request import DetectorRequest, Precision
from detector.ssd import SSD
from detector.tf_ssd import SameConv2d
from detector.timing import StageTimes
from detector.torchvision_models import from_torchvision
from pipeline.types import Detections, Frame, LabelMap
from tests.detector import random_models
from tests.detector.building import cpu_options, make_detector

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
PHOTO = Path(__file__).resolve().parents[2] / "docs" / "images" / "lobby.jpg"
PERSON = LabelMap(("background", "person"))


@pytest.fixture(scope="module")
def calibrated_ssdlite() -> SSD:
    """Random SSDLite320 with batch-norm statistics measured on noise (non-trivial BNs)."""
    return from_torchvision(random_models.calibrated_ssdlite(seed=0))


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


def assert_close_detections(expected: list[Detections], got: list[Detections]) -> None:
    """Each frame's boxes, labels and scores the same, up to float rounding."""
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_micro_batches_give_the_detections_of_one_pass(person):
    batch = photo_frames(5)
    options = {"score_threshold": 0.05, "runtime": "torch"}  # onnxruntime takes whole batches
    whole = make_detector(person, PERSON, micro_batch=8, **options).detect(batch)
    split = make_detector(person, PERSON, micro_batch=2, **options).detect(batch)
    assert sum(len(d) for d in whole) > 0
    assert_close_detections(whole, split)


def test_cpu_uses_small_micro_batches_and_cuda_one_pass(person, monkeypatch):
    torch_run = make_detector(person, PERSON, runtime="torch")
    assert torch_run.options.micro_batch == CPU_MICRO_BATCH
    assert make_detector(person, PERSON, runtime="onnxruntime").options.micro_batch is None
    with pytest.raises(ModelConfigError, match="micro_batch must be >= 1"):
        make_detector(person, PERSON, micro_batch=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # resolving only: no CUDA runs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert DetectorOptions.resolve(DetectorRequest(device="cuda")).micro_batch is None


def test_cuda_pads_batches_to_powers_of_two_up_to_the_batch_size(cuda_present):
    options = DetectorOptions.resolve(DetectorRequest(device="cuda", batch_size=32))
    rows = [options.forward_rows(n) for n in range(1, 41)]
    assert rows[:9] == [1, 2, 4, 4, 8, 8, 8, 8, 16]
    assert sorted(set(rows[:32])) == [1, 2, 4, 8, 16, 32]  # 32 batch sizes, 6 shapes
    assert rows[32:] == list(range(33, 41))  # more frames than a batch: never fewer rows


def test_a_batch_size_that_is_no_power_of_two_is_the_largest_shape(cuda_present):
    options = DetectorOptions.resolve(DetectorRequest(device="cuda", batch_size=24))
    assert [options.forward_rows(n) for n in (9, 16, 17, 24)] == [16, 16, 24, 24]


def test_compiled_networks_take_every_batch_padded_to_the_batch_size(cuda_present):
    """One shape, compiled once: any other batch size would compile again mid-run."""
    for device in ("cuda", "cpu"):
        options = DetectorOptions.resolve(
            DetectorRequest(device=device, runtime="compile", batch_size=8)
        )
        assert [options.forward_rows(n) for n in (1, 3, 8, 9)] == [8, 8, 8, 9]


def test_cpu_forward_passes_take_the_frames_unpadded():
    assert [cpu_options().forward_rows(n) for n in (1, 3, 7, 9)] == [1, 3, 7, 9]


def test_a_cuda_detector_warms_up_with_a_batch_of_each_padded_size(cuda_present):
    for batch_size, sizes in ((32, [1, 2, 4, 8, 16, 32]), (24, [1, 2, 4, 8, 16, 24]), (1, [1])):
        asked = DetectorRequest(device="cuda", batch_size=batch_size)
        assert DetectorOptions.resolve(asked).warm_up_batches() == sizes


def test_a_compiled_network_warms_up_with_one_batch_padded_to_the_batch_size(cuda_present):
    for device in ("cuda", "cpu"):
        asked = DetectorRequest(device=device, runtime="compile", batch_size=8)
        options = DetectorOptions.resolve(asked)
        assert [options.forward_rows(n) for n in options.warm_up_batches()] == [8]


def test_a_cpu_detector_is_not_warmed_up():
    assert cpu_options().warm_up_batches() == []


def forward_rows_seen(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each forward pass `detector` runs from now on, as they come."""
    rows: list[int] = []
    forward = detector.forward

    def counted(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows.append(images.shape[0])
        return forward(images)

    monkeypatch.setattr(detector, "forward", counted)
    return rows


def test_warming_up_detects_a_batch_of_each_size_and_changes_no_frames_detections(
    person, monkeypatch
):
    detector = make_detector(person, PERSON, score_threshold=0.05, runtime="torch")
    batch = photo_frames(3)
    before = detector.detect(batch)
    rows = forward_rows_seen(detector, monkeypatch)
    monkeypatch.setattr(DetectorOptions, "warm_up_batches", lambda self: [1, 2, 4])
    detector.warm_up()
    assert rows == [1, 2, 4]
    assert sum(len(d) for d in before) > 0
    assert_close_detections(before, detector.detect(batch))


def test_padding_a_batch_changes_no_frames_detections(person, monkeypatch):
    detector = make_detector(person, PERSON, score_threshold=0.05, runtime="torch")
    batch = photo_frames(3)
    alone = detector.detect(batch)
    rows = forward_rows_seen(detector, monkeypatch)
    monkeypatch.setattr(DetectorOptions, "forward_rows", lambda self, frames: 8)
    padded = detector.detect(batch)
    assert rows == [8]
    assert sum(len(d) for d in alone) > 0
    assert_close_detections(alone, padded)


def test_a_cpu_detector_leaves_cudnn_autotuning_alone(person, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    make_detector(person, PERSON)
    assert torch.backends.cudnn.benchmark is False


def test_uint8_resize_is_within_one_grey_level_of_float_resize(person):
    batch = frames(3, 576, 768)
    fast = make_detector(person, PERSON)._model_input(batch)
    exact = make_detector(person, PERSON, exact_resize=True)._model_input(batch)
    assert fast.dtype == torch.uint8 and exact.dtype == torch.float32
    assert fast.shape == exact.shape == (3, 3, 300, 300)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    error = (fast.float() - exact).abs()
    assert error.max() < 1.05 and error.mean() < 0.4  # rounding, with fixed-point weights


def test_mixed_frame_sizes_are_resized_per_group_into_one_batch(person):
    batch = [*frames(1, 240, 320), *frames(1, 300, 300), *frames(1, 120, 160)]
    detector = make_detector(person, PERSON)
    together = detector._model_input(batch)
    for i, f in enumerate(batch):
        torch.testing.assert_close(together[i], detector._model_input([f])[0])


def test_precision_auto_is_fp16_on_cuda_and_fp32_on_the_cpu(cuda_present):
    def on_cuda(precision: str) -> DetectorOptions:
        # "BF16" too: the request itself checks (and lower-cases) what it is given
        asked = cast(Precision, precision)
        return DetectorOptions.resolve(DetectorRequest(device="cuda", precision=asked))

    assert cpu_options().autocast_dtype is None
    assert on_cuda("fp32").autocast_dtype is None
    assert on_cuda("auto").autocast_dtype == torch.float16
    assert on_cuda("BF16").autocast_dtype == torch.bfloat16


def test_precision_auto_on_cuda_is_fp32_for_a_model_measured_faster_in_fp32(cuda_present):
    asked = DetectorRequest(device="cuda", model="ssdlite320_mobilenet_v3_large")
    options = DetectorOptions.resolve(asked)
    assert options.precision == "fp32"
    assert "faster in float32" in options.reasons["precision"]
    assert DetectorOptions.resolve(DetectorRequest(device="cuda")).precision == "fp16"


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_the_cpu_is_a_config_error(precision):
    with pytest.raises(ModelConfigError, match=f"precision {precision} needs a CUDA device"):
        cpu_options(precision=precision)


def test_unknown_precision_is_a_config_error_listing_the_valid_ones():
    with pytest.raises(ModelConfigError, match=r"invalid precision 'fp8'.*fp32, fp16, bf16"):
        cpu_options(precision="fp8")


class _RecordingTensor(torch.Tensor):
    """Records `.to` calls instead of copying (stands in for a CUDA transfer)."""

    calls: ClassVar[list[tuple[Any, ...]]] = []

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        _RecordingTensor.calls.append((args, kwargs))
        return self.as_subclass(torch.Tensor)


class _RecordingHostCopy(HostCopy):
    """A `HostCopy` that records the arrays it stacks into."""

    def __init__(self, threads: int) -> None:
        super().__init__(threads)
        self.outs: list[np.ndarray] = []

    def stack(self, images: Any, out: np.ndarray) -> np.ndarray:
        self.outs.append(out)
        return super().stack(images, out)


def test_cuda_upload_stacks_into_pinned_memory_on_the_copy_threads_and_copies_without_blocking(
    monkeypatch,
):
    pinned: list[bool] = []
    real_empty = torch.empty

    def fake_empty(*shape: Any, **kwargs: Any) -> torch.Tensor:
        pinned.append(bool(kwargs.pop("pin_memory", False)))
        return real_empty(*shape, **kwargs).as_subclass(_RecordingTensor)

    monkeypatch.setattr(torch, "empty", fake_empty)
    _RecordingTensor.calls = []
    images = [f.image for f in frames(3, 12, 16)]
    host_copy = _RecordingHostCopy(2)
    try:
        out = engine._upload(images, CUDA, host_copy)
    finally:
        host_copy.close()
    assert pinned == [True]
    assert _RecordingTensor.calls == [((CUDA,), {"non_blocking": True})]
    (stacked_into,) = host_copy.outs  # the pinned buffer itself, not a copy of it
    assert np.shares_memory(stacked_into, out.numpy())
    np.testing.assert_array_equal(out.numpy(), np.stack(images))


def test_cpu_upload_uses_no_pinned_memory_and_no_copy_threads(monkeypatch):
    monkeypatch.setattr(torch, "empty", pytest.fail)  # the CPU path must not allocate pinned
    images = [f.image for f in frames(2, 12, 16)]
    host_copy = _RecordingHostCopy(1)
    out = engine._upload(images, CPU, host_copy)
    assert host_copy.outs == []
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
    detector = make_detector(person, PERSON)
    detector.detect(frames(2))  # no StageTimes: nothing recorded, nothing fails
    detector.stage_times = StageTimes()
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


def two_batches() -> tuple[list[Frame], list[Frame]]:
    """Two batches of people; the first has mixed sizes and a blank frame (nobody in it)."""
    blank = Frame("cam", 9, 0.0, 0.0, np.full((120, 160, 3), 128, np.uint8))
    return [*photo_frames(2), blank, *photo_frames(1)], photo_frames(2)[::-1]


def test_submitted_batches_collected_later_give_the_detections_of_detect(person):
    detector = make_detector(person, PERSON, score_threshold=0.05, runtime="torch")
    first, second = two_batches()
    expected_first, expected_second = detector.detect(first), detector.detect(second)
    assert [len(d) > 0 for d in expected_first] == [True, True, False, True]
    # as the pipelined loop does: the next batch is submitted before the last one is collected
    pending_first = detector.submit(first)
    pending_second = detector.submit(second)
    assert_same_detections(pending_first.result(), expected_first)
    assert_same_detections(pending_second.result(), expected_second)
    assert detector.submit([]).result() == []


def test_cpu_submit_post_processes_at_once(person, monkeypatch):
    calls: list[int] = []
    real_postprocess = engine.postprocess

    def postprocess(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_postprocess(*args, **kwargs)

    monkeypatch.setattr(engine, "postprocess", postprocess)
    detector = make_detector(person, PERSON, runtime="torch")
    pending = detector.submit(frames(2))
    assert calls == [1]
    pending.result()
    assert calls == [1]


def test_a_cpu_detector_with_one_worker_does_not_pipeline(person):
    detector = make_detector(person, PERSON, workers=1)
    assert detector.pipelined is False and detector._side_stream is None


def test_a_cpu_detector_starts_no_copy_threads(person):
    detector = make_detector(person, PERSON, runtime="torch")
    assert detector._host_copy.threads == 1 and detector._host_copy._pool is None


class _FakeStream:
    """Stands in for a `torch.cuda.Stream`: logs what is asked of it."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        self.name = name
        self.log = log

    def __repr__(self) -> str:
        return self.name

    def wait_event(self, event: _FakeEvent) -> None:
        self.log.append(("wait_event", self, event))

    def synchronize(self) -> None:
        self.log.append(("stream synchronize", self))


class _FakeEvent:
    """Stands in for `torch.cuda.Event`: logs what is asked of it."""

    log: ClassVar[list[tuple[Any, ...]]] = []

    def record(self, stream: _FakeStream) -> None:
        self.log.append(("record", self, stream))

    def synchronize(self) -> None:
        self.log.append(("event synchronize", self))


class _PinnedTensor(torch.Tensor):
    """A host buffer from `torch.empty(..., pin_memory=True)`: logs `copy_`, then copies."""

    calls: ClassVar[list[tuple[Any, ...]]] = []  # not `log`: that is torch.Tensor.log
    current: ClassVar[list[_FakeStream]] = []

    def copy_(self, src: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
        self.calls.append(("copy", self.current[-1], non_blocking))
        return self.as_subclass(torch.Tensor).copy_(src)


class _FakeCuda:
    """A CPU detector made to take its CUDA path, every CUDA call faked and logged in `log`
    as ("what", ...) tuples; the work itself runs on the CPU, so results can be compared."""

    def __init__(self, detector: Detector, monkeypatch: pytest.MonkeyPatch) -> None:
        self.detector = detector
        self.log: list[tuple[Any, ...]] = []
        self.main, self.side = _FakeStream("main", self.log), _FakeStream("side", self.log)
        self.current = [self.main]  # the current stream, innermost `torch.cuda.stream` last
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        _FakeEvent.log = _PinnedTensor.calls = self.log
        _PinnedTensor.current = self.current
        real_empty, real_postprocess, real_forward = (
            torch.empty,
            engine.postprocess,
            detector.forward,
        )

        def fake_empty(*shape: Any, **kwargs: Any) -> torch.Tensor:
            if not kwargs.pop("pin_memory", False):
                return real_empty(*shape, **kwargs)
            self.log.append(("pinned",))
            return real_empty(*shape, **kwargs).as_subclass(_PinnedTensor)

        @contextlib.contextmanager
        def fake_stream(stream: _FakeStream) -> Iterator[None]:
            self.current.append(stream)
            try:
                yield
            finally:
                self.current.pop()

        def forward(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            self.log.append(("forward", self.current[-1]))
            outputs = real_forward(images)
            self.outputs.append(outputs)
            return outputs

        def postprocess(*args: Any, **kwargs: Any) -> Any:
            self.log.append(("postprocess", self.current[-1]))
            return real_postprocess(*args, **kwargs)

        def record_stream(tensor: torch.Tensor, stream: _FakeStream) -> None:
            self.log.append(("record_stream", tensor, stream))

        monkeypatch.setattr(torch, "empty", fake_empty)
        monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device: self.current[-1])
        monkeypatch.setattr(torch.cuda, "stream", fake_stream)
        monkeypatch.setattr(torch.cuda, "synchronize", pytest.fail)  # never the whole device
        monkeypatch.setattr(torch.Tensor, "record_stream", record_stream)
        monkeypatch.setattr(engine, "postprocess", postprocess)
        monkeypatch.setattr(detector, "forward", forward)
        monkeypatch.setattr(detector, "_side_stream", self.side)
        monkeypatch.setattr(detector, "pipelined", True)

    def calls(self, what: str) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if entry[0] == what]


@pytest.fixture(scope="module")
def expected(person) -> tuple[list[Any], list[Any]]:
    """`detect` of `two_batches()` by a plain CPU detector."""
    detector = make_detector(person, PERSON, score_threshold=0.05, runtime="torch")
    first, second = two_batches()
    return detector.detect(first), detector.detect(second)


@pytest.fixture
def fake_cuda(person, monkeypatch) -> _FakeCuda:
    detector = make_detector(person, PERSON, score_threshold=0.05, runtime="torch")
    return _FakeCuda(detector, monkeypatch)


def test_cuda_submit_only_enqueues_the_forward_pass_and_records_an_event_after_it(fake_cuda):
    fake_cuda.detector.submit(two_batches()[0])
    (event,) = [entry[1] for entry in fake_cuda.calls("record")]
    # no post-processing, no copy, no wait of any kind
    assert fake_cuda.log == [("forward", fake_cuda.main), ("record", event, fake_cuda.main)]


def test_cuda_result_post_processes_once_on_the_side_stream_after_the_forward_event(fake_cuda):
    pending = fake_cuda.detector.submit(two_batches()[0])
    (forwarded,) = [entry[1] for entry in fake_cuda.calls("record")]
    del fake_cuda.log[:]
    pending.result()
    side = fake_cuda.side
    assert fake_cuda.calls("postprocess") == [("postprocess", side)]
    assert fake_cuda.log[0] == ("wait_event", side, forwarded)  # before anything else


def test_cuda_forward_outputs_are_recorded_on_the_side_stream_before_it_reads_them(fake_cuda):
    fake_cuda.detector.submit(two_batches()[0]).result()
    (outputs,) = fake_cuda.outputs
    recorded = fake_cuda.calls("record_stream")
    assert len(recorded) == len(outputs) == 2
    for (_, tensor, stream), output in zip(recorded, outputs, strict=True):
        assert tensor is output and stream is fake_cuda.side
    whats = [entry[0] for entry in fake_cuda.log]
    last_recorded = len(whats) - 1 - whats[::-1].index("record_stream")
    assert last_recorded < whats.index("postprocess")


def test_cuda_results_copy_into_pinned_memory_on_the_side_stream_and_wait_for_it_only(
    fake_cuda,
):
    fake_cuda.detector.submit(two_batches()[0]).result()
    side = fake_cuda.side
    after_postprocess = fake_cuda.log[fake_cuda.log.index(("postprocess", side)) + 1 :]
    (copied,) = [e[1] for e in fake_cuda.calls("record") if e[2] is side]
    assert after_postprocess == [
        ("pinned",),
        ("copy", side, True),
        ("record", copied, side),
        ("event synchronize", copied),  # the only wait: no stream or device synchronize
    ]
    assert fake_cuda.calls("event synchronize") == [("event synchronize", copied)]


def test_cuda_batches_submitted_ahead_then_collected_give_the_detections_of_detect(
    fake_cuda, expected
):
    first, second = two_batches()
    pending_first = fake_cuda.detector.submit(first)
    pending_second = fake_cuda.detector.submit(second)
    assert fake_cuda.calls("postprocess") == []
    assert_same_detections(pending_first.result(), expected[0])
    assert_same_detections(pending_second.result(), expected[1])
    # batch 2's forward pass was enqueued before batch 1's post-processing
    assert [entry[0] for entry in fake_cuda.log if entry[0] in ("forward", "postprocess")] == [
        "forward",
        "forward",
        "postprocess",
        "postprocess",
    ]
    assert fake_cuda.detector.detect([]) == []


def test_cuda_post_processing_time_is_counted_in_result(fake_cuda):
    times = fake_cuda.detector.stage_times = StageTimes()
    pending = fake_cuda.detector.submit(two_batches()[1])
    assert times.prepare_s > 0 and times.forward_s > 0 and times.postprocess_s == 0
    assert (times.batches, times.images) == (1, 2)
    pending.result()
    assert times.postprocess_s > 0


def test_cuda_post_processing_errors_surface_from_result(fake_cuda, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("post-processing broke")

    monkeypatch.setattr(engine, "postprocess", broken)
    pending = fake_cuda.detector.submit(two_batches()[1])
    with pytest.raises(RuntimeError, match="post-processing broke"):
        pending.result()
