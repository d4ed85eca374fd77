"""What the live view tests share: frames of a moving boxed square, a sink on a free port,
HTTP requests and MJPEG parts."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import numpy as np
import pytest

from pipeline.types import Detections, Frame, FrameResult, LabelMap
from sinks.live_view.sink import LiveViewSink

LABELS = LabelMap(("background", "person"))
WIDTH, HEIGHT = 320, 240


def moving_frame(camera: str, index: int, noise: bool = False) -> FrameResult:
    """A dark frame with a white square moving 4 px per frame, boxed as track #3."""
    if noise:
        image = np.random.default_rng(index).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    else:
        image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    x = 10 + (index * 4) % (WIDTH - 80)
    image[80:140, x : x + 50] = 255
    dets = Detections(
        xyxy=np.array([[x - 2, 78, x + 52, 142]], np.float32),
        score=np.array([0.9], np.float32),
        label=np.array([1], np.int64),
        track_id=np.array([3], np.int64),
    )
    frame = Frame(camera, index, pts=index / 25, wall_time=time.time(), image=image)
    return FrameResult(frame, dets)


@pytest.fixture
def live() -> Iterator[LiveViewSink]:
    sink = LiveViewSink(LABELS, port=0, max_fps=0)
    yield sink
    sink.close()


def get(sink: LiveViewSink, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", int(sink.url.rsplit(":", 1)[1].strip("/")), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def read_parts(response: http.client.HTTPResponse, count: int) -> list[tuple[int, bytes]]:
    """`count` parts of a multipart/x-mixed-replace body: (X-Frame-Index, JPEG bytes)."""
    parts = []
    for _ in range(count):
        assert response.fp.readline() == b"--frame\r\n"
        headers: dict[str, str] = {}
        while (line := response.fp.readline()) != b"\r\n":
            name, value = line.decode().split(":", 1)
            headers[name.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = response.fp.read(int(headers["content-length"]))
        assert response.fp.read(2) == b"\r\n"
        parts.append((int(headers["x-frame-index"]), data))
    return parts
