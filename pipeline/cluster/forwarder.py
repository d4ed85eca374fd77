"""The event bus of a cluster run: a ZeroMQ XSUB/XPUB forwarder in the driver.

The XPUB side binds the configured `zmq` endpoint, where `python -m pipeline subscribe`
connects as it does to a single process; the XSUB side connects to each shard's publisher
and subscribes to everything. Events pass through unchanged (topic and JSON body), so
each camera's `seq` is the one its shard gave it. It keeps what subscribers have of each
camera (`published`, `last_seq`): where a camera moved off a dead shard resumes; and
the cameras whose `stream.ended` subscribers have (`ended`): an ended camera is not moved
unless they lack it.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections import Counter
from typing import Any

import zmq

from pipeline.config import ZmqSinkConfig
from sinks.event_bus.publisher import MAX_SUBSCRIPTION_BYTES
from sinks.event_bus.resumption import Published, event_key
from sinks.event_bus.schema import STREAM_ENDED

log = logging.getLogger(__name__)

POLL_MS = 50
"""How often the forwarding thread looks at its stop event."""


class ForwarderError(RuntimeError):
    """The forwarder cannot bind its endpoint."""


class EventForwarder:
    """Forwards every shard's events to `config.endpoint`, in a thread, until `close`.

    `forwarded` counts the events passed on per camera, `dropped` those a subscriber
    `send_hwm` events behind could not take (lost for subscribers, as in one process: the
    bookkeeping below counts them as passed on, and subscribers see the gap in `seq`).
    """

    def __init__(self, config: ZmqSinkConfig) -> None:
        self.forwarded: Counter[str] = Counter()
        self.dropped = 0
        self.last_seq: dict[str, int] = {}
        """Each camera's last `seq` passed on."""
        self.published: dict[str, Published] = {}
        """What subscribers have of each camera's stream."""
        self.ended: set[str] = set()
        """The cameras whose `stream.ended` was passed on."""
        self._context = zmq.Context()
        self._xpub = self._context.socket(zmq.XPUB)
        self._xsub = self._context.socket(zmq.XSUB)
        # Its peers are anyone who can reach the endpoint, as for one process's publisher.
        self._xpub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        self._xpub.setsockopt(zmq.SNDHWM, config.send_hwm)
        self._xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        if not config.isolate_subscribers:
            self._xpub.setsockopt(zmq.XPUB_NODROP, 1)  # a full queue is counted, not silent
        self._xsub.setsockopt(zmq.RCVHWM, 0)  # shards are never made to drop by the driver
        try:
            self._xpub.bind(config.endpoint)
        except zmq.ZMQError as exc:
            self._context.destroy(linger=0)
            hint = " (another program uses it)" if exc.errno == errno.EADDRINUSE else ""
            raise ForwarderError(
                f"zmq sink: cannot bind {config.endpoint!r}{hint}: {zmq.strerror(exc.errno or 0)}"
            ) from exc
        self.endpoint = self._xpub.getsockopt_string(zmq.LAST_ENDPOINT) or config.endpoint
        self._xsub.send(b"\x01")  # subscribe to every topic of every shard
        self._subscriptions = 0
        self._last_message = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._forward, name="event-forwarder", daemon=True)
        self._thread.start()

    def connect(self, shard_endpoint: str) -> None:
        """Takes the events of the shard publishing at `shard_endpoint` (it may bind later)."""
        with self._lock:
            self._xsub.connect(shard_endpoint)

    def retire(self, shard_endpoint: str) -> None:
        """Takes no more events from the shard at `shard_endpoint` (it died): what it sent
        and was not passed on yet is dropped, so `published` and `last_seq` of its cameras
        stay as subscribers have them while another shard resumes them."""
        with self._lock:
            try:
                self._xsub.disconnect(shard_endpoint)
            except zmq.ZMQError as exc:  # not connected (any more): nothing comes from it
                log.debug("forwarder: %s not disconnected: %s", shard_endpoint, exc)

    def wait_for_subscribers(
        self, count: int, timeout_s: float, stop: threading.Event | None = None
    ) -> int:
        """Waits until `count` subscriptions arrived on the endpoint, `timeout_s` at most;
        `stop` (the run's: Ctrl-C) ends the wait at once. Returns how many arrived."""
        deadline = time.monotonic() + timeout_s
        while self._subscriptions < count and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            time.sleep(0.02)
        return self._subscriptions

    def close(self, quiet_s: float = 0.5, timeout_s: float = 5.0) -> None:
        """Stops once no event came for `quiet_s` (the shards' last ones are in transit
        when they return), `timeout_s` at most, and closes both sockets."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and time.monotonic() - self._last_message < quiet_s:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join()
        self._xsub.close(linger=0)
        self._xpub.close(linger=1000)
        self._context.term()

    def describe(self) -> str:
        """One line for the run summary."""
        return (
            f"zmq {self.endpoint} (forwarded from every shard): "
            f"{sum(self.forwarded.values())} events sent, {self.dropped} dropped"
        )

    def _forward(self) -> None:
        poller = zmq.Poller()
        poller.register(self._xsub, zmq.POLLIN)
        poller.register(self._xpub, zmq.POLLIN)
        while not self._stop.is_set():
            with self._lock:
                ready = dict(poller.poll(POLL_MS))
                if self._xpub in ready:
                    self._take_subscriptions()
                if self._xsub in ready:
                    self._pass_events()

    def _take_subscriptions(self) -> None:
        while True:
            try:
                message = self._xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if message[:1] == b"\x01":
                self._subscriptions += 1

    def _pass_events(self) -> None:
        while True:
            try:
                parts = self._xsub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._last_message = time.monotonic()
            body = _body(parts)
            camera = "?" if body is None else body["camera"]
            try:
                self._xpub.send_multipart(parts, zmq.NOBLOCK)
                self.forwarded[camera] += 1
            except zmq.Again:
                self.dropped += 1
            if body is not None:
                self.last_seq[camera] = int(body["seq"])
                self.published[camera] = self.published.get(camera, Published()).after(body)
                if body["type"] == STREAM_ENDED:
                    self.ended.add(camera)


def _body(parts: list[bytes]) -> dict[str, Any] | None:
    """An event's JSON body (a camera id may hold dots, so the topic `<type>.<camera>`
    does not say where the camera starts); None for a message that is not an event."""
    try:
        body = json.loads(parts[-1])
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deeply
        return None
    if (
        isinstance(body, dict)
        and isinstance(body.get("type"), str)
        and isinstance(body.get("camera"), str)
        and isinstance(body.get("seq"), int)
        and isinstance(body.get("frame"), int | None)
    ):
        try:
            hash(event_key(body))
        except TypeError:  # a list or an object where a frame, track id or name should be
            return None
        return body
    return None
