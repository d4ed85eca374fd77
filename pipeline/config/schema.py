"""The whole config: cameras, detector, tracker, sinks and the analytics rules."""

from __future__ import annotations

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline.config.base import Strict
from pipeline.config.cameras import CameraConfig
from pipeline.config.cluster import ClusterConfig, cluster_sink_problems
from pipeline.config.http import HttpConfig
from pipeline.config.scene import AnalyticsConfig
from pipeline.config.sinks import LiveSinkConfig, SinkConfig, SnapshotSinkConfig
from pipeline.config.stages import DetectorConfig, TrackerConfig

SERVER_FIELDS = ("host", "port", "allowed_hosts", "auth", "allow_unauthenticated")
"""The live sink's settings of the server it is on: they start the run's server when there is
no `http:` section (and must match it when there is)."""


def refused_at(loc: tuple[str | int, ...], message: str) -> ValidationError:
    """`message` as a config error at `loc` (the YAML path whose line it names), for a
    problem a whole-config check finds in one entry."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "PipelineConfig", [InitErrorDetails(type=error, loc=loc, input=None)]
    )


class PipelineConfig(Strict):
    cameras: list[CameraConfig] = Field(min_length=1, description="Video sources to process.")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    sinks: list[SinkConfig] = Field(default_factory=list, description="Where results go.")
    http: HttpConfig | None = Field(
        None,
        description="The pipeline's HTTP server: Prometheus /metrics, /healthz, the API and "
        "the live view at /live/ (none: no server, or the live sink's own).",
    )
    analytics: AnalyticsConfig = Field(
        default_factory=AnalyticsConfig,
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
        for i, cam in enumerate(self.cameras):
            if cam.id in seen:
                raise refused_at(("cameras", i, "id"), f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        return self

    @model_validator(mode="after")
    def _one_snapshots_sink(self) -> PipelineConfig:
        # The snapshot stage names each track's files after the one sink that writes them.
        _at_most_one(self.sinks, SnapshotSinkConfig, "snapshots")
        return self

    @model_validator(mode="after")
    def _sinks_fit_the_cluster(self) -> PipelineConfig:
        if self.cluster is None:
            return self
        problems = cluster_sink_problems(self.sinks)
        if self.http is not None:
            problems.append("http: the HTTP server does not run on a cluster yet")
        if problems:  # each names its sink; the `cluster:` section is what refuses them
            raise refused_at(("cluster",), "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _one_live_view(self) -> PipelineConfig:
        _at_most_one(self.sinks, LiveSinkConfig, "live")
        return self

    @model_validator(mode="after")
    def _one_server(self) -> PipelineConfig:
        """With an `http:` section the live view is on that server: the live sink's own
        server settings are left out, or say the same as `http:`."""
        live = self.live
        if self.http is None or live is None:
            return self
        index = self.sinks.index(live)
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "value_error",  # the value is in the YAML line the error names
                    "differs from http.{field}: with an `http:` section the live view is "
                    "served by that server (at /live/); leave `{field}` out here or give "
                    "the same",
                    {"field": field},
                ),
                loc=("sinks", index, field),
                input=None,
            )
            for field in SERVER_FIELDS
            if field in live.model_fields_set and getattr(live, field) != getattr(self.http, field)
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def server(self) -> HttpConfig | None:
        """The run's one HTTP server: the `http:` section; without one, the live sink's
        `SERVER_FIELDS` (serving the live view alone, at the root); None without either."""
        if self.http is not None:
            return self.http
        live = self.live
        if live is None:
            return None
        return HttpConfig(
            **{field: getattr(live, field) for field in SERVER_FIELDS}, metrics=False, api=False
        )

    @property
    def live(self) -> LiveSinkConfig | None:
        """The live sink, if any."""
        return next((s for s in self.sinks if isinstance(s, LiveSinkConfig)), None)

    @property
    def snapshots(self) -> SnapshotSinkConfig | None:
        """The snapshots sink, if any: the pipeline keeps track snapshots only for it."""
        return next((s for s in self.sinks if isinstance(s, SnapshotSinkConfig)), None)


def _at_most_one(
    sinks: list[SinkConfig], kind: type[LiveSinkConfig | SnapshotSinkConfig], name: str
) -> None:
    """Refuses a second sink of `kind`, at its place in `sinks`."""
    places = [i for i, sink in enumerate(sinks) if isinstance(sink, kind)]
    if len(places) > 1:
        raise refused_at(("sinks", places[1]), f"at most one sink of type {name}")
