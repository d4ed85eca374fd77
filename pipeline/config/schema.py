"""The whole config: cameras, detector, tracker and sinks."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.base import Strict
from pipeline.config.cameras import CameraConfig
from pipeline.config.sinks import SinkConfig
from pipeline.config.stages import DetectorConfig, TrackerConfig


class PipelineConfig(Strict):
    cameras: list[CameraConfig] = Field(min_length=1, description="Video sources to process.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)  # type: ignore[arg-type]
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)  # type: ignore[arg-type]
    sinks: list[SinkConfig] = Field(default_factory=list, description="Where results go.")

    @model_validator(mode="after")
    def _camera_ids_unique(self) -> PipelineConfig:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        return self
