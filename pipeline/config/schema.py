"""The whole config: cameras, detector, tracker, sinks and the analytics rules."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.base import Strict
from pipeline.config.cameras import CameraConfig
from pipeline.config.cluster import ClusterConfig, cluster_sink_problems
from pipeline.config.http import HttpConfig
from pipeline.config.scene import AnalyticsConfig
from pipeline.config.sinks import SinkConfig, SnapshotSinkConfig
from pipeline.config.stages import DetectorConfig, TrackerConfig


class PipelineConfig(Strict):
    cameras: list[CameraConfig] = Field(min_length=1, description="Video sources to process.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)  # type: ignore[arg-type]
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)  # type: ignore[arg-type]
    sinks: list[SinkConfig] = Field(default_factory=list, description="Where results go.")
    http: HttpConfig | None = Field(
        None,
        description="The pipeline's HTTP server: Prometheus /metrics, /healthz and the API "
        "(none: no server).",
    )
    analytics: AnalyticsConfig = Field(
        default_factory=AnalyticsConfig,  # type: ignore[arg-type]
        description="Rules for the cameras' zones and lines (a camera's own section wins).",
    )

    cluster: ClusterConfig | None = Field(
        default=None, description="Run the cameras on a Ray cluster (none: in this process)."
    )

    def analytics_of(self, camera: CameraConfig) -> AnalyticsConfig:
        """The rules `camera`'s zones and lines are judged by: its own section, else this."""
        return camera.analytics or self.analytics

    @model_validator(mode="after")
    def _camera_ids_unique(self) -> PipelineConfig:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        return self

    @model_validator(mode="after")
    def _one_snapshots_sink(self) -> PipelineConfig:
        # The snapshot stage names each track's files after the one sink that writes them.
        if sum(isinstance(s, SnapshotSinkConfig) for s in self.sinks) > 1:
            raise ValueError("at most one sink of type snapshots")
        return self

    @model_validator(mode="after")
    def _sinks_fit_the_cluster(self) -> PipelineConfig:
        if self.cluster is None:
            return self
        problems = cluster_sink_problems(self.sinks)
        if self.http is not None:
            problems.append("http: the HTTP server does not run on a cluster yet")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def snapshots(self) -> SnapshotSinkConfig | None:
        """The snapshots sink, if any: the pipeline keeps track snapshots only for it."""
        return next((s for s in self.sinks if isinstance(s, SnapshotSinkConfig)), None)
