"""Which cameras' frames have stopped coming (a live stream reconnecting, a source that
blocks, a still scene whose frames motion gating skips): the video sink finishes such a
camera's file, so that its last frames are on disk rather than waiting in memory for a
frame that may not come.

A camera's frames have stopped once none has come for `STALL_S` and for `GAPS` times the
gap before its last frame, `MAX_WAIT_S` at most: frames that come seldom (`max_fps` without
`full_rate_video`, a frame every few seconds) keep one file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

STALL_S = 2.0
"""No frame for this long (and for `GAPS` gaps) and a camera's frames have stopped: two
fragments' length, so that a live stream's hiccup, or the frame a second that motion gating
detects in a still scene (its default `max_skip_s`), does not split a file."""
GAPS = 3
"""A camera's frames have stopped once none has come for this many times the last gap."""
MAX_WAIT_S = 30.0
"""The longest wait for a camera's next frame, however far apart its frames came."""


class StallWatch:
    """When each camera's frames came, on `clock` (seconds); says whose have stopped."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}
        self._wait: dict[str, float] = {}

    def frame(self, camera: str) -> None:
        """A frame of `camera` came now."""
        now = self._clock()
        gap = now - self._last.get(camera, now)
        self._wait[camera] = min(MAX_WAIT_S, max(STALL_S, GAPS * gap))
        self._last[camera] = now

    def stalled(self, cameras: Iterable[str]) -> list[str]:
        """Those of `cameras` whose frames have stopped."""
        now = self._clock()
        return [
            camera
            for camera in cameras
            if camera in self._last and now - self._last[camera] > self._wait[camera]
        ]

    def idle_s(self, camera: str) -> float:
        """Seconds since the camera's last frame."""
        return self._clock() - self._last[camera]
