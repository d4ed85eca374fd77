"""subscribe() and EventSubscriber filter events exactly, skip invalid ones, count lost ones;
only_labels narrows events to some classes."""

from __future__ import annotations

import json
import threading
import time

import pytest
import zmq

from pipeline.types import StreamEnd, TrackEvent
from sinks.event_bus.bodies import detections_event, stream_ended_event, track_event
from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.schema import DetectionsEvent, Event, TrackStartedEvent, ZoneOccupancyEvent
from sinks.event_bus.subscriber import (
    SKIP_LINE_CHARS,
    SKIPS_LOGGED,
    EventSubscriber,
    only_labels,
    subscribe,
)
from tests.sinks.event_bus.conftest import LABELS, RECEIVE_TIMEOUT_MS, T0, boxes, result, track
from tests.sinks.event_bus.test_schema import (
    analytics_events,
    dets,
    every_kind_of_event,
    frame,
    summary,
)


def test_subscribe_filters_exactly_by_camera_and_type(endpoint: str) -> None:
    received: list[Event] = []
    last_track = 99  # sent after everything else; the consumer stops there

    def consume() -> None:
        for event in subscribe(endpoint, cameras=["lob"], types=["track.started"], timeout_s=30):
            received.append(event)
            if isinstance(event, TrackStartedEvent) and event.track_id == last_track:
                break

    consumer = threading.Thread(target=consume)
    consumer.start()
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    for camera in ("lobby", "lob", "lo"):
        for i in range(3):
            events = (TrackEvent("started", track(camera, i, i, i)),)
            sink.write(result(camera, i, boxes([[1, 1, 5, 5]], [i]), events))
        ended = (TrackEvent("ended", track(camera, 0, 0, 2)),)
        sink.end(StreamEnd(camera, frames=3, track_events=ended))
    sink.write(result("lob", 3, events=(TrackEvent("started", track("lob", last_track, 3, 3)),)))
    consumer.join(timeout=60)
    sink.close()

    assert not consumer.is_alive()
    assert [(e.camera, e.type, getattr(e, "track_id", None)) for e in received] == [
        ("lob", "track.started", 0),
        ("lob", "track.started", 1),
        ("lob", "track.started", 2),
        ("lob", "track.started", last_track),
    ]


def test_subscriber_skips_messages_that_are_not_valid_events(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind(endpoint)
    good = {
        "schema_version": 1,
        "type": "stream.ended",
        "camera": "cam1",
        "seq": 0,
        "time": "2026-11-21T10:00:00.123Z",
        "frame": None,
        "frames": 0,
        "error": None,
    }
    try:
        with EventSubscriber(endpoint) as subscriber:
            assert pub.poll(RECEIVE_TIMEOUT_MS), "subscription did not arrive"
            pub.recv()
            pub.send_multipart([b"detections.cam1", b"{not json"])
            pub.send_multipart([b"detections.cam1", b"{}", b"extra frame"])
            pub.send_multipart([b"detections.cam1", b"[1, 2]"])
            pub.send_multipart([b"detections.cam1", b"[" * 100_000])  # nested too deeply
            pub.send_multipart([b"\xff\xfe", b"\xff\xfe\x00\x80"])  # not UTF-8
            pub.send_multipart([b"detections.cam1", json.dumps({**good, "seq": -1}).encode()])
            missing = {k: v for k, v in good.items() if k != "frames"}
            pub.send_multipart([b"stream.ended.cam1", json.dumps(missing).encode()])
            pub.send_multipart([b"stream.ended.cam1", json.dumps(good).encode()])

            event = subscriber.receive(timeout_s=5.0)
            assert event is not None and event.model_dump(mode="json") == good
    finally:
        pub.close(linger=0)
        context.term()
    assert sum("skipped a message" in r.getMessage() for r in caplog.records) == 7


def test_a_publisher_flooding_invalid_messages_gets_ten_log_lines_then_a_count(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind(endpoint)
    try:
        with EventSubscriber(endpoint) as subscriber:
            assert pub.poll(RECEIVE_TIMEOUT_MS), "subscription did not arrive"
            pub.recv()
            for i in range(500):
                pub.send_multipart([b"detections.cam1", f"garbage {i}".encode()])
            pub.send_multipart(
                [
                    b"stream.ended.cam1",
                    stream_ended_event(StreamEnd("cam1", frames=0), 0, None, T0)
                    .model_dump_json()
                    .encode(),
                ]
            )
            assert subscriber.receive(timeout_s=5.0) is not None
            assert subscriber.skipped == 500
    finally:
        pub.close(linger=0)
        context.term()
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == SKIPS_LOGGED + 1
    assert "further ones are counted" in lines[SKIPS_LOGGED - 1]
    assert lines[-1].startswith(f"event bus: skipped {500 - SKIPS_LOGGED} more message(s)")


def test_a_message_with_a_huge_topic_and_type_is_skipped_in_one_short_line(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind(endpoint)
    huge = "x" * 2**20
    try:
        with EventSubscriber(endpoint) as subscriber:
            assert pub.poll(RECEIVE_TIMEOUT_MS), "subscription did not arrive"
            pub.recv()
            pub.send_multipart([huge.encode(), json.dumps({"type": huge}).encode()])
            assert subscriber.receive(timeout_s=0.5) is None
            assert subscriber.skipped == 1
    finally:
        pub.close(linger=0)
        context.term()
    (line,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(line) < 2 * SKIP_LINE_CHARS


def test_subscriber_knows_whether_a_publisher_was_ever_there(endpoint: str) -> None:
    def state_becomes(subscriber: EventSubscriber, wanted: str) -> bool:
        deadline = time.monotonic() + 10
        while subscriber.publisher != wanted and time.monotonic() < deadline:
            subscriber.receive(timeout_s=0.05)
        return subscriber.publisher == wanted

    with EventSubscriber(endpoint) as subscriber:
        assert subscriber.receive(timeout_s=0.2) is None
        assert subscriber.publisher == "absent"  # nothing listens there: retrying
        context = zmq.Context()
        publisher = context.socket(zmq.PUB)
        publisher.bind(endpoint)
        try:
            assert state_becomes(subscriber, "connected")
        finally:
            publisher.close(linger=0)
            context.term()
        assert state_becomes(subscriber, "gone")


def test_subscribe_rejects_unknown_event_type_before_connecting() -> None:
    with pytest.raises(ValueError, match=r"'detection'.*track\.started"):
        subscribe("tcp://127.0.0.1:1", types=["detection"])
    with pytest.raises(ValueError, match="'detection'"):
        EventSubscriber("tcp://127.0.0.1:1", types=["detection"])


def test_subscribe_to_malformed_endpoint_raises_value_error() -> None:
    with pytest.raises(ValueError, match="'nonsense'"):
        next(subscribe("nonsense", timeout_s=0.1))


def test_subscriber_counts_events_lost_in_transit_per_camera(endpoint: str) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind(endpoint)

    def send(camera: str, seq: int) -> None:
        event = stream_ended_event(StreamEnd(camera, frames=0), seq, None, T0)
        pub.send_multipart([f"stream.ended.{camera}".encode(), event.model_dump_json().encode()])

    try:
        with (
            EventSubscriber(endpoint) as everything,
            EventSubscriber(endpoint, types=["stream.ended"]) as filtered,
        ):
            for _ in range(2):
                assert pub.poll(RECEIVE_TIMEOUT_MS), "subscription did not arrive"
                pub.recv()
            for camera, seq in [("a", 0), ("a", 1), ("b", 7), ("a", 4), ("b", 8), ("a", 9)]:
                send(camera, seq)
            for subscriber in (everything, filtered):
                assert [subscriber.receive(5.0) is not None for _ in range(6)] == [True] * 6
            # a: 0, 1, then 4 (2 lost), then 9 (4 lost); b joined late at 7: nothing lost
            assert everything.missed == {"a": 6}
            # filtering by type makes seq jump by design: no gaps are counted
            assert filtered.missed == {}
    finally:
        pub.close(linger=0)
        context.term()


def test_label_filter_keeps_matching_objects_and_drops_the_rest() -> None:
    mixed = detections_event(frame(), dets([1, 2, -1], labels=[1, 2, 2]), LABELS, seq=0)
    cars = only_labels(mixed, ["car"])
    assert isinstance(cars, DetectionsEvent)
    assert [(o.label, o.track_id) for o in cars.objects] == [("car", 2), ("car", None)]
    assert only_labels(mixed, ["dog"]) is None
    assert only_labels(mixed, []) is mixed
    started = track_event("started", summary(), LABELS, 1, 7, T0)
    assert only_labels(started, ["car"]) is None
    assert only_labels(started, ["person"]) is started


def test_label_filter_names_classes_as_a_config_does() -> None:
    mixed = detections_event(frame(), dets([1, 2, -1], labels=[1, 2, 2]), LABELS, seq=0)
    cars = only_labels(mixed, [" Car"])
    assert isinstance(cars, DetectionsEvent)
    assert [o.label for o in cars.objects] == ["car", "car"]
    started = track_event("started", summary(), LABELS, 1, 7, T0)
    assert only_labels(started, ["PERSON"]) is started
    ended = every_kind_of_event()[4]
    assert only_labels(ended, ["car"]) is ended


def test_label_filter_keeps_zone_and_line_events_of_those_labels_and_their_counts() -> None:
    entered, dwell, left, closed, crossed, occupancy = analytics_events()  # of a person
    for event in (entered, dwell, left, closed, crossed):
        assert only_labels(event, ["car"]) is None
        assert only_labels(event, ["person"]) is event
    cars = only_labels(occupancy, ["car"])
    assert isinstance(cars, ZoneOccupancyEvent)
    assert (cars.counts, cars.total) == ({"car": 1}, 1)
    nobody = only_labels(occupancy, ["dog"])
    assert isinstance(nobody, ZoneOccupancyEvent) and (nobody.counts, nobody.total) == ({}, 0)
