"""`MqttSink`: the run's events on an MQTT broker, and each camera's state kept there.

Events go to `<prefix>/<camera>/<type>` with the JSON bodies of the ZeroMQ bus
(`sinks.event_stream`). Retained state: `<prefix>/status` (`online`, or `offline`: the
last will), `<prefix>/<camera>/status` (`online` while the camera delivers frames) and
`<prefix>/<camera>/count/<label>` (boxes of that label in the latest detected frame),
for a camera with zones `<prefix>/<camera>/zone/<zone>/count[/<label>]` (tracks inside),
for one with lines `<prefix>/<camera>/line/<line>/count/<direction>` (crossings this run;
both kinds at 0 from the stream's start when it says its zones and lines),
and with `snapshots` `<prefix>/<camera>/snapshot` (the JPEG of the latest ended track's
best detection, which its "ended" event carries when a snapshots sink runs).
With Home Assistant discovery each camera appears as a device with those as sensors, and
the snapshot as an image.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Collection, Iterable, Sequence

import cv2

from pipeline.types import (
    AnalyticsEvent,
    CameraStatus,
    Detections,
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    LineCrossing,
    SceneLayout,
    SinkMetric,
    Snapshot,
    StreamEnd,
    StreamInfo,
    TrackEvent,
    ZoneOccupancy,
)
from sinks.base import Sink, SinkError
from sinks.event_bus.resumption import Published
from sinks.event_bus.schema import EVENT_TYPES
from sinks.event_stream import BusEvent, EventStream, encode
from sinks.mqtt.connection import MqttConnection
from sinks.mqtt.discovery import Discovery
from sinks.mqtt.settings import BrokerSettings
from sinks.mqtt.topics import OFFLINE, ONLINE, Topics

_ONLINE_STATES = {"streaming"}
_OFFLINE_STATES = {"reconnecting", "stopped", "failed"}
"""Camera states (`CameraStatus.state`) that make the camera online / offline;
`connecting` changes nothing."""
SNAPSHOT_JPEG_QUALITY = 90


class MqttSink(Sink):
    """Publishes events and state to the broker of `settings` (see the module's docstring).

    `events`: the event types sent (all by default); `retain_events`: those the broker keeps
    the latest of per topic. `count_labels`: the labels counted, announced at the camera's
    start (unknown ones are an error); None counts every label seen, each from its first
    box. `discovery_prefix`: Home Assistant discovery under that prefix (None: off).
    `snapshots`: publish each camera's latest snapshot (announced at the camera's start; the
    pictures come only when a snapshots sink makes the track events carry them).
    `pipeline_status`: say `<prefix>/status` (`online`, `offline`, the last will); False
    where another connection says it (a cluster's driver, for all its shards). `stop`: the
    run's, which ends the wait for the broker at the start (`MqttConnection`).
    """

    name = "mqtt"

    def __init__(
        self,
        settings: BrokerSettings,
        labels: LabelMap,
        *,
        prefix: str = "ssd-pipeline",
        qos: int = 1,
        events: Collection[str] = EVENT_TYPES,
        retain_events: Collection[str] = (),
        buffer_size: int = 10_000,
        count_labels: Sequence[str] | None = None,
        discovery_prefix: str | None = None,
        close_timeout_s: float = 10.0,
        snapshots: bool = False,
        pipeline_status: bool = True,
        stop: threading.Event | None = None,
    ) -> None:
        self.topics = Topics(prefix)
        self._labels = labels
        self._count_labels = None if count_labels is None else _known(count_labels, labels)
        self._events = EventStream(labels)
        self._sent_types = frozenset(events)
        self._retained_types = frozenset(retain_events)
        self._discovery = (
            None if discovery_prefix is None else Discovery(self.topics, discovery_prefix)
        )
        self._close_timeout_s = close_timeout_s
        self._counted: dict[str, set[str]] = {}
        """Per camera seen: the labels whose count it publishes."""
        self._zones: dict[tuple[str, str], set[str]] = {}
        """Per (camera, zone) seen: the labels whose count inside it is published."""
        self._snapshots = snapshots
        self._crossings: collections.Counter[tuple[str, str, str]] = collections.Counter()
        """Crossings this run per (camera, line, direction) seen."""
        self._connection = MqttConnection(
            settings,
            self.topics.client_status if pipeline_status else None,
            qos=qos,
            buffer_size=buffer_size,
            stop=stop,
        )
        self.events_sent = 0
        """Events handed to the connection (sent, or buffered while the broker is away)."""

    @property
    def connection(self) -> MqttConnection:
        return self._connection

    def describe(self) -> str:
        """One line for the run summary: where, what was sent, what was lost."""
        c = self._connection
        line = (
            f"mqtt {c.settings.address} under {self.topics.prefix}/: {self.events_sent} events, "
            f"{c.dropped} dropped while the broker was away (buffer {c.buffer_size}), "
            f"{c.reconnections} reconnection{'s' if c.reconnections != 1 else ''}"
        )
        if c.lost:
            line += f", {c.lost} lost with the connection (handed to it as the broker went away)"
        if c.undelivered:
            line += f", {c.undelivered} undelivered at the end (broker away)"
        if c.oversized:
            line += f", {c.oversized} too large for the broker (max_packet_kb)"
        if c.stopped_waiting:
            line += ", never connected: the run stopped while waiting for the broker"
        return line

    def metrics(self) -> tuple[SinkMetric, ...]:
        """What `describe` counts, as the run goes, and what waits for the broker now."""
        c = self._connection
        return (
            SinkMetric("mqtt_events_sent", "Events handed to the broker's connection (sent, "
                       "or buffered while the broker is away).", self.events_sent),
            SinkMetric("mqtt_buffered", "Messages waiting for the broker to come back.",
                       c.buffered, "gauge"),
            SinkMetric("mqtt_dropped", "Messages dropped, the oldest first, because the "
                       "buffer was full while the broker was away.", c.dropped),
            SinkMetric("mqtt_lost", "Messages handed to the connection that never reached "
                       "the broker as far as it can tell: QoS 0 ones not yet sent when the "
                       "broker went away, QoS 1 and 2 ones unacknowledged when the run ended.",
                       c.lost),
            SinkMetric("mqtt_undelivered", "Messages still buffered when the run ended "
                       "(the broker away): never delivered.", c.undelivered, "gauge"),
            SinkMetric("mqtt_oversized", "Messages dropped unsent because they are larger "
                       "than the broker takes (max_packet_kb).", c.oversized),
            SinkMetric("mqtt_reconnections", "Times the connection to the broker was made "
                       "again after it was lost.", c.reconnections),
        )  # fmt: skip

    def start(self, info: StreamInfo) -> None:
        self._camera(info.camera_id)
        if info.scene is not None:
            self._scene(info.camera_id, info.scene)
        self._camera_status(info.camera_id, ONLINE)

    def write(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        self._camera(camera)
        for event in self._events.frame(result):
            self._send(event)
        self._publish_counts(camera, result.detections)
        self._publish_zones(result.analytics)
        self._publish_crossings(result.analytics)
        self._publish_snapshot(result.track_events)

    def held_events(self, held: HeldTrackEvents) -> None:
        self._camera(held.camera_id)
        for event in self._events.held(held):
            self._send(event)
        self._publish_snapshot(held.track_events)

    def status(self, status: CameraStatus) -> None:
        self._camera(status.camera_id)
        for event in self._events.status(status):
            self._send(event)
        if status.state in _ONLINE_STATES:
            self._camera_status(status.camera_id, ONLINE)
        elif status.state in _OFFLINE_STATES:
            self._camera_status(status.camera_id, OFFLINE)

    def end(self, stream_end: StreamEnd) -> None:
        camera = stream_end.camera_id
        self._camera(camera)
        for event in self._events.end(stream_end):
            self._send(event)
        self._publish_counts(camera, Detections.empty())
        self._publish_zones(stream_end.analytics)
        self._publish_crossings(stream_end.analytics)
        self._publish_snapshot(stream_end.track_events)
        for zone_camera, zone in list(self._zones):
            if zone_camera == camera:
                self._zone_count(ZoneOccupancy(camera, zone, (), None, 0.0))
        self._camera_status(camera, OFFLINE)

    def resume_camera(self, camera_id: str, next_seq: int, published: Published) -> None:
        """Sends of `camera_id` only the events its subscribers lack (`published`), numbered
        from `next_seq`, as the event bus does for a camera moved here from a cluster shard
        that died (`EventStream.resume_camera`); its state topics are published as they come."""
        self._events.resume_camera(camera_id, next_seq, published)

    def close(self) -> None:
        """Every camera offline, what waits delivered (up to `close_timeout_s` for a broker
        that is away), then `<prefix>/status` offline (`pipeline_status`) and the
        connection closed."""
        for camera in self._counted:
            self._camera_status(camera, OFFLINE)
        self._connection.close(self._close_timeout_s)

    def _send(self, event: BusEvent) -> None:
        if event.type not in self._sent_types:
            return
        self._connection.publish(
            self.topics.event(event.camera, event.type),
            encode(event),
            retain=event.type in self._retained_types,
        )
        self.events_sent += 1

    def _camera(self, camera: str) -> None:
        """Announce a camera the first time it is seen: discovery, counts at 0."""
        if camera in self._counted:
            return
        self._counted[camera] = set()
        if self._discovery is not None:
            self._connection.set_state(*self._discovery.camera_status(camera))
        for label in self._count_labels or ():
            self._count(camera, label, 0)
        if self._snapshots and self._discovery is not None:
            self._connection.set_state(*self._discovery.snapshot(camera))

    def _scene(self, camera: str, scene: SceneLayout) -> None:
        """Announce the camera's zones and each direction of its lines at 0, so that their
        sensors show from the start; one already counted (a stream opened again) is kept."""
        for zone in scene.zones:
            if (camera, zone.id) not in self._zones:
                self._zone_count(ZoneOccupancy(camera, zone.id, (), None, 0.0))
        for line in scene.lines:
            for direction in (line.left_to_right, line.right_to_left):
                if (camera, line.id, direction) not in self._crossings:
                    self._line_count((camera, line.id, direction), 0)

    def _publish_counts(self, camera: str, detections: Detections) -> None:
        seen = collections.Counter(self._labels.name(int(i)) for i in detections.label.tolist())
        counted = self._counted[camera]
        labels = self._count_labels if self._count_labels is not None else counted | set(seen)
        for label in labels:
            self._count(camera, label, seen.get(label, 0))

    def _count(self, camera: str, label: str, count: int) -> None:
        counted = self._counted[camera]
        if label not in counted:
            counted.add(label)
            if self._discovery is not None:
                self._connection.set_state(*self._discovery.count(camera, label))
        self._connection.set_state(self.topics.count(camera, label), str(count).encode())

    def _publish_zones(self, events: Sequence[AnalyticsEvent]) -> None:
        for event in events:
            if isinstance(event, ZoneOccupancy):
                self._zone_count(event)

    def _zone_count(self, occupancy: ZoneOccupancy) -> None:
        """The zone's total and per-label counts; a label gone from it goes to 0."""
        camera, zone = occupancy.camera_id, occupancy.zone_id
        labels = self._zones.get((camera, zone))
        if labels is None:
            labels = self._zones[(camera, zone)] = set()
            if self._discovery is not None:
                self._connection.set_state(*self._discovery.zone_count(camera, zone))
        counts = {self._labels.name(int(label)): int(n) for label, n in occupancy.counts}
        labels.update(counts)
        self._connection.set_state(
            self.topics.zone_count(camera, zone), str(occupancy.total).encode()
        )
        for label in sorted(labels):
            self._connection.set_state(
                self.topics.zone_count(camera, zone, label), str(counts.get(label, 0)).encode()
            )

    def _publish_crossings(self, events: Sequence[AnalyticsEvent]) -> None:
        for event in events:
            if not isinstance(event, LineCrossing):
                continue
            key = (event.camera_id, event.line_id, event.direction)
            self._line_count(key, self._crossings[key] + 1)

    def _line_count(self, key: tuple[str, str, str], count: int) -> None:
        """A line's crossings in one direction, (camera, line, direction) `key`, announced
        the first time."""
        if key not in self._crossings and self._discovery is not None:
            self._connection.set_state(*self._discovery.line_count(*key))
        self._crossings[key] = count
        self._connection.set_state(self.topics.line_count(*key), str(count).encode())

    def _publish_snapshot(self, events: Iterable[TrackEvent]) -> None:
        """The last snapshot among `events` (the track that ended last), as a JPEG."""
        if not self._snapshots:
            return
        last = None
        for event in events:
            if event.kind == "ended" and event.snapshot is not None:
                last = event
        if last is not None and last.snapshot is not None:
            self._connection.set_state(
                self.topics.snapshot(last.track.camera_id), _jpeg(last.snapshot)
            )

    def _camera_status(self, camera: str, payload: str) -> None:
        self._connection.set_state(self.topics.camera_status(camera), payload.encode())


def _jpeg(snapshot: Snapshot) -> bytes:
    """The snapshot's crop as JPEG bytes (what Home Assistant's MQTT image shows)."""
    bgr = cv2.cvtColor(snapshot.crop, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_JPEG_QUALITY])
    if not ok:
        raise SinkError(f"mqtt sink: could not encode the snapshot {snapshot.name} as JPEG")
    return data.tobytes()


def _known(requested: Sequence[str], labels: LabelMap) -> tuple[str, ...]:
    """The model's spelling of each requested label; SinkError naming an unknown one."""
    names = {LabelMap.key(name): name for name in labels.names if name}
    known = []
    for label in requested:
        name = names.get(LabelMap.key(label))
        if name is None:
            shown = ", ".join(list(names.values())[:8])
            raise SinkError(
                f"mqtt sink: count_labels: the model has no class {label!r} (its classes "
                f"include {shown})"
            )
        known.append(name)
    return tuple(dict.fromkeys(known))
