"""The event bus: JSON events over a ZeroMQ XPUB socket, and the subscriber side.

Every message is two frames, `[topic, body]`: the topic is `<type>.<camera>` in UTF-8 and
the body a UTF-8 JSON object, one of the models of `sinks.events` (the contract, exported
as docs/events.schema.json). The event types and every field are described in
docs/events.md.

The sink never blocks the pipeline: a message that cannot be queued because a subscriber
is `send_hwm` messages behind is dropped and counted in `ZmqSink.dropped`. Subscribers
see the gap in the per-camera `seq` (`EventSubscriber.missed` counts them).

Optional CURVE security: the sink gets the server's secret key; subscribers need the
server's public key (and, when the sink has a folder of authorized client keys, a client
key pair whose public key is in it). Without the right keys a subscriber receives nothing.
"""

from __future__ import annotations

import errno
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import zmq
import zmq.auth
from pydantic import ValidationError
from zmq.auth.thread import ThreadAuthenticator

from pipeline.types import (
    UNTRACKED,
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    TrackEvent,
    TrackSummary,
)
from sinks.base import Sink, SinkError
from sinks.events import (
    CAMERA_STATUS,
    DETECTIONS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    STREAM_ENDED,
    TRACK_ENDED,
    TRACK_STARTED,
    CameraStatusEvent,
    DetectionsEvent,
    Event,
    StreamEndedEvent,
    TrackEndedEvent,
    TrackStartedEvent,
    parse_event,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- event bodies


def iso_time(unix_seconds: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds, e.g. '2026-11-21T10:00:00.123Z'."""
    moment = datetime.fromtimestamp(unix_seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def topic(event_type: str, camera: str) -> str:
    """ZeroMQ topic of an event: '<type>.<camera>'."""
    return f"{event_type}.{camera}"


def _header(
    event_type: str, camera: str, seq: int, frame: int | None, wall_time: float
) -> dict[str, Any]:
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


def detection_objects(detections: Detections, labels: LabelMap) -> list[dict[str, Any]]:
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


def detections_event(
    frame: Frame, detections: Detections, labels: LabelMap, seq: int
) -> DetectionsEvent:
    """The `detections` event of one frame (sent even when there are no boxes)."""
    body = _header(DETECTIONS, frame.camera_id, seq, frame.index, frame.wall_time)
    body.update(
        pts=frame.pts,
        width=frame.width,
        height=frame.height,
        objects=detection_objects(detections, labels),
    )
    return DetectionsEvent.model_validate(body)


def track_event(
    kind: str,
    track: TrackSummary,
    labels: LabelMap,
    seq: int,
    frame: int | None,
    wall_time: float,
) -> TrackStartedEvent | TrackEndedEvent:
    """The `track.started` ("started") or `track.ended` ("ended") event, sent at `frame`."""
    event_type = TRACK_STARTED if kind == "started" else TRACK_ENDED
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
    model = TrackStartedEvent if kind == "started" else TrackEndedEvent
    return model.model_validate(body)


def stream_ended_event(
    stream_end: StreamEnd, seq: int, frame: int | None, wall_time: float
) -> StreamEndedEvent:
    """The `stream.ended` event; `frame` is the stream's last frame (None if none)."""
    body = _header(STREAM_ENDED, stream_end.camera_id, seq, frame, wall_time)
    body.update(frames=stream_end.frames, error=stream_end.error)
    return StreamEndedEvent.model_validate(body)


def camera_status_event(status: CameraStatus, seq: int, frame: int | None) -> CameraStatusEvent:
    """The `camera.status` event of a reader's state change; `frame`: the last one seen."""
    body = _header(CAMERA_STATUS, status.camera_id, seq, frame, status.time)
    body.update(
        state=status.state,
        message=status.message,
        frames=status.frames,
        dropped=status.dropped,
        decode_errors=status.decode_errors,
        retry_in_s=status.retry_in_s,
    )
    return CameraStatusEvent.model_validate(body)


# ---------------------------------------------------------------------------- CURVE keys


class CurveKeyError(ValueError):
    """A CURVE key cannot be read; the message names the key or file and how to fix it."""


_Z85_KEY = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def read_secret_key(path: str | Path) -> bytes:
    """The Z85 secret key of a ZeroMQ certificate file (`*.key_secret`, see `keygen`)."""
    _public, secret = _load_certificate(Path(path))
    if secret is None:
        raise CurveKeyError(
            f"{path} holds only a public key; give the '.key_secret' file made by "
            "`python -m pipeline keygen`"
        )
    return secret


def read_public_key(value: str | Path) -> bytes:
    """A Z85 public key: given as the 40-character key itself, or as a certificate file."""
    text = str(value).strip()
    if _Z85_KEY.match(text) and not Path(text).exists():
        return text.encode()
    public, _secret = _load_certificate(Path(text))
    return public


def check_z85_key(key: str, what: str) -> bytes:
    """`key` as bytes if it is a 40-character Z85 CURVE key; else CurveKeyError naming `what`."""
    key = key.strip()
    if not _Z85_KEY.match(key):
        raise CurveKeyError(
            f"{what} is not a 40-character Z85 CURVE key (got {len(key)} characters); "
            "make one with `python -m pipeline keygen DIR`"
        )
    return key.encode()


def _load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveKeyError(
            f"key file not found: {path} (make keys with `python -m pipeline keygen DIR`)"
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as exc:
        raise CurveKeyError(f"{path} is not a ZeroMQ certificate file: {exc}") from exc
    return public, secret


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
    A subscriber `send_hwm` events behind makes the sink drop new events, for every
    subscriber, and count them in `dropped`. With `isolate_subscribers` only the slow
    subscriber loses events (the others get all); the sink cannot count those drops then,
    the subscriber sees them as jumps in `seq`.

    With `curve_secret_key` (Z85) the socket is a CURVE server: traffic is encrypted and
    only subscribers that know the server's public key can connect; with
    `curve_authorized_clients` (a folder of client `*.key` files) only those clients can.
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
        curve_secret_key: bytes | None = None,
        curve_authorized_clients: Path | None = None,
        isolate_subscribers: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.isolate_subscribers = isolate_subscribers
        self.dropped = 0
        """Messages not sent because a subscriber's queue was full."""
        self.sent = 0
        """Messages handed to ZeroMQ."""
        self.curve_public_key: str | None = None
        """The server's public key (Z85) when CURVE is on: give it to subscribers."""
        self._labels = labels
        self._cameras: dict[str, _CameraState] = {}
        self._context = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._socket: zmq.Socket[bytes] | None = self._context.socket(zmq.XPUB)
        try:
            self._socket.setsockopt(zmq.SNDHWM, send_hwm)
            # Report every subscription (not only new topics), so subscribers can be counted.
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
            if not isolate_subscribers:
                # Full queue -> EAGAIN instead of a silent drop, so that drops are counted;
                # the event is then lost for every subscriber, not only the slow one.
                self._socket.setsockopt(zmq.XPUB_NODROP, 1)
            if curve_secret_key is not None:
                self._setup_curve(curve_secret_key, curve_authorized_clients)
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
        except (CurveKeyError, OSError) as exc:
            self._release(linger_ms=0)
            raise SinkError(f"zmq sink: CURVE keys for {endpoint!r}: {exc}") from exc
        last = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound_endpoint = last or endpoint
        """The endpoint actually bound, e.g. with the port chosen for 'tcp://127.0.0.1:*'."""
        if wait_for_subscribers > 0:
            self._wait_for_subscribers(wait_for_subscribers, wait_timeout_s)

    def describe(self) -> str:
        """One line for the run summary: where events went and how many were dropped."""
        secured = ", CURVE" if self.curve_public_key else ""
        dropped = (
            "drops seen by subscribers only (isolate_subscribers)"
            if self.isolate_subscribers
            else f"{self.dropped} dropped"
        )
        return f"zmq {self.bound_endpoint}{secured}: {self.sent} events sent, {dropped}"

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        state = self._camera(frame.camera_id)
        state.last_frame = frame.index
        state.last_time = frame.wall_time
        self._send(detections_event(frame, result.detections, self._labels, state.take_seq()))
        self._send_track_events(state, result.track_events, frame.index, frame.wall_time)

    def status(self, status: CameraStatus) -> None:
        state = self._camera(status.camera_id)
        self._send(camera_status_event(status, state.take_seq(), state.last_frame))

    def end(self, stream_end: StreamEnd) -> None:
        state = self._camera(stream_end.camera_id)
        wall_time = state.last_time if state.last_time is not None else time.time()
        self._send_track_events(state, stream_end.track_events, state.last_frame, wall_time)
        self._send(stream_ended_event(stream_end, state.take_seq(), state.last_frame, wall_time))

    def _send_track_events(
        self,
        state: _CameraState,
        events: Sequence[TrackEvent],
        frame_index: int | None,
        wall_time: float,
    ) -> None:
        for event in events:
            self._send(
                track_event(
                    event.kind, event.track, self._labels, state.take_seq(), frame_index,
                    wall_time,
                )
            )

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

    def _send(self, event: Event) -> None:
        if self._socket is None:
            raise SinkError(f"zmq sink: event sent after the sink at {self.endpoint!r} closed")
        self._drain_subscriptions()
        parts = [topic(event.type, event.camera).encode(), event.model_dump_json().encode()]
        try:
            self._socket.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return
        except zmq.ZMQError as exc:
            raise SinkError(f"zmq sink: cannot send on {self.endpoint!r}: {exc.strerror}") from exc
        self.sent += 1

    def _setup_curve(self, secret_key: bytes, authorized: Path | None) -> None:
        assert self._socket is not None
        secret = check_z85_key(secret_key.decode(errors="replace"), "the server secret key")
        if authorized is not None:
            keys = sorted(Path(authorized).glob("*.key")) if Path(authorized).is_dir() else []
            if not keys:
                raise CurveKeyError(
                    f"authorized_clients {authorized} holds no client '*.key' files "
                    "(make one with `python -m pipeline keygen DIR --name client`)"
                )
            self._auth = ThreadAuthenticator(self._context)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(authorized))
        self._socket.curve_secretkey = secret
        self._socket.curve_server = True
        self.curve_public_key = zmq.curve_public(secret).decode()
        log.info("zmq sink: CURVE on; server public key %s", self.curve_public_key)

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
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        # Our own context: term() waits at most the linger for queued messages.
        self._context.term()


# ---------------------------------------------------------------------------- subscriber


class EventSubscriber:
    """Receives events from a `ZmqSink`, filtered exactly by camera and event type.

    ZeroMQ subscriptions match topic prefixes ('detections.lob' also matches
    'detections.lobby'), so events are checked again here. Empty `cameras` / `types` mean
    all. Messages that are not valid events are logged and skipped.

    For a CURVE sink give `server_key` (its public key, Z85) and, when the sink only admits
    known clients, `client_keys` = (public, secret) of an authorized client; without
    `client_keys` a fresh key pair is used.

    `missed` counts, per camera, the events lost in transit (jumps in `seq`); it is only
    kept when all event types are received, since filtering by type makes `seq` jump.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        cameras: Sequence[str] = (),
        types: Sequence[str] = (),
        server_key: bytes | None = None,
        client_keys: tuple[bytes, bytes] | None = None,
    ) -> None:
        _check_types(types)
        self.endpoint = endpoint
        self.missed: dict[str, int] = {}
        self._cameras = frozenset(cameras)
        self._types = frozenset(types)
        self._last_seq: dict[str, int] = {}
        self._warned_version = False
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] = self._context.socket(zmq.SUB)
        try:
            if server_key is not None:
                public, secret = client_keys or zmq.curve_keypair()
                self._socket.curve_serverkey = server_key
                self._socket.curve_publickey = public
                self._socket.curve_secretkey = secret
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(
                f"cannot connect to event endpoint {endpoint!r}: {exc.strerror}"
            ) from exc
        for prefix in _subscriptions(types, cameras):
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def receive(self, timeout_s: float | None = None) -> Event | None:
        """The next matching event, or None when none arrived within `timeout_s` seconds."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if deadline is None:
                wait_ms = None
            else:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            event = self._decode(self._socket.recv_multipart())
            if event is not None and self._matches(event):
                self._count_gap(event)
                return event

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

    def _matches(self, event: Event) -> bool:
        return (not self._cameras or event.camera in self._cameras) and (
            not self._types or event.type in self._types
        )

    def _count_gap(self, event: Event) -> None:
        if self._types:
            return
        last = self._last_seq.get(event.camera)
        self._last_seq[event.camera] = event.seq
        if last is not None and event.seq > last + 1:
            lost = event.seq - last - 1
            self.missed[event.camera] = self.missed.get(event.camera, 0) + lost
            log.warning(
                "event bus: %d event(s) of camera %r lost (seq %d -> %d)",
                lost, event.camera, last, event.seq,
            )

    def _decode(self, parts: list[bytes]) -> Event | None:
        if len(parts) != 2:
            log.warning("event bus: skipped a message with %d frames (expected 2)", len(parts))
            return None
        try:
            event = parse_event(parts[1])
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
            where = ".".join(str(p) for p in first["loc"])
            log.warning(
                "event bus: skipped a message on %r that is not a valid event: %s%s",
                parts[0], f"{where}: " if where else "", first["msg"],
            )
            return None
        if event.schema_version != SCHEMA_VERSION and not self._warned_version:
            self._warned_version = True
            log.warning(
                "event bus: events have schema_version %r, this reader knows %d",
                event.schema_version, SCHEMA_VERSION,
            )
        return event


def subscribe(
    endpoint: str,
    *,
    cameras: Sequence[str] = (),
    types: Sequence[str] = (),
    timeout_s: float | None = None,
    server_key: bytes | None = None,
    client_keys: tuple[bytes, bytes] | None = None,
) -> Iterator[Event]:
    """Matching events from `endpoint` until `timeout_s` seconds pass without one.

    `timeout_s=None` waits forever. See `EventSubscriber` for the filtering and the keys.
    An unknown event type raises ValueError here; a malformed endpoint raises ValueError
    when iteration starts (that is when the socket connects).
    """
    _check_types(types)
    return _events(endpoint, cameras, types, timeout_s, server_key, client_keys)


def _events(
    endpoint: str,
    cameras: Sequence[str],
    types: Sequence[str],
    timeout_s: float | None,
    server_key: bytes | None,
    client_keys: tuple[bytes, bytes] | None,
) -> Iterator[Event]:
    with EventSubscriber(
        endpoint, cameras=cameras, types=types, server_key=server_key, client_keys=client_keys
    ) as subscriber:
        while (event := subscriber.receive(timeout_s)) is not None:
            yield event


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


# ---------------------------------------------------------------------------- display


def only_labels(event: Event, labels: Sequence[str]) -> Event | None:
    """`event` restricted to objects/tracks of `labels` (all when empty).

    A detections event keeps only the matching objects and is None when none is left;
    track events of other labels are None; `stream.ended` always passes.
    """
    if not labels:
        return event
    wanted = set(labels)
    if isinstance(event, DetectionsEvent):
        kept = [o for o in event.objects if o.label in wanted]
        return event.model_copy(update={"objects": kept}) if kept else None
    if isinstance(event, (TrackStartedEvent, TrackEndedEvent)):
        return event if event.label in wanted else None
    return event


def _local_clock(iso: str) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _short_box(box: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.0f}" for v in box) + "]"


def _short_score(score: float | None) -> str:
    return "?" if score is None else f"{score:.2f}"


def format_event(event: Event) -> str:
    """One human-readable line, times in local time, e.g.

    `10:00:00.123 lobby #5021 frame 1234: 2 objects: person 0.93 #7 [100,120,180,300], ...`
    """
    frame = "-" if event.frame is None else str(event.frame)
    head = f"{_local_clock(event.time)} {event.camera} #{event.seq} frame {frame}"
    if isinstance(event, DetectionsEvent):
        if not event.objects:
            return f"{head}: no objects"
        parts = [
            f"{o.label} {_short_score(o.score)}"
            + (f" #{o.track_id}" if o.track_id is not None else "")
            + f" {_short_box(o.box)}"
            for o in event.objects
        ]
        noun = "object" if len(parts) == 1 else "objects"
        return f"{head}: {len(parts)} {noun}: " + ", ".join(parts)
    if isinstance(event, TrackStartedEvent):
        return (
            f"{head}: track #{event.track_id} started: {event.label} "
            f"{_short_score(event.best_score)} {_short_box(event.last_box)}"
        )
    if isinstance(event, TrackEndedEvent):
        return (
            f"{head}: track #{event.track_id} ended: {event.label}, {event.frames} frames "
            f"({event.first_frame}-{event.last_frame}), best {_short_score(event.best_score)}"
        )
    if isinstance(event, CameraStatusEvent):
        retry = f", retry in {event.retry_in_s:g} s" if event.retry_in_s is not None else ""
        why = f": {event.message}" if event.message else ""
        return f"{head}: camera {event.state}{why}{retry}"
    if event.error is not None:
        return f"{head}: stream FAILED after {event.frames} frames: {event.error}"
    return f"{head}: stream ended after {event.frames} frames"
