"""The publishing side of the event bus: JSON events on a ZeroMQ XPUB socket.

Every message is two frames, `[topic, body]`: the topic is `<type>.<camera>` in UTF-8 and
the body a UTF-8 JSON object, one of the models of `sinks.event_bus.schema` (the contract,
exported as docs/events.schema.json). The event types and every field are described in
docs/events.md.

The sink never blocks the pipeline: a message that cannot be queued because a subscriber
is `send_hwm` messages behind is dropped and counted in `EventPublisher.dropped`.
Subscribers see the gap in the per-camera `seq` (`EventSubscriber.missed` counts them).

Optional CURVE security: the sink gets the server's secret key; subscribers need the
server's public key (and, when the sink has a folder of authorized client keys, a client
key pair whose public key is in it). Without the right keys a subscriber receives nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import cast

import zmq
from zmq.auth.thread import ThreadAuthenticator

from pipeline.types import CameraStatus, FrameResult, HeldTrackEvents, LabelMap, StreamEnd
from sinks.base import Sink, SinkError
from sinks.event_bus.keys import CurveKeyError, check_z85_key
from sinks.event_bus.resumption import Published
from sinks.event_bus.schema import topic
from sinks.event_stream import BusEvent, EventStream, encode

log = logging.getLogger(__name__)

MAX_SUBSCRIPTION_BYTES = 4096
"""The largest message a peer may send: subscribers only send subscriptions (a byte and a
topic prefix). A peer announcing more is disconnected before anything is allocated."""

STOP_POLL_MS = 100
"""How often the wait for subscribers looks at the run's stop."""

# pyzmq's flags as plain ints: combining and passing its enums costs a few microseconds a
# message, more than the send itself.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class EventPublisher(Sink):
    """Publishes detections and track events as JSON on an XPUB socket bound at `endpoint`.

    With `wait_for_subscribers > 0` the constructor waits (up to `wait_timeout_s`, or until
    `stop` is set) until that many subscription messages arrived, so those subscribers get
    every event.
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
        stop: threading.Event | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.isolate_subscribers = isolate_subscribers
        self.dropped = 0
        """Messages not sent because a subscriber's queue was full."""
        self.sent = 0
        """Messages handed to ZeroMQ."""
        self.curve_public_key: str | None = None
        """The server's public key (Z85) when CURVE is on: give it to subscribers."""
        self._events = EventStream(labels)
        self._context = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._socket: zmq.Socket[bytes] | None = self._context.socket(zmq.XPUB)
        try:
            _refuse_ipc_path_in_use(endpoint)
            self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
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
            raise bind_error(endpoint, exc.errno or 0) from exc
        except (CurveKeyError, OSError) as exc:
            self._release(linger_ms=0)
            raise SinkError(f"zmq sink: CURVE keys for {endpoint!r}: {exc}") from exc
        except SinkError:
            self._release(linger_ms=0)
            raise
        last = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound_endpoint = last or endpoint
        """The endpoint actually bound, e.g. with the port chosen for 'tcp://127.0.0.1:*'."""
        if wait_for_subscribers > 0:
            self._wait_for_subscribers(wait_for_subscribers, wait_timeout_s, stop)

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
        self._send_all(self._events.frame(result))

    def held_events(self, held: HeldTrackEvents) -> None:
        self._send_all(self._events.held(held))

    def status(self, status: CameraStatus) -> None:
        self._send_all(self._events.status(status))

    def end(self, stream_end: StreamEnd) -> None:
        self._send_all(self._events.end(stream_end))

    def resume_camera(self, camera_id: str, next_seq: int, published: Published) -> None:
        """Sends of `camera_id` only the events its subscribers lack (`published`), numbered
        from `next_seq`: a camera moved here from another publisher (a cluster shard that
        died) is processed again from its start (`EventStream.resume_camera`)."""
        self._events.resume_camera(camera_id, next_seq, published)

    def close(self) -> None:
        """Close the socket, giving queued messages up to a second to get out."""
        if self._socket is not None:
            if self.dropped:
                log.warning(
                    "zmq sink: %d of %d events were dropped because a subscriber fell behind",
                    self.dropped,
                    self.sent + self.dropped,
                )
            self._release(linger_ms=1000)

    def _send_all(self, events: list[BusEvent]) -> None:
        if not events:
            return
        if self._socket is None:
            raise SinkError(f"zmq sink: event sent after the sink at {self.endpoint!r} closed")
        self._drain_subscriptions()
        for event in events:
            self._send(self._socket, event)

    def _send(self, sock: zmq.Socket[bytes], event: BusEvent) -> None:
        # Two sends rather than send_multipart, whose flag and type checks cost more than
        # the sends; the same to ZeroMQ: a message's parts are queued all or none (EAGAIN
        # comes on the first part only).
        try:
            sock.send(topic(event.type, event.camera).encode(), _SNDMORE_NOBLOCK)
            sock.send(encode(event), _NOBLOCK)
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
        while cast(int, self._socket.getsockopt(_EVENTS)) & _POLLIN:
            self._socket.recv(_NOBLOCK)

    def _wait_for_subscribers(
        self, count: int, timeout_s: float, stop: threading.Event | None
    ) -> None:
        """Waits for `count` subscriptions, `timeout_s` at most; `stop` (the run's: Ctrl-C)
        ends the wait at once."""
        assert self._socket is not None
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            if stop is not None and stop.is_set():
                log.info("zmq sink: the run stopped while waiting for subscribers")
                return
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                log.warning(
                    "zmq sink: %d of %d subscribers connected to %s within %.1f s; going on",
                    seen,
                    count,
                    self.endpoint,
                    timeout_s,
                )
                return
            if not self._socket.poll(min(remaining_ms, STOP_POLL_MS), zmq.POLLIN):
                continue
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


def bind_error(endpoint: str, error: int) -> SinkError:
    """The one line saying why binding `endpoint` failed with the errno `error`, and what to
    do (the port held, the ipc socket's folder missing, a malformed endpoint)."""
    if error == errno.EADDRINUSE:
        hint = "another program (or pipeline) uses that port; choose another endpoint"
    elif error in (errno.ENOENT, errno.ENOTDIR) and endpoint.startswith("ipc://"):
        hint = "the socket's folder must exist"
    else:
        hint = "expected an endpoint like 'tcp://127.0.0.1:5556' or 'ipc:///tmp/events'"
    return SinkError(f"zmq sink: cannot bind {endpoint!r}: {zmq.strerror(error)}; {hint}")


def _refuse_ipc_path_in_use(endpoint: str) -> None:
    """SinkError when binding `endpoint` would delete something: ZeroMQ's ipc bind unlinks
    whatever is at the path, a user's file or another program's live socket alike."""
    if not endpoint.startswith("ipc://"):
        return
    path = endpoint.removeprefix("ipc://")
    if path in ("", "*") or path.startswith("@"):  # a random name, or Linux's abstract names
        return
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SinkError(
            f"zmq sink: cannot bind {endpoint!r}: {path} exists and is not a socket; "
            "choose a path that does not exist (nothing was deleted)"
        )
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:  # nobody listens: a socket left by an earlier run, safe to replace
            return
    raise SinkError(
        f"zmq sink: cannot bind {endpoint!r}: another program listens on {path}; "
        "choose another endpoint"
    )
