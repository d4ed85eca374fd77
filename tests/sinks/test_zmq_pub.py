"""ZmqSink publishes complete, gap-free JSON events; subscribe() filters them exactly."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import zmq

from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    StreamInfo,
    TrackEvent,
    TrackSummary,
)
from sinks.base import SinkError
from sinks.zmq_pub import SCHEMA_VERSION, EventSubscriber, ZmqSink, subscribe

LABELS = LabelMap(("background", "person", "car"))
T0 = 1_795_000_000.0
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RECEIVE_TIMEOUT_MS = 5000

COMMON = {"schema_version", "type", "camera", "seq", "time", "frame"}
DETECTIONS_FIELDS = COMMON | {"pts", "width", "height", "objects"}
OBJECT_FIELDS = {"label", "label_id", "score", "box", "track_id"}
TRACK_FIELDS = COMMON | {
    "track_id", "label", "label_id", "first_frame", "last_frame", "first_time", "last_time",
    "frames", "best_score", "best_box", "last_box",
}
STREAM_ENDED_FIELDS = COMMON | {"frames", "error"}


@pytest.fixture
def endpoint() -> str:
    """A tcp endpoint on a port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def sub_socket(endpoint: str) -> Iterator[zmq.Socket[bytes]]:
    """A SUB socket subscribed to everything, connected before the sink binds."""
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    yield sock
    sock.close(linger=0)
    context.term()


def receive(sock: zmq.Socket[bytes], count: int) -> list[tuple[str, dict]]:
    messages: list[tuple[str, dict]] = []
    for _ in range(count):
        assert sock.poll(RECEIVE_TIMEOUT_MS), f"only {len(messages)} of {count} messages arrived"
        topic, body = sock.recv_multipart()
        messages.append((topic.decode(), json.loads(body)))
    return messages


IMAGE = np.zeros((48, 64, 3), np.uint8)


def boxes(xyxy: list[list[float]], tracks: list[int]) -> Detections:
    n = len(xyxy)
    return Detections(
        xyxy=np.array(xyxy, np.float32).reshape(n, 4),
        score=np.linspace(0.9, 0.5, n).astype(np.float32),
        label=np.ones(n, np.int64),
        track_id=np.array(tracks, np.int64).reshape(n),
    )


def result(
    camera: str,
    index: int,
    detections: Detections | None = None,
    events: tuple[TrackEvent, ...] = (),
) -> FrameResult:
    frame = Frame(camera, index, pts=index / 25, wall_time=T0 + index / 25, image=IMAGE)
    return FrameResult(
        frame=frame, detections=detections or Detections.empty(), track_events=events
    )


def track(camera: str, track_id: int, first: int, last: int) -> TrackSummary:
    return TrackSummary(
        camera_id=camera, track_id=track_id, label=1, first_frame=first, last_frame=last,
        first_time=T0 + first / 25, last_time=T0 + last / 25, frames=last - first + 1,
        best_score=0.912345, best_box=(1.04, 2.0, 30.26, 40.0), last_box=(2.0, 3.0, 31.0, 41.0),
    )


def test_events_have_every_field_and_gap_free_seq_across_types(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1)
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    sink.write(result("cam1", 0, boxes([[1.04, 2.06, 30.0, 40.0]], [-1])))
    started = TrackEvent("started", track("cam1", 5, 0, 1))
    two = boxes([[2.0, 3.0, 31.0, 41.0], [5, 5, 9, 9]], [5, -1])
    sink.write(result("cam1", 1, two, (started,)))
    expired = TrackEvent("ended", track("cam1", 4, 0, 0))
    sink.write(result("cam1", 2, events=(expired,)))
    closed = TrackEvent("ended", track("cam1", 5, 0, 2))
    sink.end(StreamEnd("cam1", frames=3, track_events=(closed,)))
    sink.close()  # queued events still go out

    messages = receive(sub_socket, 7)
    bodies = [body for _, body in messages]
    assert [t for t, _ in messages] == [f"{b['type']}.cam1" for b in bodies]
    assert [b["type"] for b in bodies] == [
        "detections", "detections", "track.started", "detections", "track.ended",
        "track.ended", "stream.ended",
    ]
    assert [b["seq"] for b in bodies] == list(range(7))
    assert [b["frame"] for b in bodies] == [0, 1, 1, 2, 2, 2, 2]
    fields = {
        "detections": DETECTIONS_FIELDS,
        "track.started": TRACK_FIELDS,
        "track.ended": TRACK_FIELDS,
        "stream.ended": STREAM_ENDED_FIELDS,
    }
    for body in bodies:
        assert set(body) == fields[body["type"]]
        assert body["schema_version"] == SCHEMA_VERSION and body["camera"] == "cam1"
        assert ISO_MS.match(body["time"]), body["time"]

    first = bodies[0]
    assert (first["pts"], first["width"], first["height"]) == (0.0, 64, 48)
    assert first["objects"] == [
        {"label": "person", "label_id": 1, "score": 0.9, "box": [1.0, 2.1, 30.0, 40.0],
         "track_id": None},
    ]
    assert [o["track_id"] for o in bodies[1]["objects"]] == [5, None]
    assert bodies[3]["objects"] == []
    assert bodies[2]["time"] == bodies[1]["time"]

    track_started = bodies[2]
    assert track_started["track_id"] == 5 and track_started["label"] == "person"
    assert (track_started["first_frame"], track_started["last_frame"]) == (0, 1)
    assert track_started["frames"] == 2 and track_started["best_score"] == 0.9123
    assert track_started["best_box"] == [1.0, 2.0, 30.3, 40.0]
    assert ISO_MS.match(track_started["first_time"]) and ISO_MS.match(track_started["last_time"])
    assert bodies[6]["frames"] == 3 and bodies[6]["error"] is None


def test_time_is_utc_iso_with_milliseconds(endpoint: str, sub_socket: zmq.Socket[bytes]) -> None:
    sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1)
    image = np.zeros((8, 8, 3), np.uint8)
    frame = Frame("cam1", 0, pts=0.0, wall_time=1795255200.123, image=image)
    sink.write(FrameResult(frame=frame, detections=Detections.empty()))
    sink.close()

    [(_, body)] = receive(sub_socket, 1)
    assert body["time"] == "2026-11-21T10:00:00.123Z"


def test_interleaved_cameras_keep_separate_seq(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1)
    for i in range(4):
        sink.write(result("a", i))
        if i % 2:
            sink.write(result("b", i // 2))
    sink.end(StreamEnd("b", frames=2, error="camera unplugged"))
    sink.end(StreamEnd("a", frames=4))
    sink.close()

    bodies = [body for _, body in receive(sub_socket, 8)]
    seq = {cam: [b["seq"] for b in bodies if b["camera"] == cam] for cam in ("a", "b")}
    assert seq == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2]}
    ended_b = next(b for b in bodies if b["camera"] == "b" and b["type"] == "stream.ended")
    assert (ended_b["frame"], ended_b["error"]) == (1, "camera unplugged")


def test_stream_that_ended_before_its_first_frame_sends_stream_ended_without_frame(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1)
    sink.end(StreamEnd("cam1", frames=0, error="cannot open rtsp://cam1"))
    sink.close()

    [(topic, body)] = receive(sub_socket, 1)
    assert topic == "stream.ended.cam1"
    assert (body["seq"], body["frame"], body["frames"]) == (0, None, 0)
    assert body["error"] == "cannot open rtsp://cam1" and ISO_MS.match(body["time"])


def test_sink_without_subscribers_never_blocks(endpoint: str) -> None:
    sink = ZmqSink(endpoint, LABELS, send_hwm=10)
    empty = Detections.empty()
    for i in range(20_000):
        sink.write(result("cam1", i, empty))
    sink.close()

    # Nobody subscribed, so nothing was queued and nothing had to be dropped.
    assert (sink.sent, sink.dropped) == (20_000, 0)


def test_stalled_subscriber_makes_sink_drop_and_count_instead_of_blocking(
    endpoint: str,
) -> None:
    context = zmq.Context()
    stalled = context.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(endpoint)
    sink = ZmqSink(endpoint, LABELS, send_hwm=10, wait_for_subscribers=1)
    five = boxes([[float(k), 2.0, 30.0, 40.0] for k in range(5)], [-1] * 5)  # ~0.7 kB/event
    try:
        for i in range(20_000):
            sink.write(result("cam1", i, five))

        assert sink.dropped > 0
        assert sink.sent + sink.dropped == 20_000
        # Every message the sink counted as sent arrives; the dropped ones show as seq gaps.
        seqs = [body["seq"] for _, body in receive(stalled, sink.sent)]
        assert seqs == sorted(seqs)
        assert len(set(range(20_000)) - set(seqs)) == sink.dropped
    finally:
        sink.close()
        stalled.close(linger=0)
        context.term()


def test_port_in_use_raises_sink_error_naming_endpoint(endpoint: str) -> None:
    first = ZmqSink(endpoint, LABELS)
    try:
        with pytest.raises(SinkError, match=re.escape(endpoint) + ".*another endpoint"):
            ZmqSink(endpoint, LABELS)
    finally:
        first.close()


def test_malformed_endpoint_raises_sink_error() -> None:
    with pytest.raises(SinkError, match="tcp://no-port"):
        ZmqSink("tcp://no-port", LABELS)


def test_wildcard_port_reports_bound_endpoint() -> None:
    sink = ZmqSink("tcp://127.0.0.1:*", LABELS)
    try:
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", sink.bound_endpoint)
    finally:
        sink.close()


def test_subscribe_filters_exactly_by_camera_and_type(endpoint: str) -> None:
    received: list[dict] = []
    last_track = 99  # sent after everything else; the consumer stops there

    def consume() -> None:
        for body in subscribe(endpoint, cameras=["lob"], types=["track.started"], timeout_s=30):
            received.append(body)
            if body["track_id"] == last_track:
                break

    consumer = threading.Thread(target=consume)
    consumer.start()
    sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1)
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
    assert [(b["camera"], b["type"], b["track_id"]) for b in received] == [
        ("lob", "track.started", 0),
        ("lob", "track.started", 1),
        ("lob", "track.started", 2),
        ("lob", "track.started", last_track),
    ]


def test_subscriber_skips_malformed_messages(endpoint: str) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind(endpoint)
    try:
        with EventSubscriber(endpoint) as subscriber:
            assert pub.poll(RECEIVE_TIMEOUT_MS), "subscription did not arrive"
            pub.recv()
            pub.send_multipart([b"detections.cam1", b"{not json"])
            pub.send_multipart([b"detections.cam1", b"{}", b"extra frame"])
            pub.send_multipart([b"detections.cam1", b"[1, 2]"])
            good = {"schema_version": 1, "type": "detections", "camera": "cam1", "seq": 0}
            pub.send_multipart([b"detections.cam1", json.dumps(good).encode()])

            assert subscriber.receive(timeout_s=5.0) == good
    finally:
        pub.close(linger=0)
        context.term()


def test_subscribe_rejects_unknown_event_type_before_connecting() -> None:
    with pytest.raises(ValueError, match=r"'detection'.*track\.started"):
        subscribe("tcp://127.0.0.1:1", types=["detection"])
    with pytest.raises(ValueError, match="'detection'"):
        EventSubscriber("tcp://127.0.0.1:1", types=["detection"])


def test_subscribe_to_malformed_endpoint_raises_value_error() -> None:
    with pytest.raises(ValueError, match="'nonsense'"):
        next(subscribe("nonsense", timeout_s=0.1))
