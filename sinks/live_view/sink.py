"""`LiveViewSink`: each camera's annotated frames as MJPEG over HTTP, and an index page.

The sink hands frames to a `LiveHub` (`sinks.live_view.hub`), which keeps only the newest of
each camera; its `routes` (`sinks.live_view.routes`) serve them on the run's HTTP server
while the run lasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.routing import BaseRoute

from pipeline.types import (
    CameraStatus,
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    StreamEnd,
    StreamInfo,
)
from sinks.base import Sink
from sinks.live_view.access import DEFAULT_MAX_VIEWERS
from sinks.live_view.hub import LiveHub
from sinks.live_view.routes import LiveRoutes
from sinks.live_view.tracks import RecentTracks


class LiveViewSink(Sink):
    """Serves each camera's annotated frames, at the run's server, while the run lasts.

    `max_fps` caps the frames sent per second to each client (0: no cap); `jpeg_quality`
    is OpenCV's JPEG quality (1-100); at most `max_viewers` streams are served at once.

    The ended tracks it is given are listed at /tracks and /api/tracks; their snapshots are
    served from `snapshot_dir` (the snapshots sink's folder; None: not served).
    """

    name = "live"
    wants_every_frame = True

    def __init__(
        self,
        labels: LabelMap,
        *,
        jpeg_quality: int = 80,
        max_fps: float = 15.0,
        max_viewers: int = DEFAULT_MAX_VIEWERS,
        snapshot_dir: Path | None = None,
    ) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"LiveViewSink jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.hub = LiveHub(labels, jpeg_quality=jpeg_quality)
        self.snapshot_dir = snapshot_dir
        """The folder whose snapshots /snapshots/ serves (None: none)."""
        self.tracks = RecentTracks(labels, snapshots=snapshot_dir is not None)
        self._routes = LiveRoutes(
            self.hub,
            self.tracks,
            max_fps=max_fps,
            max_viewers=max_viewers,
            snapshot_dir=snapshot_dir,
        )
        self.url: str | None = None
        """Address of the index page once the run serves it (see `routes`)."""

    def routes(self, url: str) -> Sequence[BaseRoute]:
        self.url = url
        return self._routes.routes()

    def describe(self) -> str:
        """One line for the run summary."""
        return f"live view {self.url or '(not served)'} (closed with the run)"

    def start_line(self) -> str:
        """Where to watch, for the run's start."""
        return f"live view: {self.url}" if self.url else ""

    def start(self, info: StreamInfo) -> None:
        self.hub.start(info)

    def write(self, result: FrameResult) -> None:
        self.hub.publish(result)
        self.tracks.add(result.track_events)

    def held_events(self, held: HeldTrackEvents) -> None:
        self.tracks.add(held.track_events)

    def status(self, status: CameraStatus) -> None:
        self.hub.status(status)

    def end(self, stream_end: StreamEnd) -> None:
        self.hub.end(stream_end)
        self.tracks.add(stream_end.track_events)

    def close(self) -> None:
        """Ends the open streams (the server stops after). Idempotent."""
        self.hub.close()
