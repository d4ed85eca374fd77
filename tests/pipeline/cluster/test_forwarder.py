"""The driver's event forwarder: every shard's events on one endpoint, unchanged, and what
subscribers have of each camera, where a camera moved off a dead shard resumes."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from pipeline.cluster.forwarder import EventForwarder, _body
from pipeline.config import ZmqSinkConfig
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamEnd, TrackEvent
from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.resumption import Published
from sinks.event_bus.schema import Event
from sinks.event_bus.subscriber import EventSubscriber
from tests.conftest import free_port
from tests.sinks.event_bus.test_hostile_peers import closed_by_server, zmtp_sub_peer
from tests.sinks.sql.builders import summary


def result(camera: str, index: int, *tracks: TrackEvent) -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    return FrameResult(Frame(camera, index, index / 10, 0.0, image), Detections.empty(), tracks)


def started(camera: str, *track_ids: int) -> tuple[TrackEvent, ...]:
    return tuple(TrackEvent("started", summary(camera, t, 1, 1)) for t in track_ids)


@pytest.fixture
def forwarder() -> Iterator[tuple[EventForwarder, EventSubscriber]]:
    """A forwarder on a free port with one subscriber connected."""
    forwarder = EventForwarder(ZmqSinkConfig(type="zmq", endpoint="tcp://127.0.0.1:0"))
    subscriber = EventSubscriber(forwarder.endpoint)
    assert forwarder.wait_for_subscribers(1, 10) == 1
    yield forwarder, subscriber
    forwarder.close()
    subscriber.close()


def shard(forwarder: EventForwarder) -> EventPublisher:
    """A shard's publisher, its events taken by `forwarder`."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    forwarder.connect(endpoint)
    return EventPublisher(endpoint, LabelMap(), wait_for_subscribers=1, wait_timeout_s=10)


def receive(subscriber: EventSubscriber, count: int) -> list[Event]:
    events = [subscriber.receive(timeout_s=10) for _ in range(count)]
    assert None not in events, events
    return [e for e in events if e is not None]


def test_two_shards_events_reach_one_subscriber_with_their_own_seq(
    forwarder: tuple[EventForwarder, EventSubscriber],
) -> None:
    driver, subscriber = forwarder
    shards = [shard(driver), shard(driver)]
    shards[1].resume_camera("b", 7, Published())  # b moved here: its seq goes on
    for i in range(3):
        shards[0].write(result("a", i))
        shards[1].write(result("b", i))
    shards[0].end(StreamEnd("a", 3))
    shards[1].end(StreamEnd("b", 3))
    events = receive(subscriber, 8)
    for publisher in shards:
        publisher.close()
    seqs = {c: [e.seq for e in events if e.camera == c] for c in "ab"}
    assert seqs == {"a": [0, 1, 2, 3], "b": [7, 8, 9, 10]}
    assert driver.last_seq == {"a": 3, "b": 10}
    assert {c: p.frame for c, p in driver.published.items()} == {"a": 2, "b": 2}
    assert driver.forwarded == {"a": 4, "b": 4}


def test_a_camera_whose_shard_died_within_a_frame_resumes_at_the_next_event_of_it(
    forwarder: tuple[EventForwarder, EventSubscriber],
) -> None:
    driver, subscriber = forwarder
    dead = shard(driver)
    dead.write(result("a", 0))
    dead.write(result("a", 1, *started("a", 1)))  # it died before track 2's start went out
    receive(subscriber, 3)
    dead.close()
    survivor = shard(driver)
    survivor.resume_camera("a", driver.last_seq["a"] + 1, driver.published["a"])
    for i, tracks in enumerate(((), started("a", 1, 2), ())):
        survivor.write(result("a", i, *tracks))
    survivor.close()
    events = receive(subscriber, 2)
    assert [(e.type, e.frame, e.seq) for e in events] == [
        ("track.started", 1, 3),
        ("detections", 2, 4),
    ]
    assert getattr(events[0], "track_id", None) == 2


def test_a_dead_shards_events_that_come_after_it_is_retired_are_not_passed_on(
    forwarder: tuple[EventForwarder, EventSubscriber],
) -> None:
    driver, subscriber = forwarder
    dead = shard(driver)
    dead.write(result("a", 0))
    receive(subscriber, 1)
    driver.retire(dead.endpoint)
    resume = (driver.last_seq["a"] + 1, driver.published["a"])  # where the survivor resumes
    dead.write(result("a", 1))  # still sending (or still in transit) when seen dead
    time.sleep(0.3)
    survivor = shard(driver)
    survivor.resume_camera("a", *resume)
    survivor.write(result("a", 0))
    survivor.write(result("a", 1))
    events = receive(subscriber, 1)
    assert subscriber.receive(timeout_s=0.5) is None
    dead.close()
    survivor.close()
    assert [(e.frame, e.seq) for e in events] == [(1, 1)]
    assert driver.forwarded == {"a": 2}


def test_a_peer_declaring_a_huge_frame_to_the_forwarder_is_dropped_and_events_flow_on(
    forwarder: tuple[EventForwarder, EventSubscriber],
) -> None:
    fwd, subscriber = forwarder
    peer = zmtp_sub_peer(fwd.endpoint)
    try:
        peer.sendall(b"\x02" + struct.pack(">Q", 2**30))  # a long frame announcing 1 GiB
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # already dropped
            peer.sendall(b"\x01" * 2**20)
        assert closed_by_server(peer)
    finally:
        peer.close()
    publisher = shard(fwd)
    publisher.write(result("cam1", 0))
    assert [e.type for e in receive(subscriber, 1)] == ["detections"]
    publisher.close()


def test_garbage_subscription_frames_leave_the_forwarder_serving(
    forwarder: tuple[EventForwarder, EventSubscriber],
) -> None:
    fwd, subscriber = forwarder
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    rogue = context.socket(zmq.XSUB)
    rogue.connect(fwd.endpoint)
    for frame in (b"", b"\x00", b"\x05junk", b"\xff" * 4000, b"\x01" + b"a" * 4000):
        rogue.send(frame)
    publisher = shard(fwd)
    try:
        publisher.write(result("cam1", 0))
        assert [e.type for e in receive(subscriber, 1)] == ["detections"]
    finally:
        publisher.close()
        rogue.close(linger=0)
        context.term()


def test_a_stop_ends_the_drivers_wait_for_subscribers_rather_than_wait_timeout_s() -> None:
    forwarder = EventForwarder(ZmqSinkConfig(type="zmq", endpoint="tcp://127.0.0.1:0"))
    stop = threading.Event()
    stop.set()  # Ctrl-C while the driver waits (wait_timeout_s may be an hour)
    try:
        assert forwarder.wait_for_subscribers(1, timeout_s=3600.0, stop=stop) == 0
    finally:
        forwarder.close(quiet_s=0.0)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"\xff\xfe\x00",
        b"{not json",
        b'{"type": "track.started", "camera": "a", "seq": 1, "frame": 1, "track_id": [1]}',
        b'{"type": "camera.status", "camera": "a", "seq": 1, "frame": null, "state": {}}',
    ],
)
def test_a_shard_message_not_json_or_not_an_event_is_passed_on_as_no_event(
    body: bytes,
) -> None:
    # a RecursionError or an unhashable key here would end the forwarder's thread, and every
    # shard's events with it
    assert _body([b"detections.a", body]) is None
