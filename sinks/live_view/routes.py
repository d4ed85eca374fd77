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

Each endpoint's docstring holds its OpenAPI operation after `---`, as Starlette's schemas
read it: the server joins them to the OpenAPI description of its API.
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
            Route("/index.html", self.index, include_in_schema=False),  # the same page
            Route("/api/cameras", self.cameras),
            Route("/cameras/{camera}.mjpg", self.stream),
            Route("/cameras/{camera}.jpg", self.newest),
            Route("/tracks", self.tracks_page),
            Route("/api/tracks", self.recent_tracks),
            Route(SNAPSHOT_URL + "{name:path}", self.track_snapshot),
        ]

    async def index(self, request: Request) -> Response:
        """The index page.
        ---
        summary: The live view's page
        description: A tile per camera with its live picture, status, frame rate and counts.
        responses:
          "200": {description: The page., content: {text/html: {schema: {type: string}}}}
        """
        return _html(INDEX_HTML)

    async def tracks_page(self, request: Request) -> Response:
        """The page of the recent tracks.
        ---
        summary: The page of the recent tracks
        description: The tracks that ended last during this run, each with its snapshot.
        responses:
          "200": {description: The page., content: {text/html: {schema: {type: string}}}}
        """
        return _html(TRACKS_HTML)

    async def cameras(self, request: Request) -> Response:
        """The cameras with their status, frame rate and counts.
        ---
        summary: The cameras of the run, as the page shows them
        responses:
          "200":
            description: >-
              Each camera's status, frames, frames per second over the last 2 s, size, and
              the counts of its zones (tracks inside now) and lines (crossings per
              direction).
            content:
              application/json:
                schema:
                  type: object
                  required: [cameras]
                  properties:
                    cameras:
                      type: array
                      items:
                        type: object
                        required: [id, status, error, frames, fps, width, height, zones, lines]
                        properties:
                          id: {type: string}
                          status: {enum: [connecting, live, reconnecting, ended, failed]}
                          error: {type: [string, "null"]}
                          frames: {type: integer}
                          fps: {type: number}
                          width: {type: integer}
                          height: {type: integer}
                          zones:
                            type: array
                            items:
                              type: object
                              required: [id, inside, by_label]
                              properties:
                                id: {type: string}
                                inside: {type: integer}
                                by_label: {type: object, additionalProperties: {type: integer}}
                          lines:
                            type: array
                            items:
                              type: object
                              required: [id, crossings]
                              properties:
                                id: {type: string}
                                crossings: {type: object, additionalProperties: {type: integer}}
        """
        return _json({"cameras": self.hub.cameras()})

    async def stream(self, request: Request) -> Response:
        """A camera's frames as MJPEG, until the run ends.
        ---
        summary: A camera's annotated frames as MJPEG
        description: >-
          A multipart/x-mixed-replace stream of JPEG parts, each with `X-Frame-Index`, the
          newest frame each time, until the run ends or the viewer goes.
        parameters:
          - {name: camera, in: path, required: true, schema: {type: string},
             description: Camera id.}
        responses:
          "200":
            description: The stream (it ends with the run).
            content: {multipart/x-mixed-replace: {schema: {type: string}}}
          "404":
            description: >-
              No such camera (a line of text); JSON for a path no route takes (a `/` in the id).
            content: {text/plain: {schema: {type: string}}, application/json: {}}
          "503":
            description: Too many viewers (`max_viewers`); try again after `Retry-After`.
            headers: {Retry-After: {schema: {type: integer}, description: Seconds.}}
            content: {text/plain: {schema: {type: string}}}
        """
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
        """A camera's newest frame.
        ---
        summary: A camera's newest annotated frame
        parameters:
          - {name: camera, in: path, required: true, schema: {type: string},
             description: Camera id.}
        responses:
          "200":
            description: The frame, with its index in the stream in `X-Frame-Index`.
            headers: {X-Frame-Index: {schema: {type: integer}, description: The frame's index.}}
            content: {image/jpeg: {schema: {type: string, format: binary}}}
          "404":
            description: >-
              No such camera (a line of text); JSON for a path no route takes (a `/` in the id).
            content: {text/plain: {schema: {type: string}}, application/json: {}}
          "503":
            description: No frame yet (none within 5 s), or the run has ended.
            content: {text/plain: {schema: {type: string}}}
        """
        camera = request.path_params["camera"]
        if not self.hub.has(camera):
            return _text(404, f"no camera {camera!r}")
        jpeg = await self.hub.newer(camera, 0, SNAPSHOT_WAIT_S)
        if jpeg is None:
            return _text(503, "no frame yet")
        headers = {**_NO_STORE, "X-Frame-Index": str(jpeg.frame_index)}
        return Response(jpeg.data, 200, headers, "image/jpeg")

    async def recent_tracks(self, request: Request) -> Response:
        """The recent ended tracks.
        ---
        summary: The tracks that ended last during this run, newest first
        responses:
          "200":
            description: >-
              The last 200 tracks that ended; the URLs are paths on this server, null
              without a snapshots sink or when the snapshot could not be written.
            content:
              application/json:
                schema:
                  type: object
                  required: [tracks]
                  properties:
                    tracks:
                      type: array
                      items:
                        type: object
                        required: [camera, track_id, label, first_time, last_time, frames,
                                   best_score, snapshot_url, frame_url]
                        properties:
                          camera: {type: string}
                          track_id: {type: integer}
                          label: {type: string}
                          first_time: {type: string, format: date-time}
                          last_time: {type: string, format: date-time}
                          frames: {type: integer}
                          best_score: {type: number}
                          snapshot_url: {type: [string, "null"]}
                          frame_url: {type: [string, "null"]}
        """
        # the snapshot URLs are absolute: under the path the routes are mounted at
        return _json({"tracks": self.tracks.rows(request.scope.get("root_path", ""))})

    async def track_snapshot(self, request: Request) -> Response:
        """A track's snapshot file.
        ---
        summary: A track's snapshot, from the snapshots sink's folder
        parameters:
          - name: name
            in: path
            required: true
            schema: {type: string}
            description: "`<camera>/<file>.jpg`, as the snapshots sink names it."
        responses:
          "200":
            description: The JPEG.
            content: {image/jpeg: {schema: {type: string, format: binary}}}
          "404":
            description: >-
              No snapshot of that name, or no snapshots sink (a line of text); JSON for a
              path no route takes (a newline in the name).
            content: {text/plain: {schema: {type: string}}, application/json: {}}
        """
        name = request.path_params["name"]
        root = self.snapshot_dir
        found = None if root is None else snapshot_file(root, name)
        if found is None:
            return _text(404, "no such snapshot")
        return FileResponse(found, media_type="image/jpeg", headers=_NO_STORE)
