"""Whether a live camera's frames have clearly slowed down since its file opened (a detector
falling behind). Such a file's encoder was opened to hold frames back (B-frames,
look-ahead) while they came at the video's frame rate; the video sink then finishes the
file, every frame it was given written, and starts the next one with an encoder that holds
none back, so that a kill loses no more than the last frame (docs/video.md).

A file's frames have slowed once it has been open for `SLOW_S` and fewer of them came in the
last `SLOW_S` than 1/`SLOWER` of what the video's frame rate brings (under 50 of a 25 fps
camera's 100): a hiccup of a second or so does not count, a detector that falls to 2 frames
a second does about 2 seconds later. Only a file whose encoder holds back a live, ungated
camera's frames is watched (`Pacing.holds_back_live_frames`); the next one holds none back,
so a camera whose frames keep speeding up and slowing down makes at most one file more for
each file it makes anyway (`segment_minutes`, a reconnection, its frames stopping).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from fractions import Fraction

SLOW_S = 4.0
"""The seconds of a camera's frames whose number tells whether they have slowed down."""
SLOWER = 2
"""A camera's frames have slowed down once fewer than 1/SLOWER of the video's frame rate came."""


class SlowdownWatch:
    """When the frames of each watched camera's open file came, on `clock` (seconds); says
    whose have slowed down."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._opened: dict[str, float] = {}
        self._rate: dict[str, Fraction] = {}
        self._came: dict[str, deque[float]] = {}
        """Each watched camera's frames of its last `SLOW_S`."""

    def watch(self, camera: str, rate: Fraction) -> None:
        """`camera`'s new file, `rate` frames a second of video, opens now with its first frame."""
        now = self._clock()
        self._opened[camera] = now
        self._rate[camera] = rate
        self._came[camera] = deque([now])

    def forget(self, camera: str) -> None:
        """`camera`'s new file is not watched."""
        self._opened.pop(camera, None)
        self._rate.pop(camera, None)
        self._came.pop(camera, None)

    def frame(self, camera: str) -> None:
        """A frame of `camera` came now (counted only while its file is watched)."""
        came = self._came.get(camera)
        if came is not None:
            now = self._clock()
            came.append(now)
            while came[0] <= now - SLOW_S:
                came.popleft()

    def slowed_gap_s(self, camera: str) -> float | None:
        """How far apart, on average, the camera's frames of its last `SLOW_S` came, if they
        have slowed down (more than `SLOWER` frames of its video apart); else None."""
        came = self._came.get(camera)
        if came is None:
            return None
        now = self._clock()
        if now - self._opened[camera] < SLOW_S:
            return None
        while came and came[0] <= now - SLOW_S:
            came.popleft()
        if len(came) * SLOWER >= SLOW_S * self._rate[camera]:
            return None
        return SLOW_S / max(1, len(came))
