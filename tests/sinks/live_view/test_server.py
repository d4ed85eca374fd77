"""The HTTP server sends annotated JPEG frames in order as MJPEG, the newest frame as a
snapshot, and 404 for unknown cameras and paths."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from pipeline.types import StreamInfo
from tests.sinks.live_view.conftest import (
    HEIGHT,
    WIDTH,
    ServedView,
    connect,
    get,
    moving_frame,
    read_parts,
)


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_mjpeg_stream_sends_annotated_jpeg_frames_in_order(live: ServedView) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.write(moving_frame("lobby", 0))
    conn = connect(live)
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


def test_snapshot_is_the_newest_frame_and_unknown_cameras_are_404(live: ServedView) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    for i in range(5):
        live.write(moving_frame("lobby", i))
    status, headers, body = get(live, "/cameras/lobby.jpg")
    assert (status, headers["X-Frame-Index"]) == (200, "4")
    decode_jpeg(body)
    assert get(live, "/cameras/nope.mjpg")[0] == 404
    assert get(live, "/cameras/nope.jpg")[0] == 404
    assert get(live, "/elsewhere")[0] == 404
