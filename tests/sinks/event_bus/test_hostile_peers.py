"""A peer of the event bus cannot make the pipeline (or a subscriber) allocate more than a
bounded message, and an `ipc://` endpoint never deletes a file that is not a socket."""

from __future__ import annotations

import contextlib
import socket
import struct
from pathlib import Path

import pytest
import zmq

from pipeline.types import StreamEnd
from sinks.base import SinkError
from sinks.event_bus.publisher import MAX_SUBSCRIPTION_BYTES, EventPublisher
from sinks.event_bus.schema import stream_ended_event
from sinks.event_bus.subscriber import MAX_EVENT_BYTES, EventSubscriber
from tests.sinks.event_bus.conftest import LABELS, T0, receive, result


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
        huge = stream_ended_event(
            StreamEnd("cam1", frames=0, error="x" * (MAX_EVENT_BYTES + 1)), 0, None, T0
        ).model_dump_json().encode()
        for _ in range(20):  # until the subscription has arrived: the first ones are lost
            pub.send_multipart([b"stream.ended.cam1", huge])
            assert subscriber.receive(timeout_s=0.05) is None
    finally:
        subscriber.close()
        pub.close(linger=0)
        context.term()
