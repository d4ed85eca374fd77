"""EventPublisher publishes complete, gap-free JSON events, and never blocks the pipeline."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import zmq

from pipeline.types import (
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    LineCrossing,
    StreamEnd,
    StreamInfo,
    TrackEvent,
    ZoneEvent,
    ZoneOccupancy,
)
from sinks.base import SinkError
from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.schema import SCHEMA_VERSION
from tests.sinks.event_bus.conftest import LABELS, T0, boxes, receive, result, track

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

COMMON = {"schema_version", "type", "camera", "seq", "time", "frame"}
DETECTIONS_FIELDS = COMMON | {"pts", "width", "height", "objects"}
TRACK_FIELDS = COMMON | {
    "track_id",
    "label",
    "label_id",
    "first_frame",
    "last_frame",
    "first_time",
    "last_time",
    "frames",
    "best_score",
    "best_box",
    "last_box",
}
STREAM_ENDED_FIELDS = COMMON | {"frames", "error"}


def test_events_have_every_field_and_gap_free_seq_across_types(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
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
        "detections",
        "detections",
        "track.started",
        "detections",
        "track.ended",
        "track.ended",
        "stream.ended",
    ]
    assert [b["seq"] for b in bodies] == list(range(7))
    assert [b["frame"] for b in bodies] == [0, 1, 1, 2, 2, 2, 2]
    fields = {
        "detections": DETECTIONS_FIELDS,
        "track.started": TRACK_FIELDS,
        "track.ended": TRACK_FIELDS | {"snapshot_path", "snapshot_frame_path", "snapshot_lost"},
        "stream.ended": STREAM_ENDED_FIELDS,
    }
    for body in bodies:
        assert set(body) == fields[body["type"]]
        assert body["schema_version"] == SCHEMA_VERSION and body["camera"] == "cam1"
        assert ISO_MS.match(body["time"]), body["time"]

    first = bodies[0]
    assert (first["pts"], first["width"], first["height"]) == (0.0, 64, 48)
    assert first["objects"] == [
        {
            "label": "person",
            "label_id": 1,
            "score": 0.9,
            "box": [1.0, 2.1, 30.0, 40.0],
            "track_id": None,
        },
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


def test_camera_status_changes_are_events_in_the_cameras_seq(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    sink.status(CameraStatus("gate", "connecting", T0))
    sink.write(result("gate", 0))
    sink.status(CameraStatus("gate", "reconnecting", T0 + 1, "timed out", 1, 0, 0, 0.5))
    sink.close()

    bodies = [body for _, body in receive(sub_socket, 3)]
    assert [(b["type"], b["seq"], b["frame"]) for b in bodies] == [
        ("camera.status", 0, None),
        ("detections", 1, 0),
        ("camera.status", 2, 0),
    ]
    assert {k: bodies[2][k] for k in ("state", "message", "frames", "retry_in_s")} == {
        "state": "reconnecting",
        "message": "timed out",
        "frames": 1,
        "retry_in_s": 0.5,
    }


def test_time_is_utc_iso_with_milliseconds(endpoint: str, sub_socket: zmq.Socket[bytes]) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    image = np.zeros((8, 8, 3), np.uint8)
    frame = Frame("cam1", 0, pts=0.0, wall_time=1795255200.123, image=image)
    sink.write(FrameResult(frame=frame, detections=Detections.empty()))
    sink.close()

    [(_, body)] = receive(sub_socket, 1)
    assert body["time"] == "2026-11-21T10:00:00.123Z"


def test_interleaved_cameras_keep_separate_seq(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
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


def test_held_track_ended_goes_out_between_frames_at_the_last_frame_in_the_cameras_seq(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    sink.write(result("cam1", 0, events=(TrackEvent("started", track("cam1", 1, 0, 0)),)))
    sink.write(result("cam1", 1))  # the track ended here; its snapshot is being written
    sink.held_events(HeldTrackEvents("cam1", (TrackEvent("ended", track("cam1", 1, 0, 0)),)))
    sink.end(StreamEnd("cam1", frames=2))
    sink.close()

    bodies = [body for _, body in receive(sub_socket, 5)]
    assert [(b["type"], b["seq"], b["frame"]) for b in bodies] == [
        ("detections", 0, 0),
        ("track.started", 1, 0),
        ("detections", 2, 1),
        ("track.ended", 3, 1),
        ("stream.ended", 4, 1),
    ]
    assert bodies[3]["time"] == bodies[2]["time"]  # the last frame's: no frame came since


def test_stream_that_ended_before_its_first_frame_sends_stream_ended_without_frame(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    sink.end(StreamEnd("cam1", frames=0, error="cannot open rtsp://cam1"))
    sink.close()

    [(topic, body)] = receive(sub_socket, 1)
    assert topic == "stream.ended.cam1"
    assert (body["seq"], body["frame"], body["frames"]) == (0, None, 0)
    assert body["error"] == "cannot open rtsp://cam1" and ISO_MS.match(body["time"])


def test_sink_without_subscribers_never_blocks(endpoint: str) -> None:
    sink = EventPublisher(endpoint, LABELS, send_hwm=10)
    empty = Detections.empty()
    for i in range(20_000):
        sink.write(result("cam1", i, empty))
    sink.close()

    # Nobody subscribed, so nothing was queued and nothing had to be dropped.
    assert (sink.sent, sink.dropped) == (20_000, 0)


def stalled_subscriber(context: zmq.Context, endpoint: str) -> zmq.Socket:
    """A subscriber to everything that never reads, with the smallest queue and buffer, so
    that it stalls after a few messages."""
    stalled = context.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.RCVBUF, 4096)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(endpoint)
    return stalled


def test_stalled_subscriber_makes_sink_drop_and_count_instead_of_blocking(
    endpoint: str,
) -> None:
    context = zmq.Context()
    stalled = stalled_subscriber(context, endpoint)
    sink = EventPublisher(endpoint, LABELS, send_hwm=10, wait_for_subscribers=1)
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


@pytest.mark.parametrize("isolate", [False, True], ids=["counted", "isolated"])
def test_a_stalled_subscriber_costs_a_reading_one_events_unless_subscribers_are_isolated(
    endpoint: str, isolate: bool
) -> None:
    context = zmq.Context()
    stalled = stalled_subscriber(context, endpoint)
    reader = context.socket(zmq.SUB)
    reader.setsockopt(zmq.SUBSCRIBE, b"")
    reader.connect(endpoint)
    total = 4000
    received: list[bytes] = []

    written = threading.Event()

    def read() -> None:
        while len(received) < total:
            if reader.poll(200):
                received.append(reader.recv_multipart()[1])
            elif written.is_set():
                return  # everything sent has had time to arrive

    sink = EventPublisher(
        endpoint, LABELS, send_hwm=500, wait_for_subscribers=2, isolate_subscribers=isolate
    )
    consumer = threading.Thread(target=read)
    consumer.start()
    twenty = boxes([[float(k), 2.0, 30.0, 40.0] for k in range(20)], [-1] * 20)  # ~2.4 kB/event
    try:
        for i in range(total):
            sink.write(result("cam1", i, twenty))
            if i % 100 == 99:  # a reader that keeps up: never more than its queue behind
                deadline = time.monotonic() + 10
                while len(received) < sink.sent - 400 and time.monotonic() < deadline:
                    time.sleep(0.001)
        written.set()
        consumer.join(timeout=60)
        stalled_seqs = []  # it reads at last: what it got before it stalled, and was queued
        while stalled.poll(500):
            stalled_seqs.append(json.loads(stalled.recv_multipart()[1])["seq"])
    finally:
        sink.close()
        stalled.close(linger=0)
        reader.close(linger=0)
        context.term()
    seqs = [json.loads(body)["seq"] for body in received]
    assert stalled_seqs == sorted(stalled_seqs) and len(stalled_seqs) < total
    if isolate:
        assert seqs == list(range(total))  # the reader got everything...
        assert sink.dropped == 0 and sink.sent == total  # ...and the sink counted nothing
        assert "drops seen by subscribers only" in sink.describe()
    else:
        assert sink.dropped > 0 and sink.sent + sink.dropped == total
        # an event goes to all subscribers or to none: the reader lost what the stalled one
        # could not take
        assert seqs == stalled_seqs and len(seqs) == sink.sent < total


def test_port_in_use_raises_sink_error_naming_endpoint(endpoint: str) -> None:
    first = EventPublisher(endpoint, LABELS)
    try:
        with pytest.raises(SinkError, match=re.escape(endpoint) + ".*another endpoint"):
            EventPublisher(endpoint, LABELS)
    finally:
        first.close()


def test_malformed_endpoint_raises_sink_error() -> None:
    with pytest.raises(SinkError, match="tcp://no-port"):
        EventPublisher("tcp://no-port", LABELS)


def test_wildcard_port_reports_bound_endpoint() -> None:
    sink = EventPublisher("tcp://127.0.0.1:*", LABELS)
    try:
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", sink.bound_endpoint)
    finally:
        sink.close()


def test_describe_reports_sent_and_dropped_events(endpoint: str) -> None:
    sink = EventPublisher(endpoint, LABELS)
    sink.write(result("cam1", 0))
    sink.close()
    assert sink.describe() == f"zmq {endpoint}: 1 events sent, 0 dropped"


def test_zone_and_line_events_follow_their_frame_s_track_events_in_seq(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    t = T0 + 1 / 25
    entered = ZoneEvent("entered", "cam1", "door", 5, 1, 1, t, 0, T0, dwell_s=0.04)
    crossed = LineCrossing("cam1", "gate", 5, 1, "in", "left", "right", 1, t)
    started = TrackEvent("started", track("cam1", 5, 0, 1))
    frame_1 = result("cam1", 1, boxes([[2, 3, 31, 41]], [5]), (started,))
    sink.write(replace(frame_1, analytics=(entered, crossed)))
    left = ZoneEvent("left", "cam1", "door", 5, 1, 1, t, 0, T0, dwell_s=0.04, at_stream_end=True)
    empty = ZoneOccupancy("cam1", "door", (), 1, t)
    sink.end(StreamEnd("cam1", frames=2, analytics=(left, empty)))
    sink.close()

    bodies = [body for _, body in receive(sub_socket, 6)]
    assert [(b["type"], b["seq"], b["frame"]) for b in bodies] == [
        ("detections", 0, 1),
        ("track.started", 1, 1),
        ("zone.entered", 2, 1),
        ("line.crossed", 3, 1),
        ("zone.left", 4, 1),
        ("zone.occupancy", 5, 1),
    ]
    assert bodies[4]["at_stream_end"] is True and bodies[5]["total"] == 0


class SetAfterOneLook(threading.Event):
    """A stop that comes while the sink waits: unset the first time it is looked at."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > 1


def test_a_stop_ends_the_wait_for_subscribers_at_once(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Ctrl-C used to wait out `wait_timeout_s` (up to an hour) before the run could stop.
    caplog.set_level("INFO", logger="sinks.event_bus.publisher")
    stop = SetAfterOneLook()
    sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1, wait_timeout_s=30, stop=stop)
    sink.close()
    assert stop.looks == 2
    assert "the run stopped while waiting for subscribers" in caplog.text
    assert "going on" not in caplog.text
