"""The live view's HTTP server: the index page, the cameras' status, MJPEG streams, snapshots.

Endpoints (see docs/live-view.md):
    /                      index page: a live tile, status and fps per camera
    /api/cameras           JSON list of the cameras with their status, fps and frame count
    /cameras/<id>.mjpg     multipart/x-mixed-replace stream of JPEG frames
    /cameras/<id>.jpg      the newest frame as one JPEG
    /tracks                page of the recent ended tracks with their snapshots
    /api/tracks            JSON list of the recent ended tracks, newest first
    /snapshots/<camera>/<file>.jpg   a track's snapshot, from the snapshots sink's folder
Each JPEG part carries `X-Frame-Index`, the index of the frame in its stream. Each client is
served by a thread of a `ThreadingHTTPServer`; at most `max_viewers` connections are served
at once (more are answered 503), a request must arrive within `HEADER_TIMEOUT_S`, and every
request passes `Access` (Host, Origin, credentials) first.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.urls import mask_credentials
from sinks.live_view.access import DEFAULT_MAX_VIEWERS, Access, Refusal
from sinks.live_view.hub import LiveHub
from sinks.live_view.page import INDEX_HTML, TRACKS_HTML
from sinks.live_view.tracks import SNAPSHOT_URL, RecentTracks, snapshot_file

log = logging.getLogger(__name__)

BOUNDARY = "frame"
SEND_TIMEOUT_S = 10.0
"""A client that accepts no data for this long is disconnected."""
HEADER_TIMEOUT_S = 10.0
"""A client must send a whole request (line and headers) within this long of starting it,
or of its previous request on the connection; else it is disconnected."""
LISTEN_BACKLOG = 128
"""Connections the system queues for the server to accept (Python's default: 5)."""


@dataclass
class _Client:
    """A connection: refused (answered 503) or served, and until when its request may take."""

    refused: bool
    head_deadline: float | None = None


class LiveViewServer(ThreadingHTTPServer):
    """Serves a `LiveHub`'s cameras to at most `max_viewers` connections at once, to the
    requests `access` lets through; `max_fps` caps the frames a second sent to each stream
    (0: no cap). `tracks` lists the recent tracks; the snapshot files are served from
    `snapshot_dir` (None: none are).

    Beyond `max_viewers`, as many connections again are answered 503 (by a thread each,
    briefly); beyond those, connections are closed at once, so a flood costs no threads.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        hub: LiveHub,
        max_fps: float,
        *,
        access: Access,
        max_viewers: int = DEFAULT_MAX_VIEWERS,
        tracks: RecentTracks,
        snapshot_dir: Path | None = None,
    ) -> None:
        if max_viewers < 1:
            raise ValueError(f"live view max_viewers must be at least 1, got {max_viewers}")
        self.hub = hub
        self.tracks = tracks
        self.snapshot_dir = snapshot_dir
        self.access = access
        self.max_viewers = max_viewers
        self.min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self.index_html = INDEX_HTML
        self.connections: dict[socket.socket, _Client] = {}
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            refused = sum(c.refused for c in self.connections.values())
            served = len(self.connections) - refused
            client = None
            if served < self.max_viewers:
                client = _Client(refused=False)
            elif refused < self.max_viewers:
                client = _Client(refused=True)
            if client is not None:
                self.connections[request] = client
        if client is None:
            log.info("live view: %s: closed unanswered, too many connections", client_address[0])
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.pop(request, None)
        super().shutdown_request(request)

    def is_refused(self, conn: socket.socket) -> bool:
        with self.connections_lock:
            client = self.connections.get(conn)
            return client is None or client.refused

    def reading_request(self, conn: socket.socket, reading: bool) -> None:
        """Start (or stop) the clock on a connection's request."""
        deadline = time.monotonic() + HEADER_TIMEOUT_S if reading else None
        with self.connections_lock:
            client = self.connections.get(conn)
            if client is not None:
                client.head_deadline = deadline

    def service_actions(self) -> None:
        """Disconnect clients whose request is overdue (called by serve_forever's loop)."""
        now = time.monotonic()
        with self.connections_lock:
            overdue = [
                conn
                for conn, client in self.connections.items()
                if client.head_deadline is not None and client.head_deadline < now
            ]
            for conn in overdue:
                self.connections[conn].head_deadline = None
        for conn in overdue:
            log.debug("live view: a client sent no whole request within %.0f s", HEADER_TIMEOUT_S)
            _shutdown(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line per failed connection: a client's reset is routine, not a traceback."""
        exc = sys.exc_info()[1]
        who = client_address[0] if client_address else "a client"
        if isinstance(exc, OSError):
            log.info("live view: %s: connection reset or lost: %s", who, exc.strerror or exc)
        else:
            log.error("live view: serving %s failed: %s: %s", who, type(exc).__name__, exc)
            log.debug("live view: the failure in full", exc_info=exc)

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
            _shutdown(conn)


def _shutdown(conn: socket.socket) -> None:
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

    def finish(self) -> None:
        try:
            super().finish()
        except OSError as exc:  # the client went away while the response was flushed
            log.debug("live view: client gone: %s", exc)

    def handle_one_request(self) -> None:
        self.server.reading_request(self.connection, True)
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self.server.reading_request(self.connection, False)
        return ok

    def log_message(self, format: str, *args: Any) -> None:
        message = mask_credentials(format % args)  # a ?token= in the request line
        log.debug("live view: %s - %s", self.address_string(), message)

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            refusal = self._refusal()
            if refusal is not None:
                self.close_connection = True
                self._send(
                    refusal.status, "text/plain", f"{refusal.reason}\n".encode(), refusal.headers
                )
            elif path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.index_html)
            elif path == "/api/cameras":
                body = json.dumps({"cameras": self.server.hub.cameras()}).encode()
                self._send(HTTPStatus.OK, "application/json", body)
            elif path.startswith("/cameras/") and path.endswith(".mjpg"):
                self._stream(path[len("/cameras/") : -len(".mjpg")])
            elif path.startswith("/cameras/") and path.endswith(".jpg"):
                self._snapshot(path[len("/cameras/") : -len(".jpg")])
            elif path == "/tracks":
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", TRACKS_HTML)
            elif path == "/api/tracks":
                body = json.dumps({"tracks": self.server.tracks.rows()}).encode()
                self._send(HTTPStatus.OK, "application/json", body)
            elif path.startswith(SNAPSHOT_URL):
                self._track_snapshot(path[len(SNAPSHOT_URL) :])
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError) as exc:
            log.debug("live view: %s: client gone: %s", path, exc)
            self.close_connection = True

    def _refusal(self) -> Refusal | None:
        if self.server.is_refused(self.connection):
            return Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"too many viewers (at most {self.server.max_viewers}); try again later",
                {"Retry-After": "5"},
            )
        return self.server.access.check(self.headers, self.path)

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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

    def _track_snapshot(self, name: str) -> None:
        root = self.server.snapshot_dir
        found = None if root is None else snapshot_file(root, name)
        if found is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no such snapshot\n")
            return
        self._send(HTTPStatus.OK, "image/jpeg", found.read_bytes())

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
