"""The whole config: cameras, detector, tracker, sinks and the analytics rules."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline.config.base import Strict, yaml_path
from pipeline.config.cameras import CameraConfig
from pipeline.config.cluster import ClusterConfig, cluster_sink_problems
from pipeline.config.http import HttpConfig
from pipeline.config.mqtt import MqttSinkConfig
from pipeline.config.scene import AnalyticsConfig
from pipeline.config.sinks import (
    LiveSinkConfig,
    SinkConfig,
    SnapshotSinkConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    ZmqSinkConfig,
)
from pipeline.config.stages import DetectorConfig, TrackerConfig
from sinks.mqtt.discovery import hass_id

SERVER_FIELDS = ("host", "port", "allowed_hosts", "auth", "allow_unauthenticated")
"""The live sink's settings of the server it is on: they start the run's server when there is
no `http:` section (and must match it when there is)."""


def problem_at(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    """`message` as a config error at `loc` (the YAML path whose line it names), for a
    problem a whole-config check finds in one entry."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return InitErrorDetails(type=error, loc=loc, input=None)


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
    def _whole_config(self) -> PipelineConfig:
        """What no one section can check: every problem found, each at its place, at once."""
        errors = [
            *self._camera_ids_unique(),
            # The snapshot stage names each track's files after the one sink that writes them.
            *_at_most_one(self.sinks, SnapshotSinkConfig, "snapshots"),
            *self._sinks_fit_the_cluster(),
            *_at_most_one(self.sinks, LiveSinkConfig, "live"),
            *self._one_server(),
            *self._ports_used_once(),
            *self._outputs_apart(),
            *self._home_assistant_ids_apart(),
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _camera_ids_unique(self) -> list[InitErrorDetails]:
        seen: set[str] = set()
        errors = []
        for i, cam in enumerate(self.cameras):
            if cam.id in seen:
                errors.append(
                    problem_at(("cameras", i, "id"), f"camera id {cam.id!r} is used twice")
                )
            seen.add(cam.id)
        return errors

    def _sinks_fit_the_cluster(self) -> list[InitErrorDetails]:
        if self.cluster is None:
            return []
        problems = cluster_sink_problems(self.sinks)
        if self.http is not None:
            problems.append("http: the HTTP server does not run on a cluster yet")
        if problems:  # each names its sink; the `cluster:` section is what refuses them
            return [problem_at(("cluster",), "; ".join(problems))]
        return []

    def _one_server(self) -> list[InitErrorDetails]:
        """With an `http:` section the live view is on that server: the live sink's own
        server settings are left out, or say the same as `http:`."""
        live = self.live
        if self.http is None or live is None:
            return []
        index = self.sinks.index(live)
        return [
            problem_at(
                ("sinks", index, field),  # the value is in the YAML line the error names
                f"differs from http.{field}: with an `http:` section the live view is served "
                f"by that server (at /live/); leave `{field}` out here or give the same",
            )
            for field in SERVER_FIELDS
            if field in live.model_fields_set and getattr(live, field) != getattr(self.http, field)
        ]

    def _ports_used_once(self) -> list[InitErrorDetails]:
        """The run's HTTP server and zmq sinks each listen on a port of their own (a port
        another program holds is `validate`'s to find)."""
        errors = []
        seen: list[tuple[tuple[str | int, ...], str, int]] = []
        for loc, host, port in self._listeners():
            first = next((f for f, h, p in seen if p == port and _same_address(h, host)), None)
            if first is not None:
                errors.append(
                    problem_at(
                        loc,
                        f"port {port} is also the port of {yaml_path(first)}: the run listens "
                        "on each port once; give each its own",
                    )
                )
            seen.append((loc, host, port))
        return errors

    def _outputs_apart(self) -> list[InitErrorDetails]:
        """No two sinks write one place: two video sinks in one folder would write each
        camera's file under one name, one over the other, and two sql sinks on one database
        would store the run twice, doubling every count."""
        errors = []
        seen: dict[object, tuple[str | int, ...]] = {}
        for index, sink in enumerate(self.sinks):
            written = _written_place(sink)
            if written is None:
                continue
            field, place, noun, harm = written
            loc = ("sinks", index, field)
            first = seen.setdefault(place, loc)
            if first != loc:
                why = f"the same {noun} as {yaml_path(first)}: {harm}; give each its own"
                errors.append(problem_at(loc, why))
        return errors

    def _home_assistant_ids_apart(self) -> list[InitErrorDetails]:
        """With MQTT discovery two cameras (or zones, or lines of a camera) whose ids Home
        Assistant writes alike would be one device (or sensor) there."""
        if not any(isinstance(s, MqttSinkConfig) and s.homeassistant for s in self.sinks):
            return []
        named: list[tuple[tuple[str | int, ...], str, list[str]]] = [
            (("cameras",), "camera", [c.id for c in self.cameras])
        ]
        for c, cam in enumerate(self.cameras):
            named.append((("cameras", c, "zones"), "zone", [z.id for z in cam.zones]))
            named.append((("cameras", c, "lines"), "line", [li.id for li in cam.lines]))
        errors = []
        for where, kind, ids in named:
            first: dict[str, str] = {}
            for index, item in enumerate(ids):
                was = first.setdefault(hass_id(item), item)
                if was != item:
                    why = (
                        f"{item!r} is {hass_id(item)!r} in Home Assistant ids, as {kind} "
                        f"{was!r} is (anything but letters, digits, '_' and '-' is '_'): "
                        "name them apart by those, or leave homeassistant off"
                    )
                    errors.append(problem_at((*where, index, "id"), why))
        return errors

    def _listeners(self) -> list[tuple[tuple[str | int, ...], str, int]]:
        """Where the run listens on a TCP port of its choosing (not 0: any free one): the
        YAML path that sets it, the host and the port."""
        found: list[tuple[tuple[str | int, ...], str, int]] = []
        server = self.server()
        if server is not None and server.port:
            found.append((self.server_field_at("port"), server.host, server.port))
        for index, sink in enumerate(self.sinks):
            if isinstance(sink, ZmqSinkConfig):
                host, port = sink.bound_host(), sink.bound_port()
                if host is not None and port is not None:
                    found.append((("sinks", index, "endpoint"), host, port))
        return found

    def server_field_at(self, field: str) -> tuple[str | int, ...]:
        """The YAML path of the run's HTTP server's `field` (one of `SERVER_FIELDS`): under
        `http:`, or without it the live sink's."""
        live = self.live
        if self.http is not None or live is None:
            return ("http", field)
        return ("sinks", self.sinks.index(live), field)

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


_ANY_ADDRESS = ("*", "0.0.0.0", "::", "")


def _same_address(a: str, b: str) -> bool:
    """Whether servers on hosts `a` and `b` would want one socket (either on every address)."""
    return a == b or a in _ANY_ADDRESS or b in _ANY_ADDRESS


def _written_place(sink: SinkConfig) -> tuple[str, object, str, str] | None:
    """Where `sink` writes what another sink of its type must not write as well: its field,
    the place (a folder or a database, made comparable), what it is and what sharing it
    would do; None for a sink that writes no such place."""
    if isinstance(sink, VideoSinkConfig):
        folder = _resolved(sink.dir)
        if folder is None:
            return None
        return (
            "dir",
            ("video", folder),
            "folder",
            "each camera's file of one would replace the other's",
        )
    if isinstance(sink, SqlSinkConfig):
        from sinks.sql.database import DatabaseUrl  # SQLAlchemy: only for a sql sink

        url = DatabaseUrl(sink.url)
        if url.sqlite_file is not None:
            place: object = _resolved(url.sqlite_file)
            if place is None:
                return None
        elif sink.url.startswith("sqlite"):
            return None  # in memory: each sink has its own
        else:
            place = url.masked
        return (
            "url",
            ("sql", place),
            "database",
            "the run would be stored twice, every count doubled",
        )
    return None


def _resolved(path: Path) -> Path | None:
    """`path` absolute, its links followed; None for one the system cannot look up (a NUL in
    it, a link loop), which its own field's check names."""
    try:
        return path.expanduser().resolve()
    except (OSError, ValueError, RuntimeError):
        return None


def _at_most_one(
    sinks: list[SinkConfig], kind: type[LiveSinkConfig | SnapshotSinkConfig], name: str
) -> list[InitErrorDetails]:
    """A second sink of `kind` (and any after it) refused at its place in `sinks`."""
    places = [i for i, sink in enumerate(sinks) if isinstance(sink, kind)]
    return [problem_at(("sinks", i), f"at most one sink of type {name}") for i in places[1:]]
