"""The detector stage: batches of frames in, one `Detections` per frame out."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from detector.errors import ModelConfigError
from detector.host_copy import HostCopy, copy_threads
from detector.labels import resolve_label_filter
from detector.models import build_model
from detector.networks import Network, open_network, prepare_model
from detector.non_finite import NonFiniteWarning
from detector.onnx_runtime import Announce, OnnxRuntimeForward
from detector.options import DetectorOptions
from detector.pending import ConcurrentDetections, PendingDetections
from detector.postprocess import PACKED_COLUMNS, postprocess
from detector.quantize import DEFAULT_CALIBRATION, calibration_images
from detector.request import DetectorRequest, ResolvedPrecision, ResolvedRuntime
from detector.resize import resize_rgb
from detector.ssd import SSD
from detector.timing import StageClock, StageTimes
from pipeline.types import Detections, Frame, LabelMap


class Detector:
    """Runs an `SSD` on batches of frames of any sizes.

    Args:
        model: the network; the engine runs a prepared copy of it (see below).
        label_map: names of the model's class_logits columns.
        options: what to run and how (`DetectorOptions.resolve`); `options` of the detector
            are these, or what runs instead after a fallback of an `auto` choice
            (`detector.networks.open_network`).
        calibration: for precision int8, RGB frames [H, W, 3] like those the model will
            see, on which the int8 activation ranges are measured (default: frames of the
            request's `calibration` clip, else of the bundled sample clip,
            `detector.quantize.DEFAULT_CALIBRATION`).
        announce: told, before it starts, of a first run's ONNX export or int8 quantization
            (the pause it causes); without it, the log is told.

    The engine works on a private copy of `model` (batch norms folded, channels_last).
    Frames are resized to the model's input on the host, uint8 (`detector.resize`; by the
    cameras' reader threads where a frame carries its `model_image`), and travel to the
    device so (on CUDA: stacked into pinned memory by a few threads, `detector.host_copy`,
    then copied without blocking; batches padded to few sizes, `DetectorOptions.forward_rows`);
    detections come back to the host in one copy per batch. With `options.workers` > 1,
    `submit` hands each batch to a worker thread and returns (`pipelined`).
    """

    def __init__(
        self,
        model: SSD,
        label_map: LabelMap,
        options: DetectorOptions,
        calibration: Sequence[npt.NDArray[np.uint8]] | None = None,
        announce: Announce | None = None,
    ) -> None:
        # Denormal floats make CPU convolutions many times slower (seen with random
        # weights); flushing them to zero changes no detection worth having.
        torch.set_flush_denormal(True)
        if options.device.type == "cuda":
            # cuDNN times its kernels once per input shape and keeps the fastest; padded
            # batches (`DetectorOptions.forward_rows`) leave a run few shapes to time.
            torch.backends.cudnn.benchmark = True
        self.labels = label_map
        self.background = model.background_class
        self.input_size = model.input_size
        selected = resolve_label_filter(options.request.labels, label_map, model.background_class)
        self.options = options
        on_cuda = options.device.type == "cuda"
        self._host_copy = HostCopy(copy_threads(options.sharing) if on_cuda else 1)
        """CUDA: the threads that stack a batch's frames into pinned memory (`_upload`)."""
        self.model = prepare_model(model, options.device)
        self.network: Network
        self.network, self.options = open_network(
            self.model,
            options,
            functools.partial(self._calibration_inputs, calibration),
            announce,
        )
        self.onnx_file: Path | None = (
            self.network.path if isinstance(self.network, OnnxRuntimeForward) else None
        )
        """The ONNX file ONNX Runtime runs (None: torch runs the network)."""
        self.classes: Tensor | None = (
            None if selected is None else torch.tensor(selected, device=self.device)
        )
        self._non_finite = NonFiniteWarning(options.request.model)
        self.stage_times: StageTimes | None = None
        """Set to a `StageTimes` to have `detect` add up its time per stage (benchmarks)."""
        self._side_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        """CUDA: the stream that post-processes a batch (in `PendingDetections.result`) while
        the next batch's forward pass runs on the current one."""
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="detect")
            if self.workers > 1
            else None
        )
        """`workers` > 1: the threads that detect submitted batches."""
        self.pipelined = self._side_stream is not None or self._pool is not None
        """Whether `submit` returns before the batch is detected (CUDA: it only enqueues the
        forward pass; `workers` > 1: a worker thread detects it); otherwise `submit` does all
        the work, and submitting ahead overlaps nothing."""

    @classmethod
    def build(
        cls, request: DetectorRequest, announce: Announce | None = None, sharing: int = 1
    ) -> Detector:
        """A detector for `request`: its options resolved on this machine, for one of
        `sharing` processes sharing its cores (`DetectorOptions.sharing`), then its model
        built (`build_model`: a registered name or a checkpoint path). `announce`: see the
        class."""
        # a bad device fails before the model is built
        options = DetectorOptions.resolve(request, sharing)
        model, label_map = build_model(request.model, request.weights)
        return cls(model, label_map, options, announce=announce)

    def warm_up(self) -> None:
        """Detects batches of black frames of the network's input size, of each size of
        `DetectorOptions.warm_up_batches` (none on the CPU unless compiled)."""
        height, width = self.input_size
        black = np.zeros((height, width, 3), dtype=np.uint8)
        for count in self.options.warm_up_batches():
            self.detect([Frame("warm-up", i, 0.0, 0.0, black) for i in range(count)])

    def describe(self) -> str:
        """One line: the model, what runs it where, and why (`DetectorOptions.describe`)."""
        return self.options.describe()

    def close(self) -> None:
        """Ends the detector's threads (the workers of `submit`, the host copy's), waiting
        for a batch still being detected; detecting after this fails."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._host_copy.close()

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return self.options.device

    @property
    def runtime(self) -> ResolvedRuntime:
        """What runs the network: "torch", "compile" or "onnxruntime"."""
        return self.options.runtime

    @property
    def precision(self) -> ResolvedPrecision:
        """What the network runs in: "fp32", "fp16", "bf16" (autocast) or "int8"."""
        return self.options.precision

    @property
    def workers(self) -> int:
        """Batches detected at once."""
        return self.options.workers

    @property
    def batch_size(self) -> int:
        """Frames per batch the options settled on (`DetectorOptions.batch_size`)."""
        return self.options.batch_size

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """One `Detections` per frame, boxes in that frame's pixels, clipped to the frame."""
        return self.submit(frames).result()

    def submit(self, frames: Sequence[Frame]) -> PendingDetections | ConcurrentDetections:
        """Starts detecting `frames`; `.result()` of what it returns equals `detect(frames)`.

        On CUDA this stacks the frames into pinned memory and enqueues their upload, resize and
        forward pass on the current stream, then returns without waiting for the device:
        post-processing, whose data-dependent sizes make the host wait, runs in `.result()` on
        a side stream, so the caller may first submit the next batch (`pipelined`). On the
        CPU with `workers` > 1 a worker thread does all the work while the caller goes on;
        with one, all the work is done here.
        """
        if self._pool is not None and frames:
            return ConcurrentDetections(self._pool.submit(self._detect_now, list(frames)))
        return self._start(frames)

    def _detect_now(self, frames: Sequence[Frame]) -> list[Detections]:
        """`detect` on the calling thread (a worker's)."""
        return self._start(frames).result()

    def _start(self, frames: Sequence[Frame]) -> PendingDetections:
        """`submit` without the worker threads."""
        if not frames:
            return PendingDetections(torch.zeros((0, PACKED_COLUMNS)), 0)
        clock = StageClock(self.stage_times, self.device)
        sizes = [(f.height, f.width) for f in frames]
        count, rows = len(frames), self.options.forward_rows(len(frames))
        with torch.inference_mode():
            images = _padded(self._model_input(frames), rows)
            clock.lap("prepare_s")
            with self.autocast():
                box_regression, class_logits = self.forward(images)
            if rows > count:  # the padding's rows are dropped before post-processing
                box_regression, class_logits = box_regression[:count], class_logits[:count]
            clock.lap("forward_s")
            clock.count(count)
            if self._side_stream is not None:
                forwarded = torch.cuda.Event()
                forwarded.record(torch.cuda.current_stream(self.device))
                finish = functools.partial(
                    self._finish, self._side_stream, box_regression, class_logits, sizes, forwarded
                )
                return PendingDetections(finish, len(frames), self.stage_times)
            packed = self._packed(box_regression, class_logits, sizes)
            clock.lap("postprocess_s")
            return PendingDetections(packed, len(frames), self.stage_times)

    def _packed(
        self, box_regression: Tensor, class_logits: Tensor, sizes: Sequence[tuple[int, int]]
    ) -> Tensor:
        """float32 [N, PACKED_COLUMNS] detections of a batch, on the device, boxes in pixels.

        box_regression [B, A, 4] and class_logits [B, A, C] are the forward outputs, any float
        dtype (post-processing is float32); sizes: (H, W) of each frame. Runs on the current
        stream, which it waits for where sizes depend on the data.
        """
        model, asked = self.model, self.options.request
        result = postprocess(
            box_regression,
            class_logits,
            anchors=model.anchors,
            box_coder=model.box_coder,
            score_fn=model.score_fn,
            background_class=model.background_class,
            score_threshold=asked.score_threshold,
            nms_threshold=asked.nms_threshold,
            max_detections=asked.max_detections,
            pre_nms_top_k=asked.pre_nms_top_k,
            classes=self.classes,
        )
        self._non_finite.note(result.non_finite)
        scale = _to_device(torch.tensor(sizes, dtype=torch.float32), self.device)
        return result.scaled(scale).packed()

    def _finish(
        self,
        stream: torch.cuda.Stream,
        box_regression: Tensor,
        class_logits: Tensor,
        sizes: Sequence[tuple[int, int]],
        forwarded: torch.cuda.Event,
    ) -> Tensor:
        """Post-processes a batch forwarded on CUDA; float32 [N, PACKED_COLUMNS] host rows.

        Runs on `stream` (the side stream) once `forwarded`, recorded on the main stream after
        the forward pass, has happened: the next batch's forward pass, already enqueued on the
        main stream, runs meanwhile. The rows are copied into pinned memory; only `stream`'s
        copy is waited for, never the whole device.
        """
        with torch.inference_mode(), torch.cuda.stream(stream):
            stream.wait_event(forwarded)
            for output in (box_regression, class_logits):
                # Made on the main stream: without this the caching allocator could hand
                # their memory out there again before the side stream is done reading it.
                output.record_stream(stream)
            packed = self._packed(box_regression, class_logits, sizes)
            host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
            host.copy_(packed, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(stream)
        copied.synchronize()
        return host

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The autocast context of the configured precision (a no-op for fp32)."""
        dtype = self.options.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs for model inputs [B, 3, *input_size] (0..255): box_regression
        [B, A, 4] and class_logits [B, A, C], from the network chosen when the detector was
        built (`network`). Call it under `torch.inference_mode()` (and `autocast()` for the
        configured precision). ONNX Runtime takes uint8 inputs only."""
        return self.network(images)

    def _calibration_inputs(
        self, images: Sequence[npt.NDArray[np.uint8]] | None
    ) -> npt.NDArray[np.uint8]:
        """Calibration frames (default: those of the request's clip, else of the bundled one)
        as model inputs, uint8 [N, 3, *input_size], resized exactly as `detect` resizes."""
        if images is None:
            images = calibration_images(self.options.request.calibration or DEFAULT_CALIBRATION)
        if not images:
            raise ModelConfigError("precision int8 needs at least one calibration frame")
        inputs = torch.cat([self._resized([image]) for image in images])
        return np.ascontiguousarray(inputs.numpy())

    def model_image(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
        """`image` (RGB uint8 [H, W, 3]) resized as `detect` resizes it for the network:
        uint8 [*input_size, 3], for a camera's reader thread to make (`Frame.model_image`)
        so that the detector's thread only stacks small images. None with `exact_resize`,
        which resizes float pixels on the device."""
        if self.options.request.exact_resize:
            return None
        return resize_rgb(image, self.input_size)

    def _model_input(self, frames: Sequence[Frame]) -> Tensor:
        """[B, 3, *input_size] channels_last on the device, 0..255: uint8 on the CPU, float
        on CUDA. Each frame's `model_image` is used where it has one; the others are resized
        here (with `exact_resize`: every frame's `image`, on the device, per size group)."""
        if not self.options.request.exact_resize:
            return self._resized([f.image_for(self.input_size) for f in frames])
        images = [f.image for f in frames]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        if len(groups) == 1:
            return self._resized(images)
        parts = [(rows, self._resized([images[i] for i in rows])) for rows in groups.values()]
        out = torch.empty(
            (len(frames), 3, *self.input_size),
            dtype=parts[0][1].dtype,
            device=self.device,
        ).contiguous(memory_format=torch.channels_last)
        for rows, part in parts:
            out[_to_device(torch.tensor(rows), self.device)] = part
        return out

    def _resized(self, images: list[npt.NDArray[np.uint8]]) -> Tensor:
        """RGB HxWx3 uint8 images (of one size with `exact_resize`) -> [n, 3, *input_size]
        channels_last on the device.

        Every device resizes uint8 pixels on the host with `detector.resize` (many times
        faster than converting to float first: docs/performance.md), so the network sees the
        same pixels on the CPU and on CUDA, and only input-sized images cross to the device
        (a 1080p frame is 20 times the bytes of a 320x320 input: copying full frames was the
        detector thread's limit on a GPU, docs/performance.md). `exact_resize` resizes float
        pixels on the device instead, as torchvision's transform does.
        """
        exact = self.options.request.exact_resize
        if not exact:
            images = [resize_rgb(image, self.input_size) for image in images]
        pixels = _upload(images, self.device, self._host_copy)  # [n, H, W, 3] uint8
        x = pixels.permute(0, 3, 1, 2)  # a channels_last view, no copy
        if self.device.type == "cuda" or exact:
            x = x.float()
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(
                x, size=self.input_size, mode="bilinear", align_corners=False, antialias=False
            )
        return x.contiguous(memory_format=torch.channels_last)


def _upload(
    images: list[npt.NDArray[np.uint8]], device: torch.device, host_copy: HostCopy
) -> Tensor:
    """Same-sized HxWx3 uint8 images -> uint8 [n, H, W, 3] on `device`, copied once.

    For CUDA the batch is stacked into pinned (page-locked) host memory by `host_copy`'s
    threads, so the copy to the device is a DMA transfer that does not block the host thread.
    """
    shape = (len(images), *images[0].shape)
    if device.type == "cuda":
        host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        host_copy.stack(images, host.numpy())
        return host.to(device, non_blocking=True)
    return torch.from_numpy(np.stack(images))


def _padded(images: Tensor, rows: int) -> Tensor:
    """Model inputs [n, 3, H, W] followed by `rows` - n black images: [rows, 3, H, W], on
    the same device, channels_last (`images` itself where `rows` is n). Each image's
    outputs do not depend on the others in the batch, so the padding changes no detection."""
    missing = rows - images.shape[0]
    if missing <= 0:
        return images
    black = images.new_zeros((missing, *images.shape[1:]))
    return torch.cat([images, black]).contiguous(memory_format=torch.channels_last)


def _to_device(host: Tensor, device: torch.device) -> Tensor:
    """A copy of a small host tensor on `device`; for CUDA through pinned memory and without
    blocking: a copy from pageable memory would wait for everything queued on the stream."""
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
