"""What the detector stage will do on this machine: `DetectorOptions`, a `DetectorRequest`
with every `auto` choice settled here (CUDA or not, onnxruntime installed or not, 8-bit dot
products or not), the rules checked again on what was picked, and why it was picked.

Nothing here imports torch until `DetectorOptions.resolve` asks it about a GPU, which it does
only where this machine has a GPU device node (`host.gpu_device_nodes`), or until
`DetectorOptions.device` is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from detector import host
from detector.errors import ModelConfigError
from detector.measured_int8 import Int8Evidence, measured_int8
from detector.request import (
    TORCH_RUNTIMES,
    DetectorRequest,
    ResolvedPrecision,
    ResolvedRuntime,
    check_combination,
)
from pipeline.cores import cores_each, usable_cores

if TYPE_CHECKING:
    import torch

CPU_MICRO_BATCH = 2
"""Images per forward pass on the CPU. Larger batches buy nothing there: the activations of
a batch of 8 SSDLite images outgrow glibc's mmap threshold, so every forward pays page faults
for fresh memory (docs/performance.md, "Smaller choices in the code")."""

_CPU_BATCH = (
    1,
    "on the CPU larger batches ran no faster end to end, int8 and float32 alike, and each "
    'frame waits for its batch (docs/performance.md, "Batch size")',
)
_CUDA_BATCH = (
    32,
    "on CUDA a batch of 32 keeps the GPU busy where one frame would leave it waiting "
    "(not measured yet)",
)
AUTO_BATCH_SIZE: Mapping[tuple[str, ResolvedRuntime], tuple[int, str]] = MappingProxyType(
    {
        ("cpu", "onnxruntime"): _CPU_BATCH,
        ("cpu", "torch"): _CPU_BATCH,
        ("cpu", "compile"): _CPU_BATCH,
        ("cuda", "torch"): _CUDA_BATCH,
        ("cuda", "compile"): _CUDA_BATCH,
    }
)
"""Frames per batch under `batch_size: auto`, by device type and runtime, and why: what
runs fastest end to end there. A larger batch gains nothing per frame on the CPU, while each
frame waits for the rest of its batch."""

INT8_BY_DEFAULT: frozenset[str] = frozenset({"person_ssdlite"})
"""Registered models whose default weights run in int8 under `precision: auto` on CPUs with
8-bit dot products: their int8 accuracy against float32 was measured there
(docs/performance.md, "int8 accuracy"). A checkpoint does where `train` measured its int8
network within `detector.measured_int8.MAX_MAP50_LOSS` of float32."""
FP32_ON_CUDA: frozenset[str] = frozenset({"ssdlite320_mobilenet_v3_large"})
"""Registered models that `precision: auto` runs in float32 on CUDA, fp16 autocast being
the rule there: they ran faster in float32 (TF32 convolutions) than in fp16 at batch 1, 8
and 64 on an NVIDIA H200 (1.32-1.83x; docs/performance.md, "Measured on an NVIDIA H200")."""


@dataclass(frozen=True)
class DetectorOptions:
    """What the detector stage does on this machine: `request` with every `auto` settled.

    Made by `resolve`; a `Detector`'s options say what really runs, after any fallback.
    """

    request: DetectorRequest
    """What was asked; thresholds, labels and the engine settings are read from here."""
    device_name: str
    """Where the network runs, as torch names it ("cpu", "cuda", "cuda:1"); `device`."""
    runtime: ResolvedRuntime
    precision: ResolvedPrecision
    workers: int
    micro_batch: int | None
    """Images per torch forward pass; None: the whole batch (ONNX Runtime always)."""
    batch_size: int
    """Frames per batch: the request's, or for "auto" `auto_batch_size`."""
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Why each `auto` choice (or fallback) came out as it did, by field ("device",
    "runtime", "precision", "micro_batch", "workers", "batch_size"): the value first, then
    why."""
    int8_network: Path | None = None
    """For int8: the checkpoint's measured int8 network to run as it is
    (`detector.measured_int8`); None: the network is quantized here on calibration frames."""
    sharing: int = 1
    """The processes that share this machine's cores, this one among them (a cluster's
    shards on one machine): the network's CPU threads (ONNX Runtime's, torch's, the CUDA
    host copy's) take this process's share of them (`pipeline.cores.cores_each`)."""

    @classmethod
    def resolve(cls, request: DetectorRequest, sharing: int = 1) -> DetectorOptions:
        """Settles `request`'s `auto` choices on this machine, for one of `sharing` processes
        that share its cores (`DetectorOptions.sharing`).

        Raises:
            ModelConfigError: the device is not there, int8 without onnxruntime, or a rule
                broken by what `auto` picked (fp16 asked with device auto on a CPU, ...).
        """
        return cls._resolve(request, {}, sharing)

    def without_auto_int8(self, why: str) -> DetectorOptions | None:
        """These options with float32 for the int8 that precision auto picked but that could
        not be made here (`why`); None where int8 was asked for, or not picked."""
        if self.precision != "int8" or self.request.precision != "auto":
            return None
        return self._resolve(self.request, {"int8": why}, self.sharing)

    def without_auto_onnxruntime(self, why: str) -> DetectorOptions | None:
        """These options with torch (one worker) for the onnxruntime that runtime auto picked
        but that cannot run the network here (`why`); None where onnxruntime was asked for,
        or int8 (which runs on nothing else), or onnxruntime was not picked."""
        if (
            self.runtime != "onnxruntime"
            or self.request.runtime != "auto"
            or self.precision == "int8"
        ):
            return None
        return self._resolve(self.request, {"onnxruntime": why}, self.sharing)

    @property
    def device(self) -> torch.device:
        """Where the network runs, as a torch device (imports torch)."""
        import torch

        return torch.device(self.device_name)

    def describe(self) -> str:
        """One line: the model, what runs it where, and why each `auto` choice came out so."""
        measured = "" if self.int8_network is None else f" (measured: {self.int8_network.name})"
        return (
            f"detector: {self.request.model} on {self.device_name}, {self.runtime}, "
            f"{self.precision}{measured}, {self.workers} worker(s), batch {self.batch_size}"
            + self._share()
            + "".join(f"; {field}: {why}" for field, why in self.reasons.items())
        )

    def _share(self) -> str:
        """ ", the share of the cores its CPU threads take" where processes share them (a
        cluster's shards on one machine); nothing for a run alone on its machine."""
        if self.sharing <= 1:
            return ""
        return (
            f", CPU threads on {cores_each(self.sharing)} of {usable_cores()} cores "
            f"(shared by {self.sharing} shards on this machine)"
        )

    def warm_up_batches(self) -> list[int]:
        """Frames of each batch to detect before a run, so that each forward shape it can
        use (`forward_rows`) is autotuned by cuDNN, or compiled, in set-up rather than at
        the run's first batches: on CUDA one batch of each padded size; under `compile`
        one batch (padded to the batch size); none on the CPU otherwise, where a shape
        costs nothing the first time and set-up time counts (docs/performance.md)."""
        if self.runtime == "compile":
            return [1]
        if self.device_name == "cpu":
            return []
        return sorted({self.forward_rows(frames) for frames in range(1, self.batch_size + 1)})

    def forward_rows(self, frames: int) -> int:
        """Rows of the forward pass that detects a batch of `frames` frames.

        A run's batches vary in size, and cuDNN's autotuning and `torch.compile` work once
        per input shape (docs/performance.md, "Padded batches on CUDA"). Under `compile`,
        on any device, the batch size: one shape, compiled once, where each other one would
        stall the run for tens of seconds (minutes on a small CPU). Otherwise on CUDA the
        next power of two, at most the batch size, which bounds a run to about
        log2(batch size) + 1 shapes; on the CPU `frames`: padding would cost real work
        there. Never fewer than `frames`.
        """
        if self.runtime == "compile":
            return max(frames, self.batch_size)
        if self.device_name == "cpu" or frames <= 1:
            return frames
        return max(frames, min(1 << (frames - 1).bit_length(), self.batch_size))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of fp16 and bf16 (CUDA); None for fp32, and for int8, whose
        network is int8 itself."""
        import torch

        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)

    @classmethod
    def _resolve(
        cls, request: DetectorRequest, failed: Mapping[str, str], sharing: int
    ) -> DetectorOptions:
        """`resolve`, where the auto choices in `failed` ("int8", "onnxruntime") were tried
        and could not be made, for the reasons given."""
        here, device_why = _device(request.device)
        device_type = here.partition(":")[0]
        check_combination(
            here, request.runtime, request.precision, request.workers, request.exact_resize
        )
        evidence = _int8_evidence(request)
        precision, precision_why = _precision(request, device_type, failed, evidence)
        runtime, runtime_why = _runtime(request, device_type, precision, failed)
        workers, workers_why = request.workers, None
        if "onnxruntime" in failed and workers > 1:
            workers, workers_why = 1, "1: onnxruntime failed, and torch runs share one thread pool"
        micro_batch, micro_batch_why = _micro_batch(request, device_type, runtime)
        batch_size, batch_size_why = request.batch_size, None
        if batch_size == "auto":
            batch_size, why = auto_batch_size(device_type, runtime)
            batch_size_why = f"{batch_size}: {why}"
        check_combination(here, runtime, precision, workers, request.exact_resize)
        reasons = {
            "device": device_why,
            "precision": precision_why,
            "runtime": runtime_why,
            "workers": workers_why,
            "micro_batch": micro_batch_why,
            "batch_size": batch_size_why,
        }
        return cls(
            request,
            here,
            runtime,
            precision,
            workers,
            micro_batch,
            batch_size,
            MappingProxyType({k: v for k, v in reasons.items() if v is not None}),
            evidence.network
            if precision == "int8" and evidence is not None and evidence.measurement is not None
            else None,
            max(1, sharing),
        )


def auto_batch_size(device_type: str, runtime: ResolvedRuntime) -> tuple[int, str]:
    """Frames per batch under `batch_size: auto` for a network that `runtime` runs on a
    device of `device_type` ("cpu", "cuda"), and why: `AUTO_BATCH_SIZE`."""
    return AUTO_BATCH_SIZE[("cuda" if device_type == "cuda" else "cpu", runtime)]


def _device(name: str) -> tuple[str, str | None]:
    """The torch device `name` stands for (as torch names it), and why where it was "auto".
    Asks torch only where a GPU could be (`host.gpu_device_nodes`)."""
    if name == "cpu":
        return name, None
    if name == "auto" and not host.gpu_device_nodes():
        return "cpu", "cpu: torch sees no CUDA device"
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda", "cuda: torch sees a CUDA device"
        return "cpu", "cpu: torch sees no CUDA device"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelConfigError(
                f"device {name!r} requested but CUDA is not available to torch "
                f"{torch.__version__}; set `detector.device: cpu` (or auto)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ModelConfigError(
                f"device {name!r} requested but only {count} CUDA device(s) exist "
                f"(cuda:0..cuda:{count - 1})"
            )
    return str(device), None


def _int8_evidence(request: DetectorRequest) -> Int8Evidence | None:
    """What is known beside the checkpoint `request.model` of its int8 network; None for a
    registered model, where a calibration clip asks for a network quantized on it, or where
    int8 is out of the question (float precisions asked for)."""
    checkpoint = Path(request.model).expanduser()
    if (
        request.precision not in ("auto", "int8")
        or request.calibration is not None
        or not checkpoint.is_file()
    ):
        return None
    return measured_int8(checkpoint)


def _precision(
    request: DetectorRequest,
    device_type: str,
    failed: Mapping[str, str],
    evidence: Int8Evidence | None,
) -> tuple[ResolvedPrecision, str | None]:
    """What the network computes in, and why where the request said "auto"."""
    if request.precision != "auto":
        return request.precision, None
    if device_type == "cuda" and request.model in FP32_ON_CUDA:
        return "fp32", f"fp32: {request.model} ran faster in float32 than fp16 on CUDA"
    if device_type == "cuda":
        return "fp16", "fp16: autocast on CUDA"
    measured, why_not = _int8_accuracy(request, evidence)
    why_not = why_not or _why_not_int8(request, failed)
    if why_not is None:
        return "int8", f"int8: {measured} and this CPU has 8-bit dot products (VNNI)"
    return "fp32", f"fp32: {why_not}"


def _int8_accuracy(
    request: DetectorRequest, evidence: Int8Evidence | None
) -> tuple[str | None, str | None]:
    """Where int8's accuracy was measured well enough for precision auto: what says so, and
    None; else None, and why not."""
    if evidence is not None:
        found = evidence.measurement
        if found is None:
            return None, (
                f"{evidence.why_none}; `python -m pipeline train` measures the checkpoints "
                "it writes"
            )
        if not found.acceptable:
            return None, f"int8 lost too much: {found.describe()}"
        return found.describe(), None
    if request.model not in INT8_BY_DEFAULT:
        return None, (
            f"int8 accuracy was measured for {', '.join(sorted(INT8_BY_DEFAULT))} and for "
            "the checkpoints `python -m pipeline train` measured only"
        )
    if request.weights != "default":
        return None, f"{request.model}'s int8 accuracy was measured with its default weights only"
    return f"{request.model}'s int8 accuracy was measured", None


def _why_not_int8(request: DetectorRequest, failed: Mapping[str, str]) -> str | None:
    """Why precision auto is not int8 on this CPU for a model whose int8 accuracy holds; None
    where it is: where int8's speed and accuracy were measured (docs/performance.md, "int8
    accuracy"), what a 2-core machine needs to keep up."""
    if "int8" in failed:
        return f"int8 could not be made here ({failed['int8']})"
    if request.runtime in TORCH_RUNTIMES:
        return f"int8 runs on onnxruntime, not {request.runtime}"
    if request.exact_resize:
        return "exact_resize feeds float pixels, and int8 runs on uint8 ones"
    if not host.has_int8_dot_products():
        return "this CPU has no 8-bit dot products (AVX-512 VNNI or AVX-VNNI) to run int8 on"
    if "onnxruntime" in failed:
        return f"int8 runs on onnxruntime, which failed here ({failed['onnxruntime']})"
    if not host.onnxruntime_available():
        return f"int8 runs on onnxruntime, which is not installed ({host.ONNXRUNTIME_INSTALL})"
    return None


def _runtime(
    request: DetectorRequest,
    device_type: str,
    precision: ResolvedPrecision,
    failed: Mapping[str, str],
) -> tuple[ResolvedRuntime, str | None]:
    """What runs the network, and why where the request said "auto"."""
    if precision == "int8":
        if not host.onnxruntime_available():
            raise ModelConfigError(
                f"precision int8 needs onnxruntime ({host.ONNXRUNTIME_INSTALL}); "
                "or set `detector.precision: fp32`"
            )
        if request.runtime == "auto":
            return "onnxruntime", "onnxruntime: int8 runs on onnxruntime"
    if request.runtime != "auto":
        return request.runtime, None
    if device_type != "cpu":
        return "torch", "torch: onnxruntime runs on the CPU only"
    if request.exact_resize:
        return "torch", "torch: exact_resize feeds float pixels, and onnxruntime takes uint8"
    if "onnxruntime" in failed:
        return "torch", f"torch: onnxruntime failed here ({failed['onnxruntime']})"
    if not host.onnxruntime_available():
        return "torch", f"torch: onnxruntime is not installed ({host.ONNXRUNTIME_INSTALL})"
    return "onnxruntime", "onnxruntime: about twice torch's speed on the CPU (docs/performance.md)"


def _micro_batch(
    request: DetectorRequest, device_type: str, runtime: ResolvedRuntime
) -> tuple[int | None, str | None]:
    """Images per torch forward pass, and why where the request left it to the engine."""
    if request.micro_batch is not None:
        return request.micro_batch, None
    if runtime == "onnxruntime":
        return None, "the whole batch: onnxruntime runs it at once"
    if device_type == "cpu":
        return CPU_MICRO_BATCH, (
            f"{CPU_MICRO_BATCH}: larger CPU batches outgrow glibc's mmap threshold and page-fault"
        )
    return None, "the whole batch: one pass on CUDA"
