"""Live view: each camera's annotated frames as MJPEG over HTTP, and an index page.

`LiveViewSink` keeps only the newest frame of each camera; it never encodes or sends anything
itself, so `write` costs the same with zero or a hundred browsers watching. HTTP clients
are served by threads of a `ThreadingHTTPServer`: each one waits for a frame newer than the
one it sent last, encodes it to JPEG (once per frame, shared by all clients) and sends it.
A slow client simply skips frames; it never slows the pipeline.

Endpoints (see docs/live-view.md):
    /                      index page: a live tile, status and fps per camera
    /api/cameras           JSON list of the cameras with their status, fps and frame count
    /cameras/<id>.mjpg     multipart/x-mixed-replace stream of JPEG frames
    /cameras/<id>.jpg      the newest frame as one JPEG
Each JPEG part carries `X-Frame-Index`, the index of the frame in its stream.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from pipeline.types import CameraStatus, FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import Sink, SinkError
from sinks.draw import annotate
from sinks.live_view_page import INDEX_HTML

log = logging.getLogger(__name__)

BOUNDARY = "frame"
FPS_WINDOW_S = 2.0
"""The fps shown is measured over the frames of the last this-many seconds."""
SEND_TIMEOUT_S = 10.0
"""A client that accepts no data for this long is disconnected."""

Status = Literal["connecting", "live", "reconnecting", "ended", "failed"]
"""What the index page shows: a reader's state, "live" once frames flow, then how it ended."""


@dataclass(frozen=True)
class Jpeg:
    """One encoded frame, as sent to clients."""

    seq: int
    frame_index: int
    data: bytes


@dataclass
class _Feed:
    """The newest frame of one camera and what the index page shows about it.

    Fields are guarded by the hub's condition; `encode_lock` makes one client encode a
    frame while the others wait for the result instead of encoding it again.
    """

    camera_id: str
    width: int
    height: int
    status: Status = "live"
    error: str | None = None
    frames: int = 0
    seq: int = 0
    latest: FrameResult | None = None
    jpeg: Jpeg | None = None
    times: deque[float] = field(default_factory=deque)
    first_time: float | None = None
    encode_lock: threading.Lock = field(default_factory=threading.Lock)

    def fps(self, now: float) -> float:
        """Frames per second over the last `FPS_WINDOW_S` (less just after the start).

        Counting frames over the window, rather than dividing by the gaps between them,
        keeps the figure steady when frames arrive in batches.
        """
        if self.first_time is None:
            return 0.0
        span = min(FPS_WINDOW_S, now - self.first_time)
        if span < 0.25:
            return 0.0
        return sum(1 for t in self.times if now - t <= span) / span

    def info(self, now: float) -> dict[str, Any]:
        return {
            "id": self.camera_id,
            "status": self.status,
            "error": self.error,
            "frames": self.frames,
            "fps": round(self.fps(now), 1) if self.status == "live" else 0.0,
            "width": self.width,
            "height": self.height,
        }


class LiveHub:
    """The cameras' newest frames, shared by the sink (writer) and the HTTP handlers."""

    def __init__(self, labels: LabelMap, *, jpeg_quality: int = 80) -> None:
        self._labels = labels
        self._quality = jpeg_quality
        self._feeds: dict[str, _Feed] = {}
        self._changed = threading.Condition()
        self.closed = False

    # ---- writer side (the sink's thread)

    def start(self, info: StreamInfo) -> None:
        with self._changed:
            feed = self._feeds.get(info.camera_id)
            if feed is None:
                self._feeds[info.camera_id] = _Feed(info.camera_id, info.width, info.height)
            else:
                feed.status, feed.error = "live", None
                feed.width, feed.height = info.width, info.height
            self._changed.notify_all()

    def publish(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        now = time.monotonic()
        with self._changed:
            feed = self._feeds.get(camera)
            if feed is None:
                feed = self._feeds[camera] = _Feed(camera, result.frame.width, result.frame.height)
            feed.latest = result
            feed.status, feed.error = "live", None
            feed.width, feed.height = result.frame.width, result.frame.height
            feed.seq += 1
            feed.frames += 1
            feed.times.append(now)
            if feed.first_time is None:
                feed.first_time = now
            while feed.times and now - feed.times[0] > FPS_WINDOW_S:
                feed.times.popleft()
            self._changed.notify_all()

    def status(self, status: CameraStatus) -> None:
        """A reader's state change: shown until frames (or the end) say otherwise."""
        shown: dict[str, Status] = {
            "connecting": "connecting",
            "reconnecting": "reconnecting",
            "failed": "failed",
        }
        state = shown.get(status.state)
        if state is None:  # "streaming" shows once frames arrive; "stopped" with the end
            return
        with self._changed:
            feed = self._feeds.get(status.camera_id)
            if feed is None:
                feed = self._feeds[status.camera_id] = _Feed(status.camera_id, 0, 0)
            feed.status, feed.error = state, status.message
            self._changed.notify_all()

    def end(self, stream_end: StreamEnd) -> None:
        with self._changed:
            feed = self._feeds.get(stream_end.camera_id)
            if feed is not None:
                feed.status = "failed" if stream_end.error else "ended"
                feed.error = stream_end.error
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    # ---- reader side (HTTP handler threads)

    def cameras(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._changed:
            return [feed.info(now) for feed in self._feeds.values()]

    def has(self, camera: str) -> bool:
        with self._changed:
            return camera in self._feeds

    def wait_newer(self, camera: str, seen_seq: int, timeout_s: float) -> Jpeg | None:
        """The newest frame of `camera` as JPEG once it is newer than `seen_seq`.

        None when no newer frame came within `timeout_s`, or the hub closed.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                feed = self._feeds.get(camera)
                if self.closed or feed is None:
                    return None
                if feed.latest is not None and feed.seq > seen_seq:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
        return self._encoded(feed)

    def _encoded(self, feed: _Feed) -> Jpeg:
        with feed.encode_lock:
            with self._changed:
                seq, result, cached = feed.seq, feed.latest, feed.jpeg
            if cached is not None and cached.seq == seq:
                return cached
            assert result is not None
            image = annotate(result.frame.image, result.detections, self._labels)
            ok, buffer = cv2.imencode(
                ".jpg",
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, self._quality],
            )
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for camera {feed.camera_id!r}")
            jpeg = Jpeg(seq, result.frame.index, np.asarray(buffer).tobytes())
            with self._changed:
                feed.jpeg = jpeg
            return jpeg


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], hub: LiveHub, max_fps: float
    ) -> None:
        self.hub = hub
        self.min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self.index_html = INDEX_HTML
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # SO_REUSEADDR lets a new run listen while old connections linger in TIME_WAIT; on
        # Linux it never lets two servers listen on one port, so "port in use" still fails.
        # (The stdlib's server_bind would also look up the host's FQDN: skipped.)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), int(port)

    def disconnect_all(self) -> None:
        """Unblock handlers stuck sending to clients that do not read."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed by the client
                log.debug("live view: closing a client connection: %s", exc)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(SEND_TIMEOUT_S)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError as exc:  # the client went away while the response was flushed
            log.debug("live view: client gone: %s", exc)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("live view: %s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.index_html)
            elif path == "/api/cameras":
                body = json.dumps({"cameras": self.server.hub.cameras()}).encode()
                self._send(HTTPStatus.OK, "application/json", body)
            elif path.startswith("/cameras/") and path.endswith(".mjpg"):
                self._stream(path[len("/cameras/") : -len(".mjpg")])
            elif path.startswith("/cameras/") and path.endswith(".jpg"):
                self._snapshot(path[len("/cameras/") : -len(".jpg")])
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError) as exc:
            log.debug("live view: %s: client gone: %s", path, exc)
            self.close_connection = True

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _snapshot(self, camera: str) -> None:
        hub = self.server.hub
        if not hub.has(camera):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", f"no camera {camera!r}\n".encode())
            return
        jpeg = hub.wait_newer(camera, 0, timeout_s=5.0)
        if jpeg is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no frame yet\n")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("X-Frame-Index", str(jpeg.frame_index))
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(jpeg.data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(jpeg.data)

    def _stream(self, camera: str) -> None:
        hub = self.server.hub
        if not hub.has(camera):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", f"no camera {camera!r}\n".encode())
            return
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        seen = 0
        while not hub.closed:
            jpeg = hub.wait_newer(camera, seen, timeout_s=1.0)
            if jpeg is None:
                continue
            sent_at = time.monotonic()
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(jpeg.data)}\r\nX-Frame-Index: {jpeg.frame_index}\r\n\r\n"
            ).encode()
            self.wfile.write(head + jpeg.data + b"\r\n")
            self.wfile.flush()
            seen = jpeg.seq
            pause = self.server.min_interval_s - (time.monotonic() - sent_at)
            if pause > 0:
                time.sleep(pause)


class LiveViewSink(Sink):
    """Serves each camera's annotated frames at http://host:port/ while the run lasts.

    `max_fps` caps the frames sent per second to each client (0: no cap); `jpeg_quality`
    is OpenCV's JPEG quality (1-100). Port 0 picks a free port (see `url`).
    """

    name = "live"
    wants_every_frame = True

    def __init__(
        self,
        labels: LabelMap,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        jpeg_quality: int = 80,
        max_fps: float = 15.0,
    ) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"LiveViewSink jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.hub = LiveHub(labels, jpeg_quality=jpeg_quality)
        try:
            self._server = _Server((host, port), self.hub, max_fps)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                hint = "another program (or pipeline) uses that port; set another `port`"
            else:
                hint = "check the `host` (an address of this machine, e.g. 127.0.0.1)"
            raise SinkError(
                f"live sink: cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}"
            ) from exc
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown_host}:{self._server.server_port}/"
        """Address of the index page, with the port actually bound."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="live-http",
            daemon=True,
        )
        self._thread.start()
        self._closed = False
        log.warning("live view at %s", self.url)

    def describe(self) -> str:
        """One line for the run summary."""
        return f"live view {self.url} (closed with the run)"

    def start(self, info: StreamInfo) -> None:
        self.hub.start(info)

    def write(self, result: FrameResult) -> None:
        self.hub.publish(result)

    def status(self, status: CameraStatus) -> None:
        self.hub.status(status)

    def end(self, stream_end: StreamEnd) -> None:
        self.hub.end(stream_end)

    def close(self) -> None:
        """Stop serving: open streams end, the port is released. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.hub.close()
        self._server.shutdown()
        self._server.disconnect_all()
        self._server.server_close()
        self._thread.join()
