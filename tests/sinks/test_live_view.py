"""LiveViewSink: index page, JSON status, MJPEG streams; slow clients; a real headless browser."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.types import (
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    StreamInfo,
)
from sinks.base import SinkError
from sinks.live_view import LiveViewSink

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


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_index_and_status_list_every_camera_with_state_fps_and_frames(live: LiveViewSink) -> None:
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


def test_mjpeg_stream_sends_annotated_jpeg_frames_in_order(live: LiveViewSink) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.write(moving_frame("lobby", 0))
    conn = http.client.HTTPConnection("127.0.0.1", int(live.url.rsplit(":", 1)[1].strip("/")), timeout=10)
    conn.request("GET", "/cameras/lobby.mjpg")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
    parts = read_parts(response, 1)
    for i in range(1, 4):
        live.write(moving_frame("lobby", i))
        parts += read_parts(response, 1)
    conn.close()

    assert [index for index, _ in parts] == [0, 1, 2, 3]
    images = [decode_jpeg(data) for _, data in parts]
    assert all(im.shape == (HEIGHT, WIDTH, 3) for im in images)
    # the square moves right between frames...
    centers = [float(np.flatnonzero(im[100:120].min(axis=(0, 2)) > 200).mean()) for im in images]
    assert centers == sorted(centers) and centers[-1] - centers[0] >= 10
    # ...and the box of track #3 is drawn: coloured pixels around the square, none in the input
    assert (np.ptp(images[0][76:80, 20:50].astype(int), axis=2) > 60).any()


def test_snapshot_is_the_newest_frame_and_unknown_cameras_are_404(live: LiveViewSink) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    for i in range(5):
        live.write(moving_frame("lobby", i))
    status, headers, body = get(live, "/cameras/lobby.jpg")
    assert (status, headers["X-Frame-Index"]) == (200, "4")
    decode_jpeg(body)
    assert get(live, "/cameras/nope.mjpg")[0] == 404
    assert get(live, "/cameras/nope.jpg")[0] == 404
    assert get(live, "/elsewhere")[0] == 404


def test_a_client_that_never_reads_neither_blocks_writes_nor_gets_old_frames(
    live: LiveViewSink,
) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.write(moving_frame("lobby", 0, noise=True))
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", int(live.url.rsplit(":", 1)[1].strip("/"))))
    stalled.sendall(b"GET /cameras/lobby.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    frames = 300  # noise frames: ~100 kB of JPEG each, far more than the socket buffers hold

    writer = threading.Thread(
        target=lambda: [live.write(moving_frame("lobby", i, noise=True)) for i in range(1, frames)]
    )
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


def test_close_ends_open_streams_and_frees_the_port(live: LiveViewSink) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.write(moving_frame("lobby", 0))
    port = int(live.url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/cameras/lobby.mjpg")
    response = conn.getresponse()
    read_parts(response, 1)

    live.close()
    assert response.fp.read() == b""  # the server ended the stream
    conn.close()
    again = LiveViewSink(LABELS, port=port)
    again.close()


def test_port_in_use_raises_sink_error_naming_the_address(live: LiveViewSink) -> None:
    port = int(live.url.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(SinkError, match=rf"cannot listen on 127\.0\.0\.1:{port}.*set another `port`"):
        LiveViewSink(LABELS, port=port)


# ---------------------------------------------------------------------------- in a browser


def _chrome(tmp_path: Path) -> Any:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install -y chromium chromium-driver; .ci/run does it)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1100,700",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.page_load_strategy = "eager"  # MJPEG images never finish loading
    service = webdriver.ChromeService(executable_path=chromedriver)
    return webdriver.Chrome(options=options, service=service)


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_browser_shows_a_live_moving_tile_per_camera(live: LiveViewSink, tmp_path: Path) -> None:
    driver = _chrome(tmp_path)
    stop = threading.Event()

    def feed() -> None:
        for camera in ("lobby", "gate"):
            live.start(StreamInfo(camera, WIDTH, HEIGHT, Fraction(25), "synthetic"))
        for i in range(25 * 60):  # at most a minute
            if stop.is_set():
                return
            live.write(moving_frame("lobby", i))
            live.write(moving_frame("gate", 2 * i))
            time.sleep(0.04)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        driver.get(live.url)
        _wait(
            lambda: driver.execute_script(
                "const imgs = [...document.querySelectorAll('img.feed')];"
                "return imgs.length === 2 && imgs.every(i => i.naturalWidth === 320);"
            ),
            30,
            "two tiles showing 320-pixel-wide frames",
        )
        tiles = _wait(
            lambda: driver.execute_script(
                "const t = [...document.querySelectorAll('section.tile')].map(s => [s.dataset.camera,"
                " s.querySelector('.status').textContent, s.querySelector('.fps').textContent]);"
                "return t.every(x => x[1] === 'live' && parseFloat(x[2]) > 0) ? t : null;"
            ),
            15,
            "both tiles live with an fps",
        )
        assert sorted(t[0] for t in tiles) == ["gate", "lobby"]

        img = driver.find_element("css selector", "section.tile[data-camera=lobby] img.feed")
        first = cv2.imdecode(np.frombuffer(img.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
        def changed() -> tuple[np.ndarray] | None:
            shot = cv2.imdecode(np.frombuffer(img.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
            return None if np.array_equal(shot, first) else (shot,)

        (later,) = _wait(changed, 10, "the lobby tile to change")
        assert first.shape == later.shape and first.shape[0] > 100
        # the white square moved: its columns differ between the two screenshots
        def square_columns(image: np.ndarray) -> set[int]:
            rows = image[int(image.shape[0] * 0.38) : int(image.shape[0] * 0.55)]  # y 90..130
            return set(np.flatnonzero(rows.min(axis=(0, 2)) > 200).tolist())

        assert square_columns(first) and square_columns(first) != square_columns(later)
        (tmp_path / "live-view.png").write_bytes(driver.get_screenshot_as_png())
    finally:
        stop.set()
        driver.quit()
        feeder.join(timeout=10)
