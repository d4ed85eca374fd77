"""The sinks a config's `sinks:` entries describe, opened (each kind imported only when used)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import (
    LiveSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    SnapshotSinkConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    ZmqSinkConfig,
)
from pipeline.config.base import keep_s, mb_bytes
from pipeline.types import LabelMap
from pipeline.workers import QueueBound
from sinks.base import Sink, SinkError


def build_sinks(
    configs: Sequence[SinkConfig],
    labels: LabelMap,
    run_config: str,
    stop: threading.Event | None = None,
) -> list[tuple[Sink, QueueBound]]:
    """Every configured sink, opened, with its queue's bound; on failure the ones opened so far
    are closed and the SinkError goes on. `stop`: the run's (`SinkContext.stop`)."""
    built: list[tuple[Sink, QueueBound]] = []
    snapshots = next((c.dir for c in configs if isinstance(c, SnapshotSinkConfig)), None)
    context = SinkContext(labels, run_config, snapshots, stop=stop)
    try:
        for config in configs:
            built.append((build_sink(config, context), queue_bound(config)))
    except SinkError:
        for sink, _ in built:
            sink.close()
        raise
    return built


def queue_bound(config: SinkConfig) -> QueueBound:
    """A sink's queue as its section bounds it: `queue_size` messages, `queue_mb` of frames."""
    return QueueBound(config.queue_size, mb_bytes(config.queue_mb))


@dataclass(frozen=True)
class SinkContext:
    """What a sink is built with besides its own section: the detector's class names, the
    config file's name (the SQL sink records it with the run), and the snapshots sink's
    folder (the live view serves the snapshots from it), if there is one; `shard`: built
    by a cluster's shard, whose driver says what concerns the whole run (the pipeline's
    MQTT status); `stop`: the run's stop, which ends a sink's wait as it opens (for an MQTT
    broker that does not answer; a database that does not, or is locked: SinkStopped)."""

    labels: LabelMap
    run_config: str = ""
    snapshot_dir: Path | None = None
    shard: bool = False
    stop: threading.Event | None = None


# Each builder imports its sink where it is used, so that a run without a sink kind never
# imports that kind's libraries.
@functools.singledispatch
def build_sink(config: object, context: SinkContext) -> Sink:
    """The sink a `sinks:` entry describes, opened. Raises SinkError when it cannot open."""
    raise TypeError(f"unknown sink config {type(config).__name__}")


@build_sink.register
def _(sc: VideoSinkConfig, context: SinkContext) -> Sink:
    from sinks.video.encoding import Encoding
    from sinks.video.files import Rotation
    from sinks.video.sink import VideoSink

    encoding = Encoding(sc.codec, sc.crf, sc.preset, sc.fragmented, sc.threads, sc.width)
    rotation = Rotation(
        segment_s=None if sc.segment_minutes is None else sc.segment_minutes * 60,
        max_age_s=keep_s(sc.keep_hours),
        max_segments=sc.keep_files,
    )
    return VideoSink(sc.dir, context.labels, encoding=encoding, rotation=rotation)


@build_sink.register
def _(sc: LiveSinkConfig, context: SinkContext) -> Sink:
    from sinks.live_view.sink import LiveViewSink

    # served by the run's server (`PipelineConfig.server`), with the host, port and access
    # settings of this section when there is no `http:` section
    return LiveViewSink(
        context.labels,
        max_fps=sc.max_fps,
        jpeg_quality=sc.jpeg_quality,
        max_viewers=sc.max_viewers,
        snapshot_dir=context.snapshot_dir,
    )


@build_sink.register
def _(sc: ZmqSinkConfig, context: SinkContext) -> Sink:
    from sinks.event_bus.keys import CurveKeyError, server_secret_key
    from sinks.event_bus.publisher import EventPublisher

    secret = None
    if sc.curve is not None:
        try:
            secret = server_secret_key(sc.curve.secret_key_file, sc.curve.secret_key)
        except CurveKeyError as exc:
            raise SinkError(f"zmq sink: {exc}") from exc
    return EventPublisher(
        sc.endpoint,
        context.labels,
        send_hwm=sc.send_hwm,
        wait_for_subscribers=sc.wait_for_subscribers,
        wait_timeout_s=sc.wait_timeout_s,
        curve_secret_key=secret,
        curve_authorized_clients=None if sc.curve is None else sc.curve.authorized_clients,
        isolate_subscribers=sc.isolate_subscribers,
        stop=context.stop,
    )


@build_sink.register
def _(sc: SqlSinkConfig, context: SinkContext) -> Sink:
    from sinks.sql.sink import SqlSink

    return SqlSink(
        sc.url,
        context.labels,
        batch_size=sc.batch_size,
        run_config=context.run_config,
        flush_interval_s=sc.flush_interval_s,
        buffer_rows=sc.buffer_rows,
        spool_dir=sc.spool_dir,
        spool_max_bytes=mb_bytes(sc.spool_max_mb),
        close_timeout_s=sc.close_timeout_s,
        stop=context.stop,
    )


@build_sink.register
def _(sc: SnapshotSinkConfig, context: SinkContext) -> Sink:
    from sinks.snapshots.retention import Retention
    from sinks.snapshots.sink import SnapshotSink

    return SnapshotSink(
        sc.dir,
        retention=Retention(
            max_age_s=keep_s(sc.keep_hours),
            max_files=sc.keep_files,
            max_bytes=None if sc.keep_mb is None else mb_bytes(sc.keep_mb),
        ),
    )


@build_sink.register
def _(sc: MqttSinkConfig, context: SinkContext) -> Sink:
    from sinks.mqtt.settings import paho_missing

    if (missing := paho_missing()) is not None:
        raise SinkError(f"mqtt sink: {missing}")
    from sinks.mqtt.sink import MqttSink

    return MqttSink(
        sc.broker(),
        context.labels,
        prefix=sc.prefix,
        qos=sc.qos,
        events=sc.events,
        retain_events=sc.retain_events,
        buffer_size=sc.buffer_size,
        count_labels=sc.count_labels,
        discovery_prefix=sc.discovery_prefix if sc.homeassistant else None,
        close_timeout_s=sc.close_timeout_s,
        snapshots=sc.snapshots and context.snapshot_dir is not None,
        pipeline_status=not context.shard,
        stop=context.stop,
    )
