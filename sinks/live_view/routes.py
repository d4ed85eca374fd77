"""The live view's HTTP routes, served by the run's server (mounted where it chooses).

Endpoints (see docs/live-view.md), relative to where they are mounted:
    /                      index page: a live tile, status and fps per camera
    /api/cameras           JSON list of the cameras with their status, fps and frame count
    /cameras/<id>.mjpg     multipart/x-mixed-replace stream of JPEG frames
    /cameras/<id>.jpg      the newest frame as one JPEG
    /tracks                page of the recent ended tracks with their snapshots
    /api/tracks            JSON list of the recent ended tracks, newest first
    /snapshots/<camera>/<file>.jpg   a track's snapshot, from the snapshots sink's folder
Each JPEG part carries `X-Frame-Index`, the index of the frame in its stream. At most
`max_viewers` streams are served at once (more are answered 503). Who may ask (Host, Origin,
credentials) and how long a client may take are the server's to enforce.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sinks.live_view.hub import LiveHub
from sinks.live_view.page import INDEX_HTML, TRACKS_HTML
from sinks.live_view.tracks import SNAPSHOT_URL, RecentTracks, snapshot_file

BOUNDARY = "frame"
POLL_S = 1.0
"""A stream looks whether the run has ended at least this often."""
SNAPSHOT_WAIT_S = 5.0
"""How long /cameras/<id>.jpg waits for a camera's first frame."""
_NO_STORE = {"Cache-Control": "no-store"}


class Viewers:
    """The streams open now, at most `limit` (counted in the server's event loop)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"live view max_viewers must be at least 1, got {limit}")
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        """A place for one more stream, if there is one."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


class _Mjpeg(StreamingResponse):
    """A stream that gives its viewer's place back however it ends (finished, client gone,
    cancelled)."""

    def __init__(self, parts: AsyncIterator[bytes], viewers: Viewers) -> None:
        super().__init__(
            parts,
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={**_NO_STORE, "Connection": "close"},
        )
        self._viewers = viewers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._viewers.give_back()


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(f"{text}\n", status, {**_NO_STORE, **(headers or {})}, "text/plain")


def _json(payload: object) -> Response:
    return Response(json.dumps(payload).encode(), 200, _NO_STORE, "application/json")


def _html(page: bytes) -> Response:
    return Response(page, 200, _NO_STORE, "text/html; charset=utf-8")


class LiveRoutes:
    """The endpoints over `hub` and `tracks`; `max_fps` caps the frames a second sent to
    each stream (0: no cap); snapshot files come from `snapshot_dir` (None: none do)."""

    def __init__(
        self,
        hub: LiveHub,
        tracks: RecentTracks,
        *,
        max_fps: float,
        max_viewers: int,
        snapshot_dir: Path | None,
    ) -> None:
        self.hub = hub
        self.tracks = tracks
        self.viewers = Viewers(max_viewers)
        self.min_interval_s = 1.0 / max_fps if max_fps > 0 else 0.0
        self.snapshot_dir = snapshot_dir

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index),
            Route("/index.html", self.index),
            Route("/api/cameras", self.cameras),
            Route("/cameras/{camera}.mjpg", self.stream),
            Route("/cameras/{camera}.jpg", self.newest),
            Route("/tracks", self.tracks_page),
            Route("/api/tracks", self.recent_tracks),
            Route(SNAPSHOT_URL + "{name:path}", self.track_snapshot),
        ]

    async def index(self, request: Request) -> Response:
        return _html(INDEX_HTML)

    async def tracks_page(self, request: Request) -> Response:
        return _html(TRACKS_HTML)

    async def cameras(self, request: Request) -> Response:
        return _json({"cameras": self.hub.cameras()})

    async def stream(self, request: Request) -> Response:
        camera = request.path_params["camera"]
        if not self.hub.has(camera):
            return _text(404, f"no camera {camera!r}")
        if not self.viewers.take():
            return _text(
                503,
                f"too many viewers (at most {self.viewers.limit}); try again later",
                {"Retry-After": "5"},
            )
        return _Mjpeg(self._parts(camera), self.viewers)

    async def _parts(self, camera: str) -> AsyncIterator[bytes]:
        """The camera's newest frames, each once, until the run ends."""
        seen = 0
        while not self.hub.closed and self.hub.has(camera):
            jpeg = await self.hub.newer(camera, seen, POLL_S)
            if jpeg is None:
                continue
            sent_at = time.monotonic()
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(jpeg.data)}\r\nX-Frame-Index: {jpeg.frame_index}\r\n\r\n"
            ).encode()
            yield head + jpeg.data + b"\r\n"
            seen = jpeg.seq
            pause = self.min_interval_s - (time.monotonic() - sent_at)
            if pause > 0:
                await asyncio.sleep(pause)

    async def newest(self, request: Request) -> Response:
        camera = request.path_params["camera"]
        if not self.hub.has(camera):
            return _text(404, f"no camera {camera!r}")
        jpeg = await self.hub.newer(camera, 0, SNAPSHOT_WAIT_S)
        if jpeg is None:
            return _text(503, "no frame yet")
        headers = {**_NO_STORE, "X-Frame-Index": str(jpeg.frame_index)}
        return Response(jpeg.data, 200, headers, "image/jpeg")

    async def recent_tracks(self, request: Request) -> Response:
        # the snapshot URLs are absolute: under the path the routes are mounted at
        return _json({"tracks": self.tracks.rows(request.scope.get("root_path", ""))})

    async def track_snapshot(self, request: Request) -> Response:
        name = request.path_params["name"]
        root = self.snapshot_dir
        found = None if root is None else snapshot_file(root, name)
        if found is None:
            return _text(404, "no such snapshot")
        return FileResponse(found, media_type="image/jpeg", headers=_NO_STORE)
