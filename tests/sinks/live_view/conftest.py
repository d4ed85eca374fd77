"""What the live view tests share: frames of a moving boxed square, a sink served on a free
port as a run without an `http:` section serves it, HTTP requests and MJPEG parts."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config.http import HttpConfig
from pipeline.config.server import LiveAuthConfig
from pipeline.metrics import RunMetrics
from pipeline.types import (
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    StreamInfo,
)
from pipeline.web.beside_run import start_run_server
from pipeline.web.server import HttpServer
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


class ServedView:
    """A `LiveViewSink` on the run's server as a run serves it: started from the live
    sink's own settings (`host`, `allowed_hosts`, `auth`...) when there is no `http:`
    section (`under` ""), or mounted at `under` ("/live") beside the metrics and the API.
    `close` closes the sink, then the server, as a run does."""

    def __init__(
        self,
        labels: LabelMap = LABELS,
        *,
        host: str = "127.0.0.1",
        allowed_hosts: Sequence[str] = (),
        auth: dict[str, str] | None = None,
        allow_unauthenticated: bool = False,
        under: str = "",
        max_fps: float = 0,
        max_viewers: int = 32,
        snapshot_dir: Path | None = None,
    ) -> None:
        config = HttpConfig(
            host=host,
            port=0,
            allowed_hosts=tuple(allowed_hosts),
            auth=None if auth is None else LiveAuthConfig.model_validate(auth),
            allow_unauthenticated=allow_unauthenticated,
            metrics=bool(under),
            api=bool(under),
        )
        self.sink = LiveViewSink(
            labels, max_fps=max_fps, max_viewers=max_viewers, snapshot_dir=snapshot_dir
        )
        self.server: HttpServer = start_run_server(
            config, RunMetrics(), None, [self.sink], sinks_at_root=not under
        )
        self.port = self.server.port
        self.prefix = under
        self.hub = self.sink.hub

    @property
    def url(self) -> str:
        assert self.sink.url is not None
        return self.sink.url

    def start(self, info: StreamInfo) -> None:
        self.sink.start(info)

    def write(self, result: FrameResult) -> None:
        self.sink.write(result)

    def status(self, status: CameraStatus) -> None:
        self.sink.status(status)

    def end(self, stream_end: StreamEnd) -> None:
        self.sink.end(stream_end)

    def close(self) -> None:
        self.sink.close()
        self.server.close()


@pytest.fixture
def live() -> Iterator[ServedView]:
    view = ServedView()
    yield view
    view.close()


def connect(view: ServedView, **options: Any) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", view.port, timeout=10, **options)


def get(view: ServedView, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Status, headers (looked up in any case) and body of GET `path` under the view."""
    conn = connect(view)
    try:
        conn.request("GET", view.prefix + path)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def read_parts(response: http.client.HTTPResponse, count: int) -> list[tuple[int, bytes]]:
    """`count` parts of a multipart/x-mixed-replace body: (X-Frame-Index, JPEG bytes)."""
    parts = []
    for _ in range(count):
        assert response.readline() == b"--frame\r\n"
        headers: dict[str, str] = {}
        while (line := response.readline()) != b"\r\n":
            name, value = line.decode().split(":", 1)
            headers[name.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = response.read(int(headers["content-length"]))
        assert response.read(2) == b"\r\n"
        parts.append((int(headers["x-frame-index"]), data))
    return parts
