"""The detector stage: batches of frames in, one `Detections` per frame out."""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.errors import ModelConfigError
from detector.models import INT8_BY_DEFAULT, build_model
from detector.onnx_runtime import OnnxRuntimeForward, onnxruntime_available
from detector.postprocess import PACKED_COLUMNS, postprocess, unpack_detections
from detector.quantize import DEFAULT_CALIBRATION, calibration_images, has_int8_dot_products
from detector.ssd import SSD
from pipeline.types import Detections, Frame, LabelMap

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> CUDA if available, else CPU; "cpu", "cuda", "cuda:N" are checked."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ModelConfigError(
            f"invalid device {device!r}; use auto, cpu, cuda or cuda:N"
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelConfigError(
                f"device {device!r} requested but CUDA is not available to torch "
                f"{torch.__version__}; set `detector.device: cpu` (or auto)"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ModelConfigError(
                f"device {device!r} requested but only {count} CUDA device(s) exist "
                f"(cuda:0..cuda:{count - 1})"
            )
    return resolved


Precision = Literal["auto", "fp32", "fp16", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
CPU_MICRO_BATCH = 2
"""Images per forward pass on the CPU. Larger batches buy nothing there: the activations of
a batch of 8 SSDLite images outgrow glibc's mmap threshold, so every forward pays page faults
for fresh memory (measured: 2 images per pass ~25% faster than 8, docs/performance.md)."""


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means plain float32.

    "auto" is fp16 on CUDA and fp32 on the CPU (where `auto_precision`, applied first by
    `Detector.build`, may have made it int8); fp16/bf16 autocast is CUDA-only here (CPU
    kernels for them are slower than float32 on CPUs without AMX). int8 is no autocast: it
    is an int8 copy of the network run by ONNX Runtime on the CPU (`detector.quantize`).
    """
    choice = precision.strip().lower()
    if choice not in PRECISIONS:
        raise ModelConfigError(
            f"invalid precision {precision!r}; use one of: {', '.join(PRECISIONS)}"
        )
    if choice == "auto":
        return torch.float16 if device.type == "cuda" else None
    if choice == "int8":
        if device.type != "cpu":
            raise ModelConfigError(
                f"precision int8 runs on the CPU only (got device {device}); use fp16 on CUDA"
            )
        return None
    if choice == "fp32":
        return None
    if device.type != "cuda":
        raise ModelConfigError(
            f"precision {choice} needs a CUDA device (got {device}); use fp32 or auto on the CPU"
        )
    return torch.float16 if choice == "fp16" else torch.bfloat16


def auto_precision(
    precision: str, model: str, weights: str, device: torch.device, runtime: str
) -> str:
    """`precision`, with "auto" made "int8" where a registered model's int8 accuracy was
    measured (`INT8_BY_DEFAULT`, default weights) and ONNX Runtime runs it on a CPU with
    8-bit dot products (`has_int8_dot_products`, what it was measured on): there int8 is
    2-2.5x faster than float32 for ~94% of its detections (99% of those scoring >= 0.6),
    which is what a 2-core machine needs to keep up. Anything else is unchanged.
    """
    if (
        precision.strip().lower() == "auto"
        and model in INT8_BY_DEFAULT
        and weights == "default"
        and device.type == "cpu"
        and runtime.strip().lower() in ("auto", "onnxruntime")
        and has_int8_dot_products()
        and onnxruntime_available()
    ):
        return "int8"
    return precision


_DTYPE_NAMES: dict[torch.dtype | None, str] = {
    None: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
}

Runtime = Literal["auto", "torch", "compile", "onnxruntime"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "compile", "onnxruntime")


def resolve_runtime(
    runtime: str, device: torch.device, exact_resize: bool = False, int8: bool = False
) -> str:
    """"torch", "compile" or "onnxruntime": what runs the network for `runtime` on `device`.

    "auto" is ONNX Runtime on the CPU when it is installed (about twice PyTorch's speed
    there, docs/performance.md) and PyTorch otherwise, CUDA included; `int8` networks run
    on ONNX Runtime only. "compile" is PyTorch with `torch.compile` (`CompiledNetwork`).
    """
    choice = runtime.strip().lower()
    if choice not in RUNTIMES:
        raise ModelConfigError(f"invalid runtime {runtime!r}; use one of: {', '.join(RUNTIMES)}")
    if int8:
        if choice in ("torch", "compile"):
            raise ModelConfigError(
                "precision int8 runs on onnxruntime; set `detector.runtime` to auto or onnxruntime"
            )
        if not onnxruntime_available():
            raise ModelConfigError(
                "precision int8 needs onnxruntime (pip install onnxruntime onnx onnxscript); "
                "or set `detector.precision: fp32`"
            )
        choice = "onnxruntime"
    if choice == "onnxruntime":
        if device.type != "cpu":
            raise ModelConfigError(
                f"runtime onnxruntime runs on the CPU only (got device {device}); "
                "use runtime torch or auto"
            )
        if exact_resize:
            raise ModelConfigError("exact_resize feeds float pixels; it needs runtime torch")
    if choice == "auto":
        use_onnx = device.type == "cpu" and not exact_resize and onnxruntime_available()
        return "onnxruntime" if use_onnx else "torch"
    return choice


def check_workers(workers: int, runtime: str, device: torch.device) -> int:
    """`workers`, the batches `Detector` detects at once, if `runtime` on `device` allows it.

    Two batches at once on the CPU (each ONNX Runtime run on half the cores) overlap one
    batch's resizing and post-processing with the other's network, as OpenVINO's throughput
    streams do; a batch then takes about twice as long, so the default stays 1 (on 2 cores
    it measured no faster: docs/performance.md). torch runs share one process-wide thread
    pool, so more than one needs ONNX Runtime.
    """
    if workers < 1:
        raise ModelConfigError(f"workers must be >= 1, got {workers}")
    if workers > 1 and (runtime != "onnxruntime" or device.type != "cpu"):
        raise ModelConfigError(
            f"workers {workers} needs runtime onnxruntime on the CPU (got {runtime} on "
            f"{device}); set `detector.workers: 1`"
        )
    return workers


class CompiledNetwork:
    """A prepared SSD under `torch.compile` (inductor, fixed shapes: each new batch size
    compiles again, tens of seconds each). On CUDA it replays CUDA graphs (mode
    "reduce-overhead"), which removes the per-kernel launch cost of small batches."""

    def __init__(self, model: SSD, device: torch.device) -> None:
        self.cuda_graphs = device.type == "cuda"
        mode = "reduce-overhead" if self.cuda_graphs else None
        self.network = torch.compile(model, mode=mode, dynamic=False)

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] -> box_regression [B, A, 4], class_logits [B, A, C]."""
        if not self.cuda_graphs:
            return self.network(images)
        torch.compiler.cudagraph_mark_step_begin()
        box_regression, class_logits = self.network(images)
        # A graph's replay writes its outputs into the same memory every time: the next
        # batch's forward pass would overwrite these while `result` still reads them.
        return box_regression.clone(), class_logits.clone()


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that conv.

    Works on `nn.Sequential` children (torchvision's `Conv2dNormActivation` and its SSD
    heads are such); the norm becomes `nn.Identity`. Changes `module` in place; returns it.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = seq._modules[first], seq._modules[second]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and conv.out_channels == norm.num_features
            ):
                seq._modules[first] = fuse_conv_bn_eval(conv.eval(), norm.eval())
                seq._modules[second] = nn.Identity()
    return module


def prepare_model(model: SSD, device: torch.device) -> SSD:
    """An inference copy of `model` on `device`: eval, batch norms folded, channels_last.

    The caller's model is left as it was (it may share modules with another model).
    """
    prepared = copy.deepcopy(model).eval()
    fold_batch_norms(prepared)
    return prepared.to(device).to(memory_format=torch.channels_last)


def resolve_label_filter(
    names: Sequence[str] | None, label_map: LabelMap, background_class: int | None
) -> list[int] | None:
    """Column indices of the label names to report (case-insensitive); None means all."""
    if not names:
        return None
    columns: dict[str, list[int]] = {}
    for index, name in enumerate(label_map.names):
        if index != background_class and name and name != "N/A":
            columns.setdefault(name.lower(), []).append(index)
    selected: set[int] = set()
    for name in names:
        found = columns.get(name.strip().lower())
        if found is None:
            valid = list(dict.fromkeys(label_map.names[i[0]] for i in columns.values()))
            raise ModelConfigError(
                f"unknown label {name!r} in `detector.labels`; valid labels include: "
                f"{', '.join(valid[:8])}{', ...' if len(valid) > 8 else ''} "
                f"({len(valid)} in all)"
            )
        selected.update(found)
    return sorted(selected)


@dataclass
class StageTimes:
    """Seconds `Detector.detect` spent per stage, added up over batches.

    `postprocess_s` is counted where post-processing runs: in `PendingDetections.result` on
    CUDA; on the CPU in `Detector.submit`, plus the unpacking in `result`. On CUDA, while
    stage times are asked for, `submit` synchronises the device after preparing and after
    the forward pass, so the figures are honest but the overlap between host and device
    work, and between batches, is lost while they are being measured.
    """

    batches: int = 0
    images: int = 0
    prepare_s: float = 0.0
    forward_s: float = 0.0
    postprocess_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held while adding: with `workers` > 1 batches are timed on several threads."""

    def add(self, stage: str, seconds: float) -> None:
        """Adds `seconds` to `stage` ("prepare_s", "forward_s" or "postprocess_s")."""
        with self.lock:
            setattr(self, stage, getattr(self, stage) + seconds)


class _Clock:
    """Adds lap times to a `StageTimes`; does nothing (no sync either) without one."""

    def __init__(self, times: StageTimes | None, device: torch.device) -> None:
        self.times = times
        self.device = device
        self.last = time.perf_counter() if times is not None else 0.0

    def lap(self, stage: str) -> None:
        if self.times is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.times.add(stage, now - self.last)
        self.last = now

    def count(self, images: int) -> None:
        if self.times is not None:
            with self.times.lock:
                self.times.batches += 1
                self.times.images += images


class PendingDetections:
    """The detections of one submitted batch, possibly not computed yet.

    `rows` is the batch's `BatchDetections.packed` rows (float32 [N, PACKED_COLUMNS]) in host
    memory, or a function that computes them there: on CUDA `Detector.submit` hands over the
    post-processing of a batch whose forward pass is still on the device.
    """

    def __init__(
        self,
        rows: Tensor | Callable[[], Tensor],
        batch_size: int,
        times: StageTimes | None = None,
    ) -> None:
        self._rows = rows
        self._batch_size = batch_size
        self._times = times

    def result(self) -> list[Detections]:
        """One `Detections` per frame of the batch. On CUDA this post-processes the batch on
        the detector's side stream and waits for that stream only."""
        started = time.perf_counter()
        packed = self._rows() if callable(self._rows) else self._rows
        detections = unpack_detections(packed.numpy(), self._batch_size)
        if self._times is not None:
            self._times.add("postprocess_s", time.perf_counter() - started)
        return detections


class ConcurrentDetections:
    """The detections of a batch being detected on one of `Detector`'s worker threads."""

    def __init__(self, future: Future[list[Detections]]) -> None:
        self._future = future

    def result(self) -> list[Detections]:
        """One `Detections` per frame; waits for the worker, raises what it raised."""
        return self._future.result()


class Detector:
    """Runs an `SSD` on batches of frames of any sizes.

    Args:
        model: the network; the engine runs a prepared copy of it (see below).
        label_map: names of the model's class_logits columns.
        device: "auto", "cpu", "cuda" or "cuda:N".
        score_threshold: report detections scoring above this.
        nms_threshold: IoU above which the weaker of two same-class boxes is dropped.
        max_detections: at most this many detections per frame.
        labels: report only these class names (None or empty: all classes).
        pre_nms_top_k: at most this many (box, class) candidates per frame enter NMS.
        precision: "auto" (fp16 autocast on CUDA, fp32 on the CPU; `build` makes it int8
            for some models, `auto_precision`), "fp32", "fp16", "bf16", or "int8" (CPU
            only: an int8 copy of the network run by ONNX Runtime).
        micro_batch: images per torch forward pass (default: all on CUDA, `CPU_MICRO_BATCH`
            on the CPU; ONNX Runtime always takes the whole batch); postprocessing still
            runs once per batch.
        exact_resize: on the CPU, resize in float32 exactly as torchvision's transform does
            (~10x slower); by default the CPU resizes the uint8 pixels, which rounds every
            input value to a whole grey level (at most 1 off). CUDA always resizes in float.
        runtime: what runs the network: "torch", "compile" (torch with `torch.compile`,
            `CompiledNetwork`), "onnxruntime" (CPU only: the network is exported to ONNX
            once and cached, `detector.onnx_runtime`), or "auto" (`resolve_runtime`);
            "auto" falls back to torch if the export fails.
        calibration: for precision int8, RGB frames [H, W, 3] like those the model will
            see, on which the int8 activation ranges are measured (default: frames of the
            bundled sample clip, `detector.quantize.DEFAULT_CALIBRATION`).
        workers: batches detected at once, each on its own thread (`check_workers`; more
            than 1 needs ONNX Runtime): `submit` then hands the batch to a worker and
            returns (`pipelined`), and each run gets cores / workers threads.

    The engine works on a private copy of `model` (batch norms folded, channels_last).
    Frames travel to the device as uint8 (pinned memory and a non-blocking copy on CUDA);
    resizing to the model's input happens there, batched per frame size, and detections
    come back to the host in one copy per batch.
    """

    def __init__(
        self,
        model: SSD,
        label_map: LabelMap,
        device: str | torch.device = "auto",
        score_threshold: float = 0.5,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
        labels: Sequence[str] | None = None,
        pre_nms_top_k: int = 1000,
        precision: str = "auto",
        micro_batch: int | None = None,
        exact_resize: bool = False,
        runtime: str = "auto",
        calibration: Sequence[npt.NDArray[np.uint8]] | None = None,
        workers: int = 1,
    ) -> None:
        if not 0.0 <= score_threshold < 1.0:
            raise ModelConfigError(f"score_threshold must be in [0, 1), got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ModelConfigError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        if max_detections < 1 or pre_nms_top_k < 1:
            raise ModelConfigError(
                f"max_detections and pre_nms_top_k must be >= 1, got {max_detections} "
                f"and {pre_nms_top_k}"
            )
        if micro_batch is not None and micro_batch < 1:
            raise ModelConfigError(f"micro_batch must be >= 1, got {micro_batch}")
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.model = prepare_model(model, self.device)
        self.input_size = model.input_size
        self.exact_resize = exact_resize
        self.int8 = precision.strip().lower() == "int8"
        self.precision = "int8" if self.int8 else _DTYPE_NAMES[self.autocast_dtype]
        """What the network runs in: "fp32", "fp16", "bf16" (autocast) or "int8"."""
        self.runtime = resolve_runtime(runtime, self.device, exact_resize, self.int8)
        self._onnx: OnnxRuntimeForward | None = None
        self._compiled: CompiledNetwork | None = None
        if self.runtime == "compile":
            self._compiled = CompiledNetwork(self.model, self.device)
        self.workers = check_workers(workers, self.runtime, self.device)
        if self.runtime == "onnxruntime":
            try:
                height, width = model.input_size
                name = f"the {type(model).__name__} network ({height}x{width} input)"
                inputs = self._calibration_inputs(calibration) if self.int8 else None
                threads = max(1, (os.cpu_count() or 1) // self.workers)
                self._onnx = OnnxRuntimeForward(self.model, name, threads, calibration=inputs)
            except ModelConfigError as exc:
                if runtime.strip().lower() != "auto" or self.int8:
                    raise
                one = ", one batch at a time" if self.workers > 1 else ""
                log.warning("%s; running the network with torch instead%s", exc, one)
                self.runtime = "torch"
                self.workers = 1
        self.micro_batch = micro_batch
        """Images per torch forward pass; None: the whole batch (ONNX Runtime always)."""
        if micro_batch is None and self.device.type == "cpu" and self._onnx is None:
            self.micro_batch = CPU_MICRO_BATCH
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
        self.labels = label_map
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        self.pre_nms_top_k = pre_nms_top_k
        selected = resolve_label_filter(labels, label_map, model.background_class)
        self.classes: Tensor | None = (
            None if selected is None else torch.tensor(selected, device=self.device)
        )

    @classmethod
    def build(
        cls,
        model: str,
        weights: str = "default",
        device: str = "auto",
        score_threshold: float = 0.5,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
        labels: Sequence[str] | None = None,
        precision: str = "auto",
        micro_batch: int | None = None,
        runtime: str = "auto",
        calibration: str | Path | None = None,
        workers: int = 1,
    ) -> Detector:
        """A detector for a registered model name or a checkpoint path (see `build_model`);
        `calibration`: a video file whose frames calibrate precision int8. Precision "auto"
        is int8 for the models of `INT8_BY_DEFAULT` on the CPU (`auto_precision`), float32
        if their int8 network cannot be made."""
        resolved = resolve_device(device)  # fail on a bad device before building the model
        net, label_map = build_model(model, weights)
        chosen = auto_precision(precision, model, weights, resolved, runtime)
        images = None  # int8 without a clip: the engine calibrates on the default one
        if calibration is not None and chosen.strip().lower() == "int8":
            images = calibration_images(calibration)
        detector = functools.partial(
            cls,
            net,
            label_map,
            resolved,
            score_threshold=score_threshold,
            nms_threshold=nms_threshold,
            max_detections=max_detections,
            labels=labels,
            micro_batch=micro_batch,
            runtime=runtime,
            calibration=images,
            workers=workers,
        )
        if chosen == precision:
            return detector(precision=precision)
        try:
            return detector(precision=chosen)
        except ModelConfigError as exc:
            # int8 was this machine's choice, not the user's: float32 still works.
            log.warning("%s; running the network in float32 instead", exc)
            return detector(precision="fp32")

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
        clock = _Clock(self.stage_times, self.device)
        sizes = [(f.height, f.width) for f in frames]
        with torch.inference_mode():
            images = self._model_input(frames)
            clock.lap("prepare_s")
            with self.autocast():
                box_regression, class_logits = self.forward(images)
            clock.lap("forward_s")
            clock.count(len(frames))
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
        model = self.model
        result = postprocess(
            box_regression,
            class_logits,
            anchors=model.anchors,
            box_coder=model.box_coder,
            score_fn=model.score_fn,
            background_class=model.background_class,
            score_threshold=self.score_threshold,
            nms_threshold=self.nms_threshold,
            max_detections=self.max_detections,
            pre_nms_top_k=self.pre_nms_top_k,
            classes=self.classes,
        )
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
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs for model inputs [B, 3, *input_size] (0..255), run in `micro_batch`
        chunks: box_regression [B, A, 4] and class_logits [B, A, C]. Call it under
        `torch.inference_mode()` (and `autocast()` for the configured precision).
        With ONNX Runtime the whole batch goes at once, as uint8."""
        if self._onnx is not None:
            return self._onnx(images)
        network = self._compiled or self.model
        step = self.micro_batch
        if step is None or images.shape[0] <= step:
            return network(images)
        outputs = [network(chunk) for chunk in images.split(step)]
        return (
            torch.cat([o[0] for o in outputs]),
            torch.cat([o[1] for o in outputs]),
        )

    def _calibration_inputs(
        self, images: Sequence[npt.NDArray[np.uint8]] | None
    ) -> npt.NDArray[np.uint8]:
        """Calibration frames (default: the bundled clip's) as model inputs, uint8
        [N, 3, *input_size], resized exactly as `detect` resizes."""
        if images is None:
            images = calibration_images(DEFAULT_CALIBRATION)
        if not images:
            raise ModelConfigError("precision int8 needs at least one calibration frame")
        inputs = torch.cat([self._resized([image]) for image in images])
        return np.ascontiguousarray(inputs.numpy())

    def _model_input(self, frames: Sequence[Frame]) -> Tensor:
        """[B, 3, *input_size] channels_last on the device, 0..255: uint8 on the CPU, float
        on CUDA; frames are resized per size group."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault((frame.height, frame.width), []).append(i)
        if len(groups) == 1:
            return self._resized([f.image for f in frames])
        parts = [(rows, self._resized([frames[i].image for i in rows])) for rows in groups.values()]
        out = torch.empty(
            (len(frames), 3, *self.input_size),
            dtype=parts[0][1].dtype,
            device=self.device,
        ).contiguous(memory_format=torch.channels_last)
        for rows, part in parts:
            out[_to_device(torch.tensor(rows), self.device)] = part
        return out

    def _resized(self, images: list[npt.NDArray[np.uint8]]) -> Tensor:
        """Same-sized RGB HxWx3 uint8 images -> [n, 3, *input_size] channels_last on the device.

        The pixels cross to the device as uint8 (a quarter of float32's bytes). The CPU
        resizes uint8 directly (SIMD kernel, ~10x faster than converting 768x576 frames to
        float first); CUDA has no uint8 bilinear kernel and converts first, at no
        measurable cost there.
        """
        pixels = _upload(images, self.device)  # [n, H, W, 3] uint8
        x = pixels.permute(0, 3, 1, 2)  # a channels_last view, no copy
        if self.device.type == "cuda" or self.exact_resize:
            x = x.float()
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(
                x, size=self.input_size, mode="bilinear", align_corners=False, antialias=False
            )
        return x.contiguous(memory_format=torch.channels_last)


def _upload(images: list[npt.NDArray[np.uint8]], device: torch.device) -> Tensor:
    """Same-sized HxWx3 uint8 images -> uint8 [n, H, W, 3] on `device`, copied once.

    For CUDA the batch is stacked into pinned (page-locked) host memory, so the copy to the
    device is a DMA transfer that does not block the host thread.
    """
    shape = (len(images), *images[0].shape)
    if device.type == "cuda":
        host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        np.stack(images, out=host.numpy())
        return host.to(device, non_blocking=True)
    return torch.from_numpy(np.stack(images))


def _to_device(host: Tensor, device: torch.device) -> Tensor:
    """A copy of a small host tensor on `device`; for CUDA through pinned memory and without
    blocking: a copy from pageable memory would wait for everything queued on the stream."""
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
