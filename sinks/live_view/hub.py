"""The cameras' newest frames, shared by the live view's sink (writer) and its HTTP handlers.

The sink's `write` only stores a reference to the newest frame of its camera, so it costs
the same with zero or a hundred viewers. A handler awaits a frame newer than the one it
sent last (holding no thread while it waits) and gets it as JPEG, encoded once per frame
however many handlers want it: a slow viewer skips frames, it never slows the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from pipeline.types import CameraStatus, FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.draw import annotate
from sinks.scene_overlay import SceneOverlay, SceneView

log = logging.getLogger(__name__)

FPS_WINDOW_S = 2.0
"""The fps shown is measured over the frames of the last this-many seconds."""

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

    Fields are guarded by the hub's lock; `encode_lock` makes one client encode a
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
    scene: SceneOverlay | None = None
    view: SceneView | None = None
    """The zones, lines, counts and trails drawn on `latest` (None: boxes only)."""

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

    def info(self, now: float, labels: LabelMap) -> dict[str, Any]:
        counts = self.scene.counts(labels) if self.scene is not None else {}
        return {
            "id": self.camera_id,
            "status": self.status,
            "error": self.error,
            "frames": self.frames,
            "fps": round(self.fps(now), 1) if self.status == "live" else 0.0,
            "width": self.width,
            "height": self.height,
            "zones": counts.get("zones", []),
            "lines": counts.get("lines", []),
        }


class LiveHub:
    """The cameras' newest frames, shared by the sink (writer) and the HTTP handlers."""

    def __init__(self, labels: LabelMap, *, jpeg_quality: int = 80) -> None:
        self._labels = labels
        self._quality = jpeg_quality
        self._feeds: dict[str, _Feed] = {}
        self._lock = threading.Lock()
        self._waiters: set[Callable[[], None]] = set()
        """Wake the handlers awaiting a change (guarded by `_lock`)."""
        self.closed = False

    # ---- writer side (the sink's thread)

    def start(self, info: StreamInfo) -> None:
        with self._lock:
            feed = self._feeds.get(info.camera_id)
            if feed is None:
                feed = self._feeds[info.camera_id] = _Feed(info.camera_id, info.width, info.height)
            else:
                feed.status, feed.error = "live", None
                feed.width, feed.height = info.width, info.height
            if info.scene is not None and (feed.scene is None or feed.scene.layout != info.scene):
                feed.scene = SceneOverlay(info.scene)
            self._notify()

    def publish(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        now = time.monotonic()
        with self._lock:
            feed = self._feeds.get(camera)
            if feed is None:
                feed = self._feeds[camera] = _Feed(camera, result.frame.width, result.frame.height)
            feed.latest = result
            if feed.scene is not None:
                # counted on every frame, drawn only when a viewer asks for one
                feed.scene.update(result)
                feed.view = None
            feed.status, feed.error = "live", None
            feed.width, feed.height = result.frame.width, result.frame.height
            feed.seq += 1
            feed.frames += 1
            feed.times.append(now)
            if feed.first_time is None:
                feed.first_time = now
            while feed.times and now - feed.times[0] > FPS_WINDOW_S:
                feed.times.popleft()
            self._notify()

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
        with self._lock:
            feed = self._feeds.get(status.camera_id)
            if feed is None:
                feed = self._feeds[status.camera_id] = _Feed(status.camera_id, 0, 0)
            feed.status, feed.error = state, status.message
            self._notify()

    def end(self, stream_end: StreamEnd) -> None:
        with self._lock:
            feed = self._feeds.get(stream_end.camera_id)
            if feed is not None:
                feed.status = "failed" if stream_end.error else "ended"
                feed.error = stream_end.error
                if feed.scene is not None:
                    feed.scene.count(stream_end.analytics)
                    feed.scene.end()
            self._notify()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._notify()

    def _notify(self) -> None:
        """Wakes every awaiting handler; called with `_lock` held."""
        for wake in self._waiters:
            wake()

    # ---- reader side (HTTP handlers, in the server's event loop)

    def cameras(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [feed.info(now, self._labels) for feed in self._feeds.values()]

    def has(self, camera: str) -> bool:
        with self._lock:
            return camera in self._feeds

    async def newer(self, camera: str, seen_seq: int, timeout_s: float) -> Jpeg | None:
        """The newest frame of `camera` as JPEG once it is newer than `seen_seq`.

        None when no newer frame came within `timeout_s`, the camera is unknown or the hub
        closed. Encoding runs in a worker thread, so the event loop serves others meanwhile.
        """
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # the server's loop is gone: nobody awaits any more
                log.debug("live view: a change came after the server stopped")

        deadline = loop.time() + timeout_s
        with self._lock:
            self._waiters.add(wake)
        try:
            while True:
                changed.clear()
                with self._lock:
                    feed = self._feeds.get(camera)
                    if self.closed or feed is None:
                        return None
                    if feed.latest is not None and feed.seq > seen_seq:
                        break
                try:
                    await asyncio.wait_for(changed.wait(), deadline - loop.time())
                except TimeoutError:
                    return None
        finally:
            with self._lock:
                self._waiters.discard(wake)
        return await asyncio.to_thread(self._encoded, feed)

    def _encoded(self, feed: _Feed) -> Jpeg:
        with feed.encode_lock:
            with self._lock:
                seq, result, cached = feed.seq, feed.latest, feed.jpeg
                if feed.scene is not None and feed.view is None:
                    feed.view = feed.scene.view()
                view = feed.view
            if cached is not None and cached.seq == seq:
                return cached
            assert result is not None
            image = annotate(result.frame.image, result.detections, self._labels, view)
            ok, buffer = cv2.imencode(
                ".jpg",
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, self._quality],
            )
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for camera {feed.camera_id!r}")
            jpeg = Jpeg(seq, result.frame.index, np.asarray(buffer).tobytes())
            with self._lock:
                feed.jpeg = jpeg
            return jpeg
