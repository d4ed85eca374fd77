"""The hub counts each camera's frames, fps and status, and keeps only the newest frame: a
client that never reads neither blocks writes nor gets old frames."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from fractions import Fraction

import cv2
import numpy as np

from pipeline.types import (
    CameraStatus,
    LineCrossing,
    LineShape,
    SceneLayout,
    StreamEnd,
    StreamInfo,
    ZoneOccupancy,
    ZoneShape,
)
from sinks.draw import LINE_COLOR, ZONE_COLOR
from tests.sinks.live_view.conftest import HEIGHT, WIDTH, ServedView, get, moving_frame


def test_index_and_status_list_every_camera_with_state_fps_and_frames(live: ServedView) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.start(StreamInfo("gate", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.status(CameraStatus("door", "reconnecting", time.time(), message="connection refused"))
    for i in range(10):
        live.write(moving_frame("lobby", i))
        time.sleep(0.04)  # 0.4 s of frames: enough for an fps figure
    live.write(moving_frame("gate", 0))
    live.end(StreamEnd("gate", frames=1))

    status, headers, body = get(live, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"api/cameras" in body and b".mjpg" in body

    status, _, body = get(live, "/api/cameras")
    cameras = {c["id"]: c for c in json.loads(body)["cameras"]}
    assert status == 200 and set(cameras) == {"lobby", "gate", "door"}
    assert (cameras["lobby"]["status"], cameras["lobby"]["frames"]) == ("live", 10)
    assert cameras["lobby"]["fps"] > 0
    assert (cameras["gate"]["status"], cameras["gate"]["fps"]) == ("ended", 0.0)
    assert cameras["door"]["status"] == "reconnecting"
    assert cameras["door"]["error"] == "connection refused"


def test_a_client_that_never_reads_neither_blocks_writes_nor_gets_old_frames(
    live: ServedView,
) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.write(moving_frame("lobby", 0, noise=True))
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", live.port))
    stalled.sendall(b"GET /cameras/lobby.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    frames = 300  # noise frames: ~100 kB of JPEG each, far more than the socket buffers hold

    def write_the_rest() -> None:
        for i in range(1, frames):
            live.write(moving_frame("lobby", i, noise=True))

    writer = threading.Thread(target=write_the_rest)
    writer.start()
    writer.join(timeout=60)
    assert not writer.is_alive(), "write() blocked on a client that does not read"
    assert {c["id"]: c["frames"] for c in live.hub.cameras()} == {"lobby": frames}

    # once it reads, the stalled client skips what it missed and gets the newest frame
    received = b""
    stalled.settimeout(10)
    while f"X-Frame-Index: {frames - 1}\r\n".encode() not in received:
        chunk = stalled.recv(1 << 20)
        assert chunk, "stream ended before the newest frame arrived"
        received += chunk
    stalled.close()
    sent = received.count(b"--frame\r\n")
    assert sent < frames / 2, f"{sent} of {frames} frames sent to a client that did not read"


def test_status_lists_each_zones_occupancy_and_each_lines_crossings_and_frames_show_them(
    live: ServedView,
) -> None:
    layout = SceneLayout(
        (ZoneShape("door", ((5.0, 5.0), (100.0, 5.0), (100.0, 60.0), (5.0, 60.0))),),
        (LineShape("gate", (200.0, 10.0), (200.0, 200.0), "in", "out"),),
    )
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic", scene=layout))
    live.start(StreamInfo("plain", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    first = moving_frame("lobby", 0)
    live.write(replace(first, analytics=(ZoneOccupancy("lobby", "door", ((1, 2),), 0, 0.0),)))
    crossed = LineCrossing("lobby", "gate", 3, 1, "in", "left", "right", frame=1, time=0.0)
    live.write(replace(moving_frame("lobby", 1), analytics=(crossed,)))
    live.write(moving_frame("plain", 0))

    _, _, body = get(live, "/api/cameras")
    cameras = {c["id"]: c for c in json.loads(body)["cameras"]}
    assert cameras["lobby"]["zones"] == [{"id": "door", "inside": 2, "by_label": {"person": 2}}]
    assert cameras["lobby"]["lines"] == [{"id": "gate", "crossings": {"in": 1, "out": 0}}]
    assert (cameras["plain"]["zones"], cameras["plain"]["lines"]) == ([], [])
    _, _, page = get(live, "/")
    assert b"cam.zones" in page and b"cam.lines" in page  # the page shows them per tile

    _, _, jpeg = get(live, "/cameras/lobby.jpg")
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    image = bgr[..., ::-1]
    assert np.abs(image[30, 5].astype(int) - ZONE_COLOR).max() < 40  # the zone's left edge
    assert np.abs(image[100, 200].astype(int) - LINE_COLOR).max() < 40
