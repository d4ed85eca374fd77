"""The live view's HTTP server: the index page, the cameras' status, MJPEG streams, snapshots.

Endpoints (see docs/live-view.md):
    /                      index page: a live tile, status and fps per camera
    /api/cameras           JSON list of the cameras with their status, fps and frame count
    /cameras/<id>.mjpg     multipart/x-mixed-replace stream of JPEG frames
    /cameras/<id>.jpg      the newest frame as one JPEG
Each JPEG part carries `X-Frame-Index`, the index of the frame in its stream. Each client is
served by a thread of a `ThreadingHTTPServer`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from sinks.live_view.hub import LiveHub
from sinks.live_view.page import INDEX_HTML

log = logging.getLogger(__name__)

BOUNDARY = "frame"
SEND_TIMEOUT_S = 10.0
"""A client that accepts no data for this long is disconnected."""


class LiveViewServer(ThreadingHTTPServer):
    """Serves a `LiveHub`'s cameras; `max_fps` caps the frames a second sent to each stream
    (0: no cap)."""

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
    server: LiveViewServer
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
