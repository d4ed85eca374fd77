"""A peer of the event bus cannot make the pipeline (or a subscriber) allocate more than a
bounded message, and an `ipc://` endpoint never deletes a file that is not a socket.

The memory a hostile peer costs is measured on a receiver in a process of its own
(`tests/sinks/event_bus/receiver.py`): its peak resident memory (VmHWM, reset before the
attack) against its resident memory (VmRSS) before it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from pipeline.types import StreamEnd
from sinks.base import SinkError
from sinks.event_bus.bodies import stream_ended_event
from sinks.event_bus.publisher import MAX_SUBSCRIPTION_BYTES, EventPublisher
from sinks.event_bus.subscriber import MAX_EVENT_BYTES, EventSubscriber
from tests.sinks.event_bus.conftest import LABELS, T0, receive, result

ROOT = Path(__file__).resolve().parents[3]
RSS_GROWTH_MAX = 8 * 2**20
"""What a hostile peer may add to a receiver's memory: far below the 64 MB it sends (or
the 200 MB it announces), above what a Python process's memory varies by meanwhile."""


def zmtp_sub_peer(endpoint: str) -> socket.socket:
    """A raw TCP client that completes the ZMTP 3.0 NULL handshake as a SUB socket."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    peer = socket.create_connection((host, int(port)), timeout=5)
    greeting = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" * 32
    peer.sendall(greeting)
    ready_body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 3) + b"SUB"
    peer.sendall(b"\x04" + bytes([len(ready_body)]) + ready_body)
    return peer


def closed_by_server(peer: socket.socket) -> bool:
    """Whether the server closes the connection (reading what it sends until then)."""
    try:
        while peer.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@pytest.mark.parametrize("declared", [2**30, 2**62, MAX_SUBSCRIPTION_BYTES + 1])
def test_a_peer_declaring_a_huge_frame_is_dropped_and_subscribers_keep_their_events(
    endpoint: str, sub_socket: zmq.Socket[bytes], declared: int
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    peer = zmtp_sub_peer(endpoint)
    try:
        # a long frame (flag 0x02) of `declared` bytes, and the first megabyte of it
        peer.sendall(b"\x02" + struct.pack(">Q", declared))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # already dropped
            peer.sendall(b"\x01" * 2**20)
        assert closed_by_server(peer)
        sink.write(result("cam1", 0))
        assert receive(sub_socket, 1)[0][0] == "detections.cam1"
    finally:
        peer.close()
        sink.close()


def test_publisher_bounds_the_messages_peers_may_send() -> None:
    sink = EventPublisher("tcp://127.0.0.1:*", LABELS)
    try:
        assert sink._socket is not None
        assert sink._socket.getsockopt(zmq.MAXMSGSIZE) == MAX_SUBSCRIPTION_BYTES
    finally:
        sink.close()


def test_a_long_subscription_within_the_bound_still_subscribes(endpoint: str) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    camera = "c" * 200
    sub.setsockopt(zmq.SUBSCRIBE, f"detections.{camera}".encode())
    sub.connect(endpoint)
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    try:
        sink.write(result(camera, 0))
        assert receive(sub, 1)[0][0] == f"detections.{camera}"
    finally:
        sink.close()
        sub.close(linger=0)
        context.term()


@pytest.mark.parametrize("kind", ["file", "folder", "symlink"])
def test_ipc_endpoint_on_a_path_that_is_not_a_socket_is_refused_and_left_alone(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "events"
    if kind == "file":
        path.write_text("the user's notes")
    elif kind == "folder":
        path.mkdir()
    else:
        (tmp_path / "target").write_text("the user's notes")
        path.symlink_to(tmp_path / "target")
    with pytest.raises(SinkError, match=f"{path}.*exists and is not a socket"):
        EventPublisher(f"ipc://{path}", LABELS)
    if kind == "folder":
        assert path.is_dir()
    else:
        assert path.read_text() == "the user's notes"


def test_ipc_endpoint_in_use_by_another_publisher_is_refused(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path / 'events'}"
    first = EventPublisher(endpoint, LABELS)
    try:
        with pytest.raises(SinkError, match="another program"):
            EventPublisher(endpoint, LABELS)
    finally:
        first.close()


def test_ipc_endpoint_left_by_an_earlier_run_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "events"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on, as a crashed run leaves
    stale.close()
    sink = EventPublisher(f"ipc://{path}", LABELS)
    sink.close()


def test_subscriber_never_takes_in_an_oversized_message(endpoint: str) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind(endpoint)
    subscriber = EventSubscriber(endpoint)
    try:
        huge = (
            stream_ended_event(
                StreamEnd("cam1", frames=0, error="x" * (MAX_EVENT_BYTES + 1)), 0, None, T0
            )
            .model_dump_json()
            .encode()
        )
        for _ in range(20):  # until the subscription has arrived: the first ones are lost
            pub.send_multipart([b"stream.ended.cam1", huge])
            assert subscriber.receive(timeout_s=0.05) is None
    finally:
        subscriber.close()
        pub.close(linger=0)
        context.term()


class Receiver:
    """A receiver process (`python -m tests.sinks.event_bus.receiver ROLE ENDPOINT`): the
    lines it prints, and its memory."""

    def __init__(self, role: str, endpoint: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.sinks.event_bus.receiver", role, endpoint],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line(30) == "ready"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def next_line(self, timeout_s: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def memory(self, field: str) -> int:
        """A size from /proc/<pid>/status ("VmRSS", "VmHWM"), in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024  # "12345 kB"
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def mark_memory(self) -> int:
        """VmRSS now; the peak (VmHWM) starts again from it."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self.memory("VmRSS")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        finally:
            self.process.kill()


@contextlib.contextmanager
def receiver(role: str, endpoint: str) -> Iterator[Receiver]:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/<pid>/clear_refs here: a process's peak memory cannot be reset")
    process = Receiver(role, endpoint)
    try:
        yield process
    finally:
        process.close()


def subscribed(context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return sub


def test_a_peer_sending_a_frame_of_200_mb_costs_the_publisher_no_memory_and_it_serves_on(
    endpoint: str,
) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with receiver("publisher", endpoint) as publisher:
        sub = subscribed(context, endpoint)
        try:
            receive(sub, 5)  # a well-behaved subscriber gets its events
            before = publisher.mark_memory()
            peer = zmtp_sub_peer(endpoint)
            try:
                # a long frame (flag 0x02) announcing 200 MB, and 64 MB of it
                peer.sendall(b"\x02" + struct.pack(">Q", 200 * 10**6))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for _ in range(64):
                        peer.sendall(b"\x01" * 2**20)
                assert closed_by_server(peer)
            finally:
                peer.close()
            receive(sub, 5)
            late = subscribed(context, endpoint)  # and one that comes after the attack
            receive(late, 5)
            late.close(linger=0)
            grown = publisher.memory("VmHWM") - before
        finally:
            sub.close(linger=0)
            context.term()
    assert grown < RSS_GROWTH_MAX, f"the publisher grew by {grown / 2**20:.1f} MiB"


def test_a_publisher_sending_64_mb_costs_the_subscriber_no_memory_and_is_dropped_for_good(
    endpoint: str,
) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind(endpoint)
    monitor = pub.get_monitor_socket(zmq.EVENT_DISCONNECTED)

    def received(first_seq: int, sends: int) -> bool:
        """Sends events from `first_seq` on: whether the subscriber printed one of them."""
        for seq in range(first_seq, first_seq + sends):
            body = stream_ended_event(StreamEnd("cam1", frames=0), seq, None, T0)
            pub.send_multipart([b"stream.ended.cam1", body.model_dump_json().encode()])
            line = subscriber.next_line(0.02)
            if line is not None and int(line.split()[-1]) >= first_seq:
                return True
        return False

    try:
        with receiver("subscriber", endpoint) as subscriber:
            assert received(0, 500)  # connected, subscribed, receiving
            before = subscriber.mark_memory()
            pub.send_multipart([b"stream.ended.cam1", b"x" * (64 * 2**20)])
            assert monitor.poll(10_000), "the subscriber kept the connection"
            # ZeroMQ drops a peer that breaks the protocol's limits for good, without
            # reconnecting: a publisher sending such events is not the pipeline.
            assert not received(1000, 25)
            grown = subscriber.memory("VmHWM") - before
            assert subscriber.process.poll() is None  # alive, and ends when asked
    finally:
        pub.disable_monitor()
        monitor.close(linger=0)
        pub.close(linger=0)
        context.term()
    assert subscriber.process.returncode == 0
    assert grown < RSS_GROWTH_MAX, f"the subscriber grew by {grown / 2**20:.1f} MiB"


def test_a_publisher_flooding_large_events_on_a_subscriber_not_reading_costs_bounded_memory(
    endpoint: str,
) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 200)
    pub.bind(endpoint)
    body = b'"' + b"x" * (4 * 2**20) + b'"'  # within MAX_EVENT_BYTES; one buffer, sent 100 times
    try:
        with EventSubscriber(endpoint) as subscriber:
            for _ in range(100):  # until the subscription arrived: sent, not yet read
                pub.send_multipart([b"detections.cam1", b"{}"])
                if subscriber.receive(timeout_s=0.05) is None and subscriber.skipped:
                    break
            before = _rss()
            for _ in range(100):
                pub.send_multipart([b"detections.cam1", body], copy=False)
            deadline = time.monotonic() + 3  # the time 400 MiB take on loopback, amply
            while time.monotonic() < deadline and _rss() - before < 200 * 2**20:
                time.sleep(0.05)
            grown = _rss() - before
            assert subscriber.receive(timeout_s=0.5) is None  # reads what was held, skips it
    finally:
        pub.close(linger=0)
        context.term()
    assert grown < 200 * 2**20, f"the subscriber holds {grown / 2**20:.0f} MiB of unread events"


def _rss() -> int:
    """This process's resident memory (VmRSS), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")
