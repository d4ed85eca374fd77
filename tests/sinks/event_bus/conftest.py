"""What the event bus tests share: endpoints, CURVE key files, frames and track summaries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from pipeline.types import Detections, Frame, FrameResult, LabelMap, TrackEvent, TrackSummary
from tests.conftest import free_port

LABELS = LabelMap(("background", "person", "car"))
T0 = 1_795_000_000.0
RECEIVE_TIMEOUT_MS = 5000
IMAGE = np.zeros((48, 64, 3), np.uint8)


@pytest.fixture
def endpoint() -> str:
    """A tcp endpoint on a port that was free a moment ago."""
    return f"tcp://127.0.0.1:{free_port()}"


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


def receive(sock: zmq.Socket[bytes], count: int) -> list[tuple[str, dict]]:
    messages: list[tuple[str, dict]] = []
    for _ in range(count):
        assert sock.poll(RECEIVE_TIMEOUT_MS), f"only {len(messages)} of {count} messages arrived"
        topic, body = sock.recv_multipart()
        messages.append((topic.decode(), json.loads(body)))
    return messages


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
        camera_id=camera,
        track_id=track_id,
        label=1,
        first_frame=first,
        last_frame=last,
        first_time=T0 + first / 25,
        last_time=T0 + last / 25,
        frames=last - first + 1,
        best_score=0.912345,
        best_box=(1.04, 2.0, 30.26, 40.0),
        last_box=(2.0, 3.0, 31.0, 41.0),
    )
