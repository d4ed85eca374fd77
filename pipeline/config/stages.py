"""The `detector:` and `tracker:` sections."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Strict


class DetectorConfig(Strict):
    model: str = Field(
        "ssdlite320_mobilenet_v3_large",
        min_length=1,
        description=(
            "Model name (ssdlite320_mobilenet_v3_large, ssd300_vgg16, person_ssdlite) "
            "or the path of a checkpoint saved by detector.save_checkpoint."
        ),
    )
    weights: str = Field(
        "default",
        min_length=1,
        description=(
            "'default': the model's pretrained weights (torchvision's COCO weights are "
            "downloaded once); 'none': random weights (tests); or a path to a weights file."
        ),
    )
    device: str = Field(
        "auto",
        description="auto (CUDA when available), cpu, cuda or cuda:N.",
    )
    runtime: Literal["auto", "torch", "compile", "onnxruntime"] = Field(
        "auto",
        description=(
            "What runs the network: torch; compile (torch.compile, with CUDA graphs on CUDA: "
            "faster once compiled, tens of seconds per batch size at every start); or "
            "onnxruntime (CPU only; about twice as fast there, the network exported to ONNX "
            "once and cached). auto: onnxruntime on the CPU when installed, torch otherwise."
        ),
    )
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = Field(
        "auto",
        description=(
            "Arithmetic of the network. auto: fp16 autocast on CUDA; int8 for person_ssdlite's "
            "bundled weights on CPUs with VNNI (where its int8 accuracy was measured); fp32 "
            "otherwise. "
            "fp16 and bf16 are CUDA only. int8 (CPU, onnxruntime): a quantized copy, 2-2.5x "
            "faster, finding ~94% of fp32's detections (docs/performance.md)."
        ),
    )
    calibration: Path | None = Field(
        None,
        description=(
            "For precision int8: a video file like the cameras' footage, on whose frames the "
            "int8 ranges are measured (default: the bundled sample clip)."
        ),
    )
    workers: int = Field(
        1,
        ge=1,
        le=2,
        description=(
            "Batches detected at once, each on its own thread. 2 overlaps one batch's resizing "
            "and post-processing with the other's network, each ONNX Runtime run on half the "
            "cores (more throughput where the detector is the bottleneck; each batch takes "
            "longer). 2 needs runtime onnxruntime (CPU)."
        ),
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Frames per inference batch.")
    max_wait_ms: float = Field(
        20.0,
        ge=0,
        le=10_000,
        description="Longest wait for a batch to fill once its first frame is there.",
    )
    score_threshold: float = Field(0.5, ge=0, le=1, description="Boxes scoring below are dropped.")
    nms_threshold: float = Field(
        0.45, gt=0, le=1, description="IoU above which overlapping boxes of a class are merged."
    )
    max_detections: int = Field(100, ge=1, le=10_000, description="Most boxes kept per frame.")
    labels: list[str] | None = Field(
        None, description="Only keep these class names (e.g. [person, car]); all when absent."
    )

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("calibration")
    @classmethod
    def _calibration_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"calibration clip not found: {value}")
        return value

    @model_validator(mode="after")
    def _int8_runs_on_onnxruntime(self) -> DetectorConfig:
        if self.precision != "int8":
            if self.calibration is not None:
                raise ValueError("calibration is only used with precision: int8")
            return self
        if self.runtime in ("torch", "compile"):
            raise ValueError(
                "precision int8 runs on onnxruntime: set runtime to auto or onnxruntime"
            )
        if self.device.startswith("cuda"):
            raise ValueError("precision int8 runs on the CPU only: set device to cpu")
        return self

    @model_validator(mode="after")
    def _workers_need_onnxruntime(self) -> DetectorConfig:
        if self.workers == 2 and (
            self.runtime in ("torch", "compile") or self.device.startswith("cuda")
        ):
            raise ValueError(
                "workers: 2 needs runtime onnxruntime on the CPU (torch runs share one thread "
                "pool; CUDA overlaps batches with streams): set workers to 1"
            )
        return self

    @field_validator("weights")
    @classmethod
    def _weights_file_exists(cls, value: str) -> str:
        if value not in ("default", "none") and not Path(value).expanduser().is_file():
            raise ValueError(f"weights must be 'default', 'none' or an existing file: {value}")
        return value

    @field_validator("model")
    @classmethod
    def _checkpoint_exists(cls, value: str) -> str:
        looks_like_path = "/" in value or value.endswith((".pt", ".pth"))
        if looks_like_path and not Path(value).expanduser().is_file():
            raise ValueError(f"checkpoint file not found: {value}")
        return value


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
