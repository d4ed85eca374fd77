"""ZmqSink publishes complete, gap-free JSON events; subscribe() filters them exactly."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from pipeline.types import (
    CameraStatus,
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
from sinks.events import Event, TrackStartedEvent
from sinks.zmq_pub import (
    SCHEMA_VERSION,
    CurveKeyError,
    EventSubscriber,
    ZmqSink,
    check_z85_key,
    read_public_key,
    read_secret_key,
    stream_ended_event,
    subscribe,
)

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


def test_camera_status_changes_are_events_in_the_cameras_seq(
    endpoint: str, sub_socket: zmq.Socket[bytes]
) -> None:
    sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1)
    sink.status(CameraStatus("gate", "connecting", T0))
    sink.write(result("gate", 0))
    sink.status(CameraStatus("gate", "reconnecting", T0 + 1, "timed out", 1, 0, 0, 0.5))
    sink.close()

    bodies = [body for _, body in receive(sub_socket, 3)]
    assert [(b["type"], b["seq"], b["frame"]) for b in bodies] == [
        ("camera.status", 0, None), ("detections", 1, 0), ("camera.status", 2, 0),
    ]
    assert {k: bodies[2][k] for k in ("state", "message", "frames", "retry_in_s")} == {
        "state": "reconnecting", "message": "timed out", "frames": 1, "retry_in_s": 0.5,
    }


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

    sink = ZmqSink(
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
    received: list[Event] = []
    last_track = 99  # sent after everything else; the consumer stops there

    def consume() -> None:
        for event in subscribe(endpoint, cameras=["lob"], types=["track.started"], timeout_s=30):
            received.append(event)
            if isinstance(event, TrackStartedEvent) and event.track_id == last_track:
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
        "schema_version": 1, "type": "stream.ended", "camera": "cam1", "seq": 0,
        "time": "2026-11-21T10:00:00.123Z", "frame": None, "frames": 0, "error": None,
    }
    try:
        with EventSubscriber(endpoint) as subscriber:
            assert pub.poll(RECEIVE_TIMEOUT_MS), "subscription did not arrive"
            pub.recv()
            pub.send_multipart([b"detections.cam1", b"{not json"])
            pub.send_multipart([b"detections.cam1", b"{}", b"extra frame"])
            pub.send_multipart([b"detections.cam1", b"[1, 2]"])
            pub.send_multipart([b"detections.cam1", json.dumps({**good, "seq": -1}).encode()])
            missing = {k: v for k, v in good.items() if k != "frames"}
            pub.send_multipart([b"stream.ended.cam1", json.dumps(missing).encode()])
            pub.send_multipart([b"stream.ended.cam1", json.dumps(good).encode()])

            event = subscriber.receive(timeout_s=5.0)
            assert event is not None and event.model_dump(mode="json") == good
    finally:
        pub.close(linger=0)
        context.term()
    assert sum("skipped a message" in r.getMessage() for r in caplog.records) == 5


def test_subscribe_rejects_unknown_event_type_before_connecting() -> None:
    with pytest.raises(ValueError, match=r"'detection'.*track\.started"):
        subscribe("tcp://127.0.0.1:1", types=["detection"])
    with pytest.raises(ValueError, match="'detection'"):
        EventSubscriber("tcp://127.0.0.1:1", types=["detection"])


def test_subscribe_to_malformed_endpoint_raises_value_error() -> None:
    with pytest.raises(ValueError, match="'nonsense'"):
        next(subscribe("nonsense", timeout_s=0.1))


# ---------------------------------------------------------------------------- gaps


def test_subscriber_counts_events_lost_in_transit_per_camera(endpoint: str) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.bind(endpoint)

    def send(camera: str, seq: int) -> None:
        event = stream_ended_event(StreamEnd(camera, frames=0), seq, None, T0)
        pub.send_multipart([f"stream.ended.{camera}".encode(), event.model_dump_json().encode()])

    try:
        with EventSubscriber(endpoint) as everything, EventSubscriber(
            endpoint, types=["stream.ended"]
        ) as filtered:
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


def test_describe_reports_sent_and_dropped_events(endpoint: str) -> None:
    sink = ZmqSink(endpoint, LABELS)
    sink.write(result("cam1", 0))
    sink.close()
    assert sink.describe() == f"zmq {endpoint}: 1 events sent, 0 dropped"


# ---------------------------------------------------------------------------- CURVE


@pytest.fixture
def curve_keys(tmp_path: Path) -> dict[str, Path]:
    """Certificate files: the server, an authorized client and an intruder."""
    for name in ("authorized", "server", "alice", "mallory"):
        (tmp_path / name).mkdir()
    authorized = tmp_path / "authorized"
    server_pub, server_secret = zmq.auth.create_certificates(tmp_path / "server", "server")
    alice_pub, alice_secret = zmq.auth.create_certificates(tmp_path / "alice", "alice")
    (authorized / "alice.key").write_bytes(Path(alice_pub).read_bytes())
    _, mallory_secret = zmq.auth.create_certificates(tmp_path / "mallory", "mallory")
    return {
        "server": Path(server_secret),
        "server_public": Path(server_pub),
        "alice": Path(alice_secret),
        "mallory": Path(mallory_secret),
        "authorized": authorized,
    }


def _keys(path: Path) -> tuple[bytes, bytes]:
    return read_public_key(path), read_secret_key(path)


def test_curve_subscriber_needs_the_server_key_and_an_authorized_client_key(
    endpoint: str, curve_keys: dict[str, Path]
) -> None:
    server_public = read_public_key(curve_keys["server_public"])
    mallory_public = read_public_key(curve_keys["mallory"])
    context = zmq.Context()
    plain = context.socket(zmq.SUB)  # no CURVE at all
    plain.setsockopt(zmq.SUBSCRIBE, b"")
    plain.connect(endpoint)
    outsiders = [
        # right server key, but a client key the server does not know
        EventSubscriber(endpoint, server_key=server_public, client_keys=_keys(curve_keys["mallory"])),
        # a known client key, but the wrong server key (a man in the middle's)
        EventSubscriber(endpoint, server_key=mallory_public, client_keys=_keys(curve_keys["alice"])),
        # right server key, a fresh key pair
        EventSubscriber(endpoint, server_key=server_public),
    ]
    alice = EventSubscriber(endpoint, server_key=server_public, client_keys=_keys(curve_keys["alice"]))
    try:
        sink = ZmqSink(
            endpoint,
            LABELS,
            wait_for_subscribers=1,
            wait_timeout_s=20,
            curve_secret_key=read_secret_key(curve_keys["server"]),
            curve_authorized_clients=curve_keys["authorized"],
        )
        assert sink.curve_public_key == server_public.decode()
        for i in range(50):
            sink.write(result("cam1", i, boxes([[1, 1, 5, 5]], [-1])))
        sink.end(StreamEnd("cam1", frames=50))
        sink.close()

        got = [alice.receive(timeout_s=5.0) for _ in range(51)]
        assert [e.seq if e is not None else None for e in got] == list(range(51))
        assert alice.missed == {}
        for outsider in outsiders:
            assert outsider.receive(timeout_s=0.5) is None
        assert plain.poll(500) == 0
    finally:
        for subscriber in (*outsiders, alice):
            subscriber.close()
        plain.close(linger=0)
        context.term()


def test_curve_without_authorized_clients_admits_anyone_with_the_server_key(
    endpoint: str, curve_keys: dict[str, Path]
) -> None:
    server_public = read_public_key(curve_keys["server_public"])
    with EventSubscriber(endpoint, server_key=server_public) as anyone:
        sink = ZmqSink(
            endpoint,
            LABELS,
            wait_for_subscribers=1,
            wait_timeout_s=20,
            curve_secret_key=read_secret_key(curve_keys["server"]),
        )
        sink.write(result("cam1", 0))
        sink.close()
        event = anyone.receive(timeout_s=5.0)
    assert event is not None and (event.type, event.seq) == ("detections", 0)


def test_key_files_and_z85_strings_are_read_and_bad_ones_named(
    curve_keys: dict[str, Path], tmp_path: Path
) -> None:
    public, secret = zmq.auth.load_certificate(curve_keys["server"])
    assert read_secret_key(curve_keys["server"]) == secret
    assert read_public_key(curve_keys["server_public"]) == public
    assert read_public_key(public.decode()) == public
    with pytest.raises(CurveKeyError, match=r"only a public key.*key_secret"):
        read_secret_key(curve_keys["server_public"])
    with pytest.raises(CurveKeyError, match=r"key file not found: .*nope\.key"):
        read_public_key(tmp_path / "nope.key")
    with pytest.raises(CurveKeyError, match="not a 40-character Z85"):
        check_z85_key("tooshort", "curve.secret_key")
    with pytest.raises(SinkError, match=r"authorized_clients .* holds no client"):
        ZmqSink("tcp://127.0.0.1:*", LABELS, curve_secret_key=secret, curve_authorized_clients=tmp_path)


# ---------------------------------------------------------------------------- subscribe command


def _publish_in_background(endpoint: str, **sink_args: object) -> threading.Thread:
    """A sink that waits for one subscriber, then sends frames with a person and a car."""

    def publish() -> None:
        sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1, wait_timeout_s=20, **sink_args)  # type: ignore[arg-type]
        person_and_car = Detections(
            xyxy=np.array([[1, 2, 30, 40], [50, 2, 90, 40]], np.float32),
            score=np.array([0.9, 0.75], np.float32),
            label=np.array([1, 2], np.int64),
            track_id=np.array([4, -1], np.int64),
        )
        for i in range(5):
            sink.write(result("cam1", i, person_and_car if i % 2 else None))
        sink.end(StreamEnd("cam1", frames=5))
        sink.close()

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


def test_subscribe_command_pretty_prints_only_the_asked_label(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    publisher = _publish_in_background(endpoint)
    code = main(
        ["subscribe", "--endpoint", endpoint, "--label", "car", "--format", "pretty",
         "--count", "3", "--timeout", "20"]
    )
    publisher.join(30)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(" ", 1)[1] for line in lines] == [
        "cam1 #1 frame 1: 1 object: car 0.75 [50,2,90,40]",
        "cam1 #3 frame 3: 1 object: car 0.75 [50,2,90,40]",
        "cam1 #5 frame 4: stream ended after 5 frames",
    ]


def test_subscribe_command_prints_json_lines_through_curve_with_key_files(
    endpoint: str, curve_keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    publisher = _publish_in_background(
        endpoint,
        curve_secret_key=read_secret_key(curve_keys["server"]),
        curve_authorized_clients=curve_keys["authorized"],
    )
    code = main(
        ["subscribe", "--endpoint", endpoint, "--format", "json", "--count", "6",
         "--timeout", "20", "--server-key", str(curve_keys["server_public"]),
         "--client-key", str(curve_keys["alice"])]
    )
    publisher.join(30)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [(e["type"], e["seq"]) for e in events] == [("detections", i) for i in range(5)] + [
        ("stream.ended", 5)
    ]


def test_keygen_command_writes_a_key_pair_the_sink_and_subscriber_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    code = main(["keygen", str(tmp_path / "keys")])
    out = capsys.readouterr().out
    assert code == 0
    public, secret = zmq.auth.load_certificate(tmp_path / "keys" / "server.key_secret")
    assert secret is not None and public.decode() in out
    code = main(["keygen", str(tmp_path / "keys")])
    err = capsys.readouterr().err
    assert code == 2 and "exists" in err


def test_consumer_example_counts_people_and_reports_lost_events(endpoint: str) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    consumer = subprocess.Popen(
        [sys.executable, str(root / "examples" / "consume_events.py"), "--endpoint", endpoint,
         "--camera", "cam1", "--idle-timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        sink = ZmqSink(endpoint, LABELS, wait_for_subscribers=1, wait_timeout_s=30)
        sink.write(result("cam1", 0, events=(TrackEvent("started", track("cam1", 1, 0, 0)),)))
        sink.write(result("cam1", 1, events=(TrackEvent("started", track("cam1", 2, 1, 1)),)))
        sink._cameras["cam1"].next_seq += 3  # as if three events had been dropped
        sink.end(StreamEnd("cam1", 2, (TrackEvent("ended", track("cam1", 1, 0, 1)),)))
        sink.close()
        out, err = consumer.communicate(timeout=60)
    finally:
        consumer.kill()
    lines = out.splitlines()
    assert consumer.returncode == 0, err
    assert [line.split(" ", 1)[1] for line in lines[:2]] == [
        "cam1: person #1 appeared", "cam1: person #2 appeared",
    ]
    assert "warning: cam1: 3 events lost" in lines
    assert lines[-1] == "cam1: 2 person(s)"
