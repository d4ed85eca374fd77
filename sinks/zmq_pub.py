"""The event bus: JSON events over a ZeroMQ XPUB socket, and the subscriber side.

Every message is two frames, `[topic, body]`: the topic is `<type>.<camera>` in UTF-8 and
the body a UTF-8 JSON object. The event types and every field are described in
docs/events.md; the body builders below are plain functions of the shared types.

The sink never blocks the pipeline: a message that cannot be queued because a subscriber
is `send_hwm` messages behind is dropped and counted in `ZmqSink.dropped`. Subscribers
see the gap in the per-camera `seq`.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, cast

import zmq

from pipeline.types import (
    UNTRACKED,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    TrackEvent,
    TrackSummary,
)
from sinks.base import Sink, SinkError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the event bodies; bumped when a field changes meaning or is removed."""

DETECTIONS = "detections"
TRACK_STARTED = "track.started"
TRACK_ENDED = "track.ended"
STREAM_ENDED = "stream.ended"
EVENT_TYPES: tuple[str, ...] = (DETECTIONS, TRACK_STARTED, TRACK_ENDED, STREAM_ENDED)

Body = dict[str, Any]


# ---------------------------------------------------------------------------- event bodies


def iso_time(unix_seconds: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds, e.g. '2026-11-21T10:00:00.123Z'."""
    moment = datetime.fromtimestamp(unix_seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def topic(event_type: str, camera: str) -> str:
    """ZeroMQ topic of an event: '<type>.<camera>'."""
    return f"{event_type}.{camera}"


def _header(event_type: str, camera: str, seq: int, frame: int | None, wall_time: float) -> Body:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": event_type,
        "camera": camera,
        "seq": seq,
        "time": iso_time(wall_time),
        "frame": frame,
    }


def _box(xyxy: Sequence[float]) -> list[float]:
    return [round(float(v), 1) for v in xyxy]


def _score(value: float) -> float | None:
    # JSON has no NaN; a non-finite score is sent as null rather than as invalid JSON.
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def detection_objects(detections: Detections, labels: LabelMap) -> list[Body]:
    """The `objects` list of a detections event, one entry per box."""
    # Columns as Python lists first: far faster than iterating numpy scalars.
    return [
        {
            "label": labels.name(label),
            "label_id": label,
            "score": _score(score),
            "box": _box(xyxy),
            "track_id": None if track_id == UNTRACKED else track_id,
        }
        for xyxy, score, label, track_id in zip(
            detections.xyxy.tolist(),
            detections.score.tolist(),
            detections.label.tolist(),
            detections.track_id.tolist(),
            strict=True,
        )
    ]


def detections_body(frame: Frame, detections: Detections, labels: LabelMap, seq: int) -> Body:
    """Body of the `detections` event of one frame (sent even when there are no boxes)."""
    body = _header(DETECTIONS, frame.camera_id, seq, frame.index, frame.wall_time)
    body.update(
        pts=frame.pts,
        width=frame.width,
        height=frame.height,
        objects=detection_objects(detections, labels),
    )
    return body


def track_body(
    event_type: str,
    track: TrackSummary,
    labels: LabelMap,
    seq: int,
    frame: int | None,
    wall_time: float,
) -> Body:
    """Body of a `track.started` or `track.ended` event, sent at `frame` / `wall_time`."""
    body = _header(event_type, track.camera_id, seq, frame, wall_time)
    # int()/float() also turn numpy scalars a tracker may have stored into JSON numbers.
    body.update(
        track_id=int(track.track_id),
        label=labels.name(int(track.label)),
        label_id=int(track.label),
        first_frame=int(track.first_frame),
        last_frame=int(track.last_frame),
        first_time=iso_time(track.first_time),
        last_time=iso_time(track.last_time),
        frames=int(track.frames),
        best_score=_score(track.best_score),
        best_box=_box(track.best_box),
        last_box=_box(track.last_box),
    )
    return body


def stream_ended_body(
    stream_end: StreamEnd, seq: int, frame: int | None, wall_time: float
) -> Body:
    """Body of the `stream.ended` event; `frame` is the stream's last frame (None if none)."""
    body = _header(STREAM_ENDED, stream_end.camera_id, seq, frame, wall_time)
    body.update(frames=stream_end.frames, error=stream_end.error)
    return body


# ---------------------------------------------------------------------------- publisher


@dataclass
class _CameraState:
    """Per-camera sequence counter and the last frame seen (for stream-end events)."""

    next_seq: int = 0
    last_frame: int | None = None
    last_time: float | None = None

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq


class ZmqSink(Sink):
    """Publishes detections and track events as JSON on an XPUB socket bound at `endpoint`.

    With `wait_for_subscribers > 0` the constructor waits (up to `wait_timeout_s`) until
    that many subscription messages arrived, so those subscribers get every event.
    """

    name = "zmq"

    def __init__(
        self,
        endpoint: str,
        labels: LabelMap,
        *,
        send_hwm: int = 10000,
        wait_for_subscribers: int = 0,
        wait_timeout_s: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.dropped = 0
        """Messages not sent because a subscriber's queue was full."""
        self.sent = 0
        """Messages handed to ZeroMQ."""
        self._labels = labels
        self._cameras: dict[str, _CameraState] = {}
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = self._context.socket(zmq.XPUB)
        try:
            self._socket.setsockopt(zmq.SNDHWM, send_hwm)
            # Report every subscription (not only new topics), so subscribers can be counted.
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
            # Full queue -> EAGAIN instead of a silent drop, so that drops can be counted.
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._release(linger_ms=0)
            if exc.errno == errno.EADDRINUSE:
                hint = "another program (or pipeline) uses that port; choose another endpoint"
            else:
                hint = "expected an endpoint like 'tcp://127.0.0.1:5556' or 'ipc:///tmp/events'"
            raise SinkError(
                f"zmq sink: cannot bind {endpoint!r}: {zmq.strerror(exc.errno or 0)}; {hint}"
            ) from exc
        last = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound_endpoint = last or endpoint
        """The endpoint actually bound, e.g. with the port chosen for 'tcp://127.0.0.1:*'."""
        if wait_for_subscribers > 0:
            self._wait_for_subscribers(wait_for_subscribers, wait_timeout_s)

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        state = self._camera(frame.camera_id)
        state.last_frame = frame.index
        state.last_time = frame.wall_time
        self._send(detections_body(frame, result.detections, self._labels, state.take_seq()))
        self._send_track_events(state, result.track_events, frame.index, frame.wall_time)

    def end(self, stream_end: StreamEnd) -> None:
        state = self._camera(stream_end.camera_id)
        wall_time = state.last_time if state.last_time is not None else time.time()
        self._send_track_events(state, stream_end.track_events, state.last_frame, wall_time)
        self._send(stream_ended_body(stream_end, state.take_seq(), state.last_frame, wall_time))

    def _send_track_events(
        self,
        state: _CameraState,
        events: Sequence[TrackEvent],
        frame_index: int | None,
        wall_time: float,
    ) -> None:
        for event in events:
            event_type = TRACK_STARTED if event.kind == "started" else TRACK_ENDED
            body = track_body(
                event_type, event.track, self._labels, state.take_seq(), frame_index, wall_time
            )
            self._send(body)

    def close(self) -> None:
        """Close the socket, giving queued messages up to a second to get out."""
        if self._socket is not None:
            if self.dropped:
                log.warning(
                    "zmq sink: %d of %d events were dropped because a subscriber fell behind",
                    self.dropped, self.sent + self.dropped,
                )
            self._release(linger_ms=1000)

    def _camera(self, camera: str) -> _CameraState:
        state = self._cameras.get(camera)
        if state is None:
            state = self._cameras[camera] = _CameraState()
        return state

    def _send(self, body: Body) -> None:
        if self._socket is None:
            raise SinkError(f"zmq sink: event sent after the sink at {self.endpoint!r} closed")
        self._drain_subscriptions()
        payload = json.dumps(body, separators=(",", ":")).encode()
        parts = [topic(body["type"], body["camera"]).encode(), payload]
        try:
            self._socket.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return
        except zmq.ZMQError as exc:
            raise SinkError(f"zmq sink: cannot send on {self.endpoint!r}: {exc.strerror}") from exc
        self.sent += 1

    def _drain_subscriptions(self) -> None:
        """Read pending (un)subscription messages, which XPUB would otherwise keep queued."""
        assert self._socket is not None
        while cast(int, self._socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            self._socket.recv(zmq.NOBLOCK)

    def _wait_for_subscribers(self, count: int, timeout_s: float) -> None:
        assert self._socket is not None
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self._socket.poll(remaining_ms, zmq.POLLIN):
                log.warning(
                    "zmq sink: %d of %d subscribers connected to %s within %.1f s; going on",
                    seen, count, self.endpoint, timeout_s,
                )
                return
            message = self._socket.recv()
            if message[:1] == b"\x01":  # 1 = subscribe, 0 = unsubscribe
                seen += 1
        log.info("zmq sink: %d subscribers connected to %s", seen, self.endpoint)

    def _release(self, linger_ms: int) -> None:
        if self._socket is not None:
            self._socket.close(linger=linger_ms)
            self._socket = None
        # Our own context: term() waits at most the linger for queued messages.
        self._context.term()


# ---------------------------------------------------------------------------- subscriber


class EventSubscriber:
    """Receives events from a `ZmqSink`, filtered exactly by camera and event type.

    ZeroMQ subscriptions match topic prefixes ('detections.lob' also matches
    'detections.lobby'), so bodies are checked again here. Empty `cameras` / `types` mean
    all. Malformed messages are logged and skipped.
    """

    def __init__(
        self, endpoint: str, *, cameras: Sequence[str] = (), types: Sequence[str] = ()
    ) -> None:
        _check_types(types)
        self.endpoint = endpoint
        self._cameras = frozenset(cameras)
        self._types = frozenset(types)
        self._warned_version = False
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] = self._context.socket(zmq.SUB)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(
                f"cannot connect to event endpoint {endpoint!r}: {exc.strerror}"
            ) from exc
        for prefix in _subscriptions(types, cameras):
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def receive(self, timeout_s: float | None = None) -> Body | None:
        """The next matching event, or None when none arrived within `timeout_s` seconds."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if deadline is None:
                wait_ms = None
            else:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            body = self._decode(self._socket.recv_multipart())
            if body is not None and self._matches(body):
                return body

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _matches(self, body: Body) -> bool:
        return (not self._cameras or body.get("camera") in self._cameras) and (
            not self._types or body.get("type") in self._types
        )

    def _decode(self, parts: list[bytes]) -> Body | None:
        if len(parts) != 2:
            log.warning("event bus: skipped a message with %d frames (expected 2)", len(parts))
            return None
        try:
            body = json.loads(parts[1])
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("event bus: skipped a message on %r that is not JSON: %s", parts[0], exc)
            return None
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            log.warning("event bus: skipped a message on %r without a 'type' field", parts[0])
            return None
        if body.get("schema_version") != SCHEMA_VERSION and not self._warned_version:
            self._warned_version = True
            log.warning(
                "event bus: events have schema_version %r, this reader knows %d",
                body.get("schema_version"), SCHEMA_VERSION,
            )
        return body


def subscribe(
    endpoint: str,
    *,
    cameras: Sequence[str] = (),
    types: Sequence[str] = (),
    timeout_s: float | None = None,
) -> Iterator[Body]:
    """Matching event bodies from `endpoint` until `timeout_s` seconds pass without one.

    `timeout_s=None` waits forever. See `EventSubscriber` for the filtering. An unknown
    event type raises ValueError here; a malformed endpoint raises ValueError when
    iteration starts (that is when the socket connects).
    """
    _check_types(types)
    return _events(endpoint, cameras, types, timeout_s)


def _events(
    endpoint: str, cameras: Sequence[str], types: Sequence[str], timeout_s: float | None
) -> Iterator[Body]:
    with EventSubscriber(endpoint, cameras=cameras, types=types) as subscriber:
        while (body := subscriber.receive(timeout_s)) is not None:
            yield body


def _check_types(types: Sequence[str]) -> None:
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(EVENT_TYPES)}"
        )


def _subscriptions(types: Sequence[str], cameras: Sequence[str]) -> list[str]:
    """Topic prefixes to subscribe to: everything, or one per type (and camera).

    Each prefix is one subscription message for `ZmqSink(wait_for_subscribers=...)`.
    """
    if not types and not cameras:
        return [""]
    types = types or EVENT_TYPES
    if not cameras:
        return [f"{t}." for t in types]
    return [topic(t, c) for t in types for c in cameras]
