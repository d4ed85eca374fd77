"""`LiveViewSink`: each camera's annotated frames as MJPEG over HTTP, and an index page.

The sink hands frames to a `LiveHub` (`sinks.live_view.hub`), which keeps only the newest of
each camera; a `LiveViewServer` (`sinks.live_view.server`) serves them from its own threads
while the run lasts.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from pipeline.types import CameraStatus, FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import Sink, SinkError
from sinks.live_view.access import DEFAULT_MAX_VIEWERS, Access, Credentials, exposure_problem
from sinks.live_view.hub import LiveHub
from sinks.live_view.server import LiveViewServer
from sinks.live_view.tracks import RecentTracks

log = logging.getLogger(__name__)


class LiveViewSink(Sink):
    """Serves each camera's annotated frames at http://host:port/ while the run lasts.

    `max_fps` caps the frames sent per second to each client (0: no cap); `jpeg_quality`
    is OpenCV's JPEG quality (1-100). Port 0 picks a free port (see `url`).

    At most `max_viewers` connections are served at once. Requests must name the view
    (loopback names, `host`, `allowed_hosts`) and carry `credentials` when given; a `host`
    other machines can reach needs credentials, or `allow_unauthenticated=True`.

    The ended tracks it is given are listed at /tracks and /api/tracks; their snapshots are
    served from `snapshot_dir` (the snapshots sink's folder; None: not served).
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
        max_viewers: int = DEFAULT_MAX_VIEWERS,
        allowed_hosts: Sequence[str] = (),
        credentials: Credentials | None = None,
        allow_unauthenticated: bool = False,
        snapshot_dir: Path | None = None,
    ) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"LiveViewSink jpeg_quality must be in 1..100, got {jpeg_quality}")
        problem = exposure_problem(host, credentials is not None, allow_unauthenticated)
        if problem is not None:
            raise SinkError(f"live sink: {problem}")
        self.hub = LiveHub(labels, jpeg_quality=jpeg_quality)
        self.snapshot_dir = snapshot_dir
        """The folder whose snapshots /snapshots/ serves (None: none)."""
        self.tracks = RecentTracks(labels, snapshots=snapshot_dir is not None)
        access = Access(host, allowed_hosts, credentials)
        try:
            self._server = LiveViewServer(
                (host, port),
                self.hub,
                max_fps,
                access=access,
                max_viewers=max_viewers,
                tracks=self.tracks,
                snapshot_dir=snapshot_dir,
            )
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
        log.debug("live view serving at %s", self.url)  # the run says it: `start_line`

    def describe(self) -> str:
        """One line for the run summary."""
        return f"live view {self.url} (closed with the run)"

    def start_line(self) -> str:
        """Where to watch, for the run's start."""
        return f"live view: {self.url}"

    def start(self, info: StreamInfo) -> None:
        self.hub.start(info)

    def write(self, result: FrameResult) -> None:
        self.hub.publish(result)
        self.tracks.add(result.track_events)

    def status(self, status: CameraStatus) -> None:
        self.hub.status(status)

    def end(self, stream_end: StreamEnd) -> None:
        self.hub.end(stream_end)
        self.tracks.add(stream_end.track_events)

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
