"""Model-only timing: images/s of the network alone, and which (runtime, precision) pairs
of a model to time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from detector.errors import ModelConfigError
from detector.options import DetectorOptions
from detector.request import (
    HALF_PRECISIONS,
    RESOLVED_PRECISIONS,
    RESOLVED_RUNTIMES,
    DetectorRequest,
)
from pipeline.bench.report import ModelResult

if TYPE_CHECKING:
    import torch

    from detector.engine import Detector

# The choices of the bench's options: the detector's own lists.
PRECISION_CHOICES: tuple[str, ...] = RESOLVED_PRECISIONS
RUNTIME_CHOICES: tuple[str, ...] = RESOLVED_RUNTIMES


def bench_weights(model: str) -> str:
    """The weights bench runs `model` with: the bundled model's own, random ones ("none",
    nothing downloaded) for the others."""
    return "default" if model == "person_ssdlite" else "none"


def configure_torch(threads: int = 0) -> None:
    """torch set up for timing: `threads` intra-op threads (0: a run's,
    `pipeline.build.torch_cpu_threads`), denormals flushed (random
    weights make them; see Pipeline.run). A CUDA detector turns cuDNN's autotuning on
    itself (`detector.engine.Detector`)."""
    import torch

    from pipeline.build import torch_cpu_threads

    torch.set_flush_denormal(True)
    torch.set_num_threads(threads or torch_cpu_threads())


def bench_model(
    detector: Detector,
    name: str,
    weights: str,
    precision: str,
    batch_size: int,
    repeat: int,
    min_time_s: float,
    warmup: int = 1,
) -> ModelResult:
    """images/s of `detector.forward` on random uint8 inputs [batch_size, 3, *input_size],
    after `warmup` untimed passes (kernel selection, allocator, cuDNN autotuning; CUDA
    graphs are recorded on the passes after the first compiled one)."""
    import torch

    device = detector.device
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (batch_size, 3, *detector.input_size), dtype=torch.uint8, generator=generator
    )
    images = images.to(device).contiguous(memory_format=torch.channels_last)

    def one_pass() -> None:
        with torch.inference_mode(), detector.autocast():
            detector.forward(images)

    for _ in range(warmup):
        one_pass()
    _sync(device)
    runs = []
    for _ in range(repeat):
        passes, started = 0, time.perf_counter()
        while True:
            one_pass()
            passes += 1
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= min_time_s:
                break
        runs.append(passes * batch_size / elapsed)
    return ModelResult(
        name, weights, detector.runtime, precision, batch_size, statistics.median(runs), runs
    )


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# What `Detector.build` will pick, asked of the detector's options (`DetectorOptions`).


def _resolve(**asked: str) -> DetectorOptions:
    """The options `Detector.build` would run with for `asked`; ModelConfigError where
    they cannot run here."""
    return DetectorOptions.resolve(DetectorRequest(**asked))  # type: ignore[arg-type]


def _runs(device: torch.device, runtime: str, precision: str) -> bool:
    """Whether `runtime` can run `precision` on `device` (int8 only on ONNX Runtime, ...)."""
    try:
        _resolve(device=str(device), runtime=runtime, precision=precision)
    except ModelConfigError:
        return False
    return True


def model_variants(
    device: torch.device,
    runtimes: Sequence[str] | None,
    precisions: Sequence[str] | None,
    model: str = "",
    weights: str = "none",
) -> list[tuple[str, str]]:
    """(runtime, precision) pairs to measure for `model` with `weights`: torch and compile
    run fp32 (and fp16/bf16 on CUDA), ONNX Runtime fp32 and int8, on the CPU only."""
    if not runtimes:
        runtimes = ["torch"]
        if _resolve(device=str(device)).runtime == "onnxruntime":
            runtimes.append("onnxruntime")
    pairs = []
    for runtime in runtimes:
        _resolve(device=str(device), runtime=runtime)  # a clear error for onnxruntime on CUDA
        for precision in model_precisions(device, precisions, model, weights):
            if _runs(device, runtime, precision):
                pairs.append((runtime, precision))
    return pairs


def model_precisions(
    device: torch.device, asked: Sequence[str] | None, model: str = "", weights: str = "none"
) -> list[str]:
    """Precisions to measure: `asked`, or fp32 everywhere, fp16 and bf16 on CUDA, and int8
    where `precision: auto` runs it (the bundled model on the CPU)."""
    if asked:
        for p in asked:
            _resolve(device=str(device), precision=p)  # a clear error for fp16 on the CPU
        return list(asked)
    if device.type == "cuda":
        return ["fp32", *HALF_PRECISIONS]
    auto = _resolve(model=model, weights=weights, device=str(device)).precision
    return ["fp32", "int8"] if auto == "int8" else ["fp32"]


def bench_device(asked: str) -> torch.device:
    """The device `--device` names, as the detector resolves it (auto: CUDA when there)."""
    return _resolve(device=asked).device
