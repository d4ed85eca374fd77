"""The subscribing side of the event bus: events received, checked and filtered exactly.

`subscribe` (and `EventSubscriber` under it) connects to an `EventPublisher`, validates
every body into its model of `sinks.event_bus.schema` and counts events lost in transit;
`only_labels` narrows events to some classes, as `python -m pipeline subscribe --label` does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Literal

import zmq
from pydantic import ValidationError
from zmq.utils.monitor import recv_monitor_message

from pipeline.types import LabelMap
from sinks.event_bus.schema import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    DetectionsEvent,
    Event,
    LineCrossedEvent,
    TrackEndedEvent,
    TrackStartedEvent,
    ZoneDwellEvent,
    ZoneEnteredEvent,
    ZoneLeftEvent,
    ZoneOccupancyEvent,
    parse_event,
    topic,
)

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 16 * 2**20
"""The largest message a subscriber accepts; events are far smaller (a detections event is
about 150 bytes per object). ZeroMQ drops a publisher announcing more, for good: it is not
the pipeline."""
MAX_QUEUED_EVENTS = 16
"""The events ZeroMQ holds for a subscriber that has not read them yet (its RCVHWM): with
events of up to MAX_EVENT_BYTES, a publisher flooding large ones costs at most 256 MiB.
Further events wait in the connection's buffers, then in the publisher's queue."""
SKIPS_LOGGED = 10
"""Skipped messages logged one line each; after them, one line per SKIP_SUMMARY_S counts
them, so that a publisher flooding garbage does not flood the log."""
SKIP_SUMMARY_S = 10.0
SKIP_LINE_CHARS = 200
"""How much of a skipped message's topic and of its first problem a log line quotes."""

PublisherState = Literal["absent", "connected", "gone", "refused"]
"""What a subscriber knows of its publisher: "absent" (nothing accepted the connection yet),
"connected", "gone" (it was connected, then the connection dropped), "refused" (a publisher
answered, but the security handshake failed: a CURVE bus and no or wrong keys)."""

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)  # fmt: skip
# A TCP connection (EVENT_CONNECTED) is not yet a publisher: a CURVE one refuses a subscriber
# without the right keys after it; the handshake says whether events can come.
_WATCHED = zmq.EVENT_HANDSHAKE_SUCCEEDED | _HANDSHAKE_FAILED | zmq.EVENT_DISCONNECTED


class EventSubscriber:
    """Receives events from an `EventPublisher`, filtered exactly by camera and event type.

    ZeroMQ subscriptions match topic prefixes ('detections.lob' also matches
    'detections.lobby'), so events are checked again here. Empty `cameras` / `types` mean
    all. Messages that are not valid events are logged and skipped.

    For a CURVE sink give `server_key` (its public key, Z85) and, when the sink only admits
    known clients, `client_keys` = (public, secret) of an authorized client; without
    `client_keys` a fresh key pair is used.

    `missed` counts, per camera, the events lost in transit (jumps in `seq`); it is only
    kept when all event types are received, since filtering by type makes `seq` jump.
    `publisher` says whether a publisher was ever reached, from a monitor of the socket.
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
        self._publisher: PublisherState = "absent"
        self._skips = _SkipLog()
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] = self._context.socket(zmq.SUB)
        # Before connecting, so that no event of the connection is missed.
        self._monitor = self._socket.get_monitor_socket(_WATCHED)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        try:
            self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_EVENT_BYTES)
            self._socket.setsockopt(zmq.RCVHWM, MAX_QUEUED_EVENTS)
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
                wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            ready = dict(self._poller.poll(wait_ms))
            if self._monitor in ready:
                self._read_monitor()  # also while idle: its queue must not fill up
            if self._socket not in ready:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            event = self._decode(self._socket.recv_multipart())
            if event is not None and self._matches(event):
                self._count_gap(event)
                return event

    @property
    def publisher(self) -> PublisherState:
        """What is known of the publisher so far (`PublisherState`)."""
        self._read_monitor()
        return self._publisher

    @property
    def skipped(self) -> int:
        """How many messages were skipped as not valid events."""
        return self._skips.count

    def close(self) -> None:
        self._skips.flush()
        if not self._socket.closed:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
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

    def _read_monitor(self) -> None:
        """Follows the connection's events (`PublisherState`) the monitor has queued."""
        while self._monitor.poll(0, zmq.POLLIN):
            kind = recv_monitor_message(self._monitor)["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._publisher = "connected"
            elif kind & _HANDSHAKE_FAILED:
                self._publisher = "refused"
            elif kind == zmq.EVENT_DISCONNECTED and self._publisher == "connected":
                self._publisher = "gone"

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
                lost,
                event.camera,
                last,
                event.seq,
            )

    def _decode(self, parts: list[bytes]) -> Event | None:
        if len(parts) != 2:
            self._skips.skipped(f"a message with {len(parts)} frames (expected 2)")
            return None
        try:
            event = parse_event(parts[1])
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            problem = errors[0]["msg"] if errors else str(exc)
            if errors and (where := ".".join(str(p) for p in errors[0]["loc"])):
                problem = f"{where}: {problem}"
            self._skips.skipped(
                f"a message on {parts[0][:SKIP_LINE_CHARS]!r} that is not a valid event: {problem}"
            )
            return None
        if event.schema_version != SCHEMA_VERSION and not self._warned_version:
            self._warned_version = True
            log.warning(
                "event bus: events have schema_version %r, this reader knows %d",
                event.schema_version,
                SCHEMA_VERSION,
            )
        return event


class _SkipLog:
    """Logs messages skipped as not valid events: the first SKIPS_LOGGED one line each,
    then one line per SKIP_SUMMARY_S with their count (and `flush` for the rest)."""

    def __init__(self) -> None:
        self.count = 0
        self._unlogged = 0
        self._last = ""
        self._since = time.monotonic()

    def skipped(self, what: str) -> None:
        self.count += 1
        what = what if len(what) <= SKIP_LINE_CHARS else what[:SKIP_LINE_CHARS] + "..."
        if self.count <= SKIPS_LOGGED:
            more = "; further ones are counted" if self.count == SKIPS_LOGGED else ""
            log.warning("event bus: skipped %s%s", what, more)
            self._since = time.monotonic()
            return
        self._unlogged += 1
        self._last = what
        if time.monotonic() - self._since >= SKIP_SUMMARY_S:
            self.flush()

    def flush(self) -> None:
        """Logs the count of skipped messages not logged yet, if any."""
        if self._unlogged:
            log.warning(
                "event bus: skipped %d more message(s) that are not valid events; the last: %s",
                self._unlogged,
                self._last,
            )
        self._unlogged = 0
        self._since = time.monotonic()


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

    Each prefix is one subscription message for `EventPublisher(wait_for_subscribers=...)`.
    """
    if not types and not cameras:
        return [""]
    types = types or EVENT_TYPES
    if not cameras:
        return [f"{t}." for t in types]
    return [topic(t, c) for t in types for c in cameras]


def only_labels(event: Event, labels: Sequence[str]) -> Event | None:
    """`event` restricted to objects/tracks of `labels` (all when empty).

    A detections event keeps only the matching objects and is None when none is left;
    track, zone visit and line events of other labels are None; an occupancy event keeps
    only the matching counts (its total theirs); `stream.ended` always passes.
    """
    if not labels:
        return event
    wanted = {LabelMap.key(label) for label in labels}  # the detector's rule for names
    if isinstance(event, DetectionsEvent):
        kept = [o for o in event.objects if LabelMap.key(o.label) in wanted]
        return event.model_copy(update={"objects": kept}) if kept else None
    if isinstance(
        event,
        (
            TrackStartedEvent,
            TrackEndedEvent,
            ZoneEnteredEvent,
            ZoneLeftEvent,
            ZoneDwellEvent,
            LineCrossedEvent,
        ),
    ):
        return event if LabelMap.key(event.label) in wanted else None
    if isinstance(event, ZoneOccupancyEvent):
        counts = {label: n for label, n in event.counts.items() if LabelMap.key(label) in wanted}
        return event.model_copy(update={"counts": counts, "total": sum(counts.values())})
    return event
