"""What the detector stage is asked to do: `DetectorRequest`, checked without hardware.

Its defaults are the defaults, and its checks are the rules: the config's `detector:` section
takes its defaults, bounds and names from here and validates by building a request. What
the request will do on this machine is `detector.options.DetectorOptions.resolve`'s to say.

Nothing here imports torch: `python -m pipeline` must not pay for it to read a config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypedDict, TypeVar, cast, get_args

from detector.errors import ModelConfigError

ResolvedRuntime = Literal["torch", "compile", "onnxruntime"]
"""What runs the network: PyTorch, PyTorch under `torch.compile`, or ONNX Runtime (CPU)."""
Runtime = Literal["auto", ResolvedRuntime]
ResolvedPrecision = Literal["fp32", "fp16", "bf16", "int8"]
"""What the network computes in: float32, fp16 or bf16 autocast (CUDA), or an int8 copy of
the network (ONNX Runtime on the CPU, `detector.quantize`)."""
Precision = Literal["auto", ResolvedPrecision]

RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
RESOLVED_RUNTIMES: tuple[ResolvedRuntime, ...] = get_args(ResolvedRuntime)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
RESOLVED_PRECISIONS: tuple[ResolvedPrecision, ...] = get_args(ResolvedPrecision)
AUTO: tuple[Literal["auto"]] = ("auto",)
TORCH_RUNTIMES: tuple[ResolvedRuntime, ...] = ("torch", "compile")
HALF_PRECISIONS: tuple[ResolvedPrecision, ...] = ("fp16", "bf16")

DEVICE_NAME = re.compile(r"auto|cpu|cuda(:(0|[1-9]\d?|1[01]\d|12[0-7]))?")
"""cuda:N takes N from 0 to 127 as torch writes it: torch keeps the index in 8 bits (cuda:128
is cuda:-128 to it) and refuses leading zeros."""


class IntervalBounds(TypedDict, total=False):
    """`Bounds` as the keywords of `annotated_types.Interval` (pydantic's constraints)."""

    ge: float
    gt: float
    le: float
    lt: float


@dataclass(frozen=True)
class Bounds:
    """The interval a number must lie in: checked by `DetectorRequest`, and given to the
    config's fields (`constraints`), so that both refuse the same values."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __str__(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else None
        low = f"({self.gt:g}" if self.gt is not None else low
        high = f"{self.le:g}]" if self.le is not None else None
        high = f"{self.lt:g})" if self.lt is not None else high
        if low is not None and high is not None:
            return f"in {low}, {high}"
        if low is not None:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        assert high is not None, "bounds without a bound"
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]

    def holds(self, value: float) -> bool:
        """Whether `value` lies within the bounds."""
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def check(self, name: str, value: float) -> None:
        """Raises ModelConfigError "{name} must be {self}, got {value}" outside the bounds."""
        if not self.holds(value):
            raise ModelConfigError(f"{name} must be {self}, got {value}")

    def constraints(self) -> IntervalBounds:
        """The bounds that are set, by name, for pydantic (`annotated_types.Interval`)."""
        return cast(IntervalBounds, {k: v for k, v in asdict(self).items() if v is not None})


BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        "score_threshold": Bounds(ge=0, lt=1),
        "nms_threshold": Bounds(gt=0, le=1),
        "max_detections": Bounds(ge=1, le=10_000),
        "pre_nms_top_k": Bounds(ge=1),
        "micro_batch": Bounds(ge=1),
        "workers": Bounds(ge=1, le=2),
        "batch_size": Bounds(ge=1, le=1024),
    }
)
"""The numeric fields of `DetectorRequest` and their bounds (None and "auto" are not
checked)."""


@dataclass(frozen=True)
class DetectorRequest:
    """What the detector stage is asked to do, checked; "auto" leaves a choice to
    `DetectorOptions.resolve`. Its defaults are the defaults (the config's come from here).

    Raises:
        ModelConfigError: a value out of bounds, an unknown name, or a combination that
            cannot run anywhere (int8 with torch, workers 2 on CUDA, ...), naming the field.
    """

    model: str = "person_ssdlite"
    """A registered model name or the path of a checkpoint (`detector.models.build_model`);
    the default is the bundled person detector, whose weights need no download."""
    weights: str = "default"
    """"default" (the model's pretrained weights), "none" (random) or a weights file."""
    device: str = "auto"
    """auto (CUDA when torch sees one), cpu, cuda or cuda:N."""
    runtime: Runtime = "auto"
    """What runs the network; auto: onnxruntime on the CPU where installed, else torch."""
    precision: Precision = "auto"
    """auto: fp16 on CUDA (fp32 for `FP32_ON_CUDA`); int8 for `INT8_BY_DEFAULT` on CPUs with
    VNNI; fp32 otherwise."""
    workers: int = 1
    """Batches detected at once, each on its own thread (2 needs onnxruntime on the CPU)."""
    batch_size: int | Literal["auto"] = "auto"
    """Frames per batch; auto: what measured fastest end to end on the device and runtime
    that run it (`detector.options.auto_batch_size`)."""
    calibration: Path | None = None
    """int8 only: a video whose frames calibrate it (default: the bundled sample clip)."""
    score_threshold: float = 0.5
    """Report detections scoring at least this (`reaches_threshold`)."""
    nms_threshold: float = 0.45
    """IoU above which the weaker of two same-class boxes is dropped."""
    max_detections: int = 100
    """At most this many detections per frame."""
    labels: Sequence[str] | None = None
    """Report only these class names (None or empty: all classes)."""
    pre_nms_top_k: int = 1000
    """At most this many (box, class) candidates per frame enter NMS."""
    micro_batch: int | None = None
    """Images per torch forward pass (None: `CPU_MICRO_BATCH` on the CPU, the whole batch on
    CUDA; ONNX Runtime always takes the whole batch); post-processing runs once per batch."""
    exact_resize: bool = False
    """Resize in float32 on the device exactly as torchvision's transform does (~10x slower
    on the CPU); by default every device is fed uint8 pixels resized on the host, at most 1
    grey level off. Needs runtime torch."""

    def __post_init__(self) -> None:
        # The Python API takes "Torch" or " FP16" too; the config spells them lower-case.
        object.__setattr__(self, "runtime", _choice("runtime", self.runtime, RUNTIMES))
        object.__setattr__(self, "precision", _choice("precision", self.precision, PRECISIONS))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        check_device(self.device)
        if isinstance(self.batch_size, str):
            object.__setattr__(self, "batch_size", _choice("batch_size", self.batch_size, AUTO))
        for name, bounds in BOUNDS.items():
            value = getattr(self, name)
            if value is not None and value != "auto":
                bounds.check(name, value)
        if self.calibration is not None and self.precision != "int8":
            raise ModelConfigError("calibration is only used with precision: int8")
        check_combination(
            self.device, self.runtime, self.precision, self.workers, self.exact_resize
        )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    choice = value.strip().lower()
    if choice not in allowed:
        raise ModelConfigError(f"invalid {name} {value!r}; use one of: {', '.join(allowed)}")
    return choice


def check_device(device: str) -> None:
    """Refuses a device name other than auto, cpu, cuda or cuda:N; whether that device is
    there is for `DetectorOptions.resolve` to say."""
    if not DEVICE_NAME.fullmatch(device):
        raise ModelConfigError(f"invalid device {device!r}; use auto, cpu, cuda or cuda:N")


def check_combination(
    device: str, runtime: str, precision: str, workers: int, exact_resize: bool
) -> None:
    """The rules between fields. "auto" breaks none of them: they are checked on a request as
    asked, and again on what `DetectorOptions.resolve` picked for it."""
    on_cuda, on_cpu = device.startswith("cuda"), device == "cpu"
    if precision == "int8":
        if runtime in TORCH_RUNTIMES:
            raise ModelConfigError(
                "precision int8 runs on onnxruntime; set `detector.runtime` to auto or onnxruntime"
            )
        if on_cuda:
            raise ModelConfigError(
                f"precision int8 runs on the CPU only (got device {device}); use fp16 on CUDA"
            )
    if precision in HALF_PRECISIONS and on_cpu:
        # CPU kernels for them are slower than float32 on CPUs without AMX.
        raise ModelConfigError(
            f"precision {precision} needs a CUDA device (got {device}); use fp32 or auto on the CPU"
        )
    if runtime == "onnxruntime":
        if on_cuda:
            raise ModelConfigError(
                f"runtime onnxruntime runs on the CPU only (got device {device}); "
                "use runtime torch or auto"
            )
        if exact_resize:
            raise ModelConfigError("exact_resize feeds float pixels; it needs runtime torch")
    if workers > 1 and (runtime in TORCH_RUNTIMES or on_cuda):
        raise ModelConfigError(
            f"workers {workers} needs runtime onnxruntime on the CPU (got {runtime} on {device}): "
            "torch runs share one thread pool, and CUDA overlaps batches with streams; "
            "set `detector.workers: 1`"
        )


DEFAULTS = DetectorRequest()
"""The default of every field (the config's defaults are these)."""


Scores = TypeVar("Scores")


def reaches_threshold(scores: Scores, score_threshold: float) -> Scores:
    """bool mask shaped like `scores` (a torch tensor or a numpy array): the scores a detector
    reports under `score_threshold`.

    The one statement of the rule: a score at or above the threshold is kept (one exactly
    equal to it too: int8 networks give few distinct scores, many of them on round values),
    one below it is dropped.
    """
    return cast(Scores, scores >= score_threshold)  # type: ignore[operator]
