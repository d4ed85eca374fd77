"""The `detector:` and `tracker:` sections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, cast

from annotated_types import Interval
from pydantic import (
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from detector.errors import ModelConfigError
from detector.measured_int8 import MAX_MAP50_LOSS
from detector.request import BOUNDS, DEFAULTS, DetectorRequest, Precision, Runtime, check_device
from pipeline.config.base import FsPath, Strict, name_fits

BATCHER_KEYS = frozenset({"max_wait_ms"})
"""The keys of the `detector:` section that are the batcher's; the others make the request."""


def _bounds(name: str) -> Interval:
    """The bounds of the request's field `name`, as pydantic takes them."""
    return Interval(**BOUNDS[name].constraints())


class DetectorConfig(Strict):
    """The `detector:` section: a `DetectorRequest` (its defaults, bounds and rules) plus
    the batching keys; `to_request` is what the detector is built from."""

    model: str = Field(
        DEFAULTS.model,
        min_length=1,
        description=(
            "Model name: person_ssdlite (the default: the bundled person detector, works "
            "offline), ssdlite320_mobilenet_v3_large or ssd300_vgg16 (80 COCO classes, weights "
            "downloaded once), or the path of a checkpoint (the best.pt `python -m pipeline "
            "train` writes; docs/models.md)."
        ),
    )
    weights: str = Field(
        DEFAULTS.weights,
        min_length=1,
        description=(
            "'default': the model's pretrained weights (torchvision's COCO weights are "
            "downloaded once); 'none': random weights (tests); or a path to a weights file."
        ),
    )
    device: str = Field(
        DEFAULTS.device,
        description="auto (CUDA when available), cpu, cuda or cuda:N.",
    )
    runtime: Runtime = Field(
        DEFAULTS.runtime,
        description=(
            "What runs the network: torch; compile (torch.compile, with CUDA graphs on CUDA: "
            "faster once compiled; every batch is padded to batch_size, so it compiles once, "
            "for tens of seconds, at the first batch of every start); or "
            "onnxruntime (CPU only; about twice as fast there, the network exported to ONNX "
            "once and cached). auto: onnxruntime on the CPU when installed, torch otherwise."
        ),
    )
    precision: Precision = Field(
        DEFAULTS.precision,
        description=(
            "Arithmetic of the network. auto: fp16 autocast on CUDA (fp32 for "
            "ssdlite320_mobilenet_v3_large, measured faster so); int8 on CPUs with VNNI "
            "where its int8 accuracy was measured: person_ssdlite's bundled weights, and "
            "checkpoints whose int8 network `train` measured within "
            f"{MAX_MAP50_LOSS:g} mAP@.5 of float32; fp32 otherwise. "
            "fp16 and bf16 are CUDA only. int8 (CPU, onnxruntime): a quantized copy, faster "
            "for slightly fewer detections (figures in docs/performance.md)."
        ),
    )
    calibration: FsPath | None = Field(
        DEFAULTS.calibration,
        description=(
            "For precision int8: a video file like the cameras' footage, on whose frames the "
            "int8 ranges are measured (default: a checkpoint's measured int8 network, else "
            "the bundled sample clip)."
        ),
    )
    workers: Annotated[int, _bounds("workers")] = Field(
        DEFAULTS.workers,
        description=(
            "Batches detected at once, each on its own thread. 2 overlaps one batch's resizing "
            "and post-processing with the other's network, each ONNX Runtime run on half the "
            "cores (more throughput where the detector is the bottleneck; each batch takes "
            "longer). 2 needs runtime onnxruntime (CPU)."
        ),
    )
    batch_size: Annotated[int, _bounds("batch_size")] | Literal["auto"] = Field(
        DEFAULTS.batch_size,
        description=(
            "Frames per inference batch, taken round-robin from all cameras. auto: what "
            "measured fastest end to end on the device and runtime that run the network "
            "(docs/performance.md); the run's start line says what it picked and why."
        ),
    )
    max_wait_ms: float = Field(
        20.0,
        ge=0,
        le=10_000,
        description="Longest wait for a batch to fill once its first frame is there.",
    )
    score_threshold: Annotated[float, _bounds("score_threshold")] = Field(
        DEFAULTS.score_threshold,
        description="Boxes scoring below are dropped; one scoring exactly this is kept.",
    )
    nms_threshold: Annotated[float, _bounds("nms_threshold")] = Field(
        DEFAULTS.nms_threshold,
        description="IoU above which overlapping boxes of a class are merged.",
    )
    max_detections: Annotated[int, _bounds("max_detections")] = Field(
        DEFAULTS.max_detections,
        description="Most boxes kept per frame.",
    )
    labels: list[str] | None = Field(
        None,
        description=(
            "Only keep these class names (e.g. [person, car]; case and surrounding spaces "
            "aside); all when absent."
        ),
    )

    def to_request(self) -> DetectorRequest:
        """What this section asks of the detector: every key but the batcher's (raises
        ModelConfigError on a broken rule; a validated config breaks none)."""
        return DetectorRequest(**self.model_dump(exclude=set(BATCHER_KEYS)))

    @field_validator("batch_size", mode="wrap")
    @classmethod
    def _batch_size_in_one_line(
        cls, value: object, handler: ValidatorFunctionWrapHandler
    ) -> int | Literal["auto"]:
        # One problem, not one per member of the union.
        try:
            return cast(int | Literal["auto"], handler(value))
        except ValidationError:
            raise ValueError(
                f"must be auto or a whole number {BOUNDS['batch_size']}, got {value!r}"
            ) from None

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, value: str) -> str:
        _as_value_error(check_device, value)  # here, so that the error names the key
        return value

    @model_validator(mode="after")
    def _request_is_valid(self) -> DetectorConfig:
        _as_value_error(self.to_request)
        return self

    @field_validator("calibration")
    @classmethod
    def _calibration_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"calibration clip not found: {value}")
        return value

    @field_validator("weights")
    @classmethod
    def _weights_file_exists(cls, value: str) -> str:
        if value not in ("default", "none") and not Path(name_fits(value)).expanduser().is_file():
            raise ValueError(f"weights must be 'default', 'none' or an existing file: {value}")
        return value

    @field_validator("model")
    @classmethod
    def _checkpoint_exists(cls, value: str) -> str:
        looks_like_path = "/" in value or value.endswith((".pt", ".pth"))
        if looks_like_path and not Path(value).expanduser().is_file():
            raise ValueError(f"checkpoint file not found: {value}")
        return value


def _as_value_error(check: Callable[..., object], *args: object) -> None:
    """Runs a detector check; its ModelConfigError becomes the ValueError that pydantic
    reports at the key's YAML path (the section's, for a model validator)."""
    try:
        check(*args)
    except ModelConfigError as exc:
        raise ValueError(str(exc)) from None


class TrackerConfig(Strict):
    type: Literal["iou"] = Field("iou", description="Tracker kind.")
    sigma_l: float = Field(0.0, ge=0, le=1, description="Detections scoring below are not tracked.")
    sigma_h: float = Field(
        0.5, ge=0, le=1, description="A track is confirmed only once a detection scores this high."
    )
    sigma_iou: float = Field(
        0.3, gt=0, le=1, description="Least IoU between a track's predicted box and its next one."
    )
    t_min: int = Field(
        2, ge=1, le=1000, description="Detections a track needs before it gets an id."
    )
    max_age: int = Field(
        30,
        ge=0,
        le=100_000,
        description=(
            "Frames a track lives on without a detection, its box moving at its last velocity "
            "(0: the paper's tracker, ended by the first miss)."
        ),
    )

    @model_validator(mode="after")
    def _sigma_h_not_below_sigma_l(self) -> TrackerConfig:
        if self.sigma_h < self.sigma_l:
            raise ValueError(
                f"sigma_h ({self.sigma_h}) must be >= sigma_l ({self.sigma_l}): "
                "a track is confirmed by a detection it was allowed to use"
            )
        return self
