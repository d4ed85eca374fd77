"""The driver's event forwarder: every shard's events on one endpoint, unchanged."""

from __future__ import annotations

import numpy as np

from pipeline.cluster.forwarder import EventForwarder
from pipeline.config import ZmqSinkConfig
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamEnd
from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.subscriber import EventSubscriber
from tests.conftest import free_port


def result(camera: str, index: int) -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    return FrameResult(Frame(camera, index, index / 10, 0.0, image), Detections.empty())


def test_two_shards_events_reach_one_subscriber_with_their_own_seq() -> None:
    forwarder = EventForwarder(ZmqSinkConfig(type="zmq", endpoint="tcp://127.0.0.1:0"))
    subscriber = EventSubscriber(forwarder.endpoint)
    shards = []
    try:
        assert forwarder.wait_for_subscribers(1, 10) == 1
        for _ in range(2):
            endpoint = f"tcp://127.0.0.1:{free_port()}"
            forwarder.connect(endpoint)
            shards.append(
                EventPublisher(endpoint, LabelMap(), wait_for_subscribers=1, wait_timeout_s=10)
            )
        shards[1].continue_camera("b", 7)  # b moved here: its seq goes on
        for i in range(3):
            shards[0].write(result("a", i))
            shards[1].write(result("b", i))
        shards[0].end(StreamEnd("a", 3))
        shards[1].end(StreamEnd("b", 3))
        events = [subscriber.receive(timeout_s=10) for _ in range(8)]
    finally:
        for shard in shards:
            shard.close()
        forwarder.close()
        subscriber.close()
    seqs = {c: [e.seq for e in events if e is not None and e.camera == c] for c in "ab"}
    assert seqs == {"a": [0, 1, 2, 3], "b": [7, 8, 9, 10]}
    assert forwarder.last_seq == {"a": 3, "b": 10}
    assert forwarder.last_frame == {"a": 2, "b": 2}
    assert forwarder.forwarded == {"a": 4, "b": 4}
