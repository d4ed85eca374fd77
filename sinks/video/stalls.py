"""Which cameras' frames have stopped coming (a live stream reconnecting, a source that
blocks, a still scene whose frames motion gating skips): the video sink finishes such a
camera's file, so that its last frames are on disk rather than waiting in memory for a
frame that may not come.

A camera's frames have stopped once none has come for `STALL_S` and for `GAPS` times the
largest gap between its last `RECENT` frames, `MAX_WAIT_S` at most: frames that come seldom
(`max_fps` without `full_rate_video`, a frame every few seconds) or in batches far apart (a
slow detector) keep one file. The wait from its stream's start to its first frame counts as
a gap: a slow detector's first batch comes about as long after the start as its next batch
after it, and its frames come with no gap between them. Its first frame, with no gap between
frames yet, waits `MAX_WAIT_S`. Only live cameras are watched (`watch`): a file's frames stop
only at its end, which finishes its file anyway.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

STALL_S = 2.0
"""No frame for this long (and for `GAPS` gaps) and a camera's frames have stopped: two
fragments' length, so that a live stream's hiccup, or the frame a second that motion gating
detects in a still scene (its default `max_skip_s`), does not split a file."""
GAPS = 3
"""A camera's frames have stopped once none has come for this many times its largest recent
gap."""
RECENT = 64
"""Frames whose gaps count: a detector's batches (8 frames at once, then none for as long as
the next batch takes) span several of them."""
MAX_WAIT_S = 30.0
"""The longest wait for a camera's next frame, however far apart its frames came."""


class StallWatch:
    """When each camera's frames came, on `clock` (seconds); says whose have stopped."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._watched: set[str] = set()
        self._last: dict[str, float] = {}
        self._gaps: dict[str, deque[float]] = {}
        self._wait: dict[str, float] = {}
        self._between: dict[str, deque[float]] = {}
        """Each camera's recent gaps between two of its frames, not the waits for its first
        frame nor those after its frames had stopped."""
        self._starting: set[str] = set()

    def watch(self, camera: str) -> None:
        """`camera`'s stream starts now (again, after a reconnect), and its frames may stop
        while the run goes on (a live camera)."""
        self._watched.add(camera)
        self._last[camera] = self._clock()  # the wait for its first frame is a gap
        self._wait[camera] = MAX_WAIT_S
        self._starting.add(camera)

    def frame(self, camera: str) -> None:
        """A frame of `camera` came now."""
        if camera not in self._watched:
            return
        now = self._clock()
        gap = now - self._last[camera]
        gaps = self._gaps.setdefault(camera, deque(maxlen=RECENT))
        gaps.append(gap)
        if camera not in self._starting and gap <= self._wait[camera]:  # not after a stop
            self._between.setdefault(camera, deque(maxlen=RECENT)).append(gap)
        self._starting.discard(camera)
        if len(gaps) > 1:  # a gap between two of its frames is known
            self._wait[camera] = min(MAX_WAIT_S, max(STALL_S, GAPS * max(gaps)))
        self._last[camera] = now

    def stalled(self, cameras: Iterable[str]) -> list[str]:
        """Those of `cameras` whose frames have stopped."""
        now = self._clock()
        return [
            camera
            for camera in cameras
            if camera in self._watched and now - self._last[camera] > self._wait[camera]
        ]

    def frame_gap_s(self, camera: str) -> float | None:
        """The mean gap between the camera's last `RECENT` frames, the waits for its first
        frame after a start and those after its frames had stopped not counted (None: none
        known, or the camera is not watched)."""
        gaps = self._between.get(camera)
        return sum(gaps) / len(gaps) if gaps else None

    def idle_s(self, camera: str) -> float:
        """Seconds since the camera's last frame."""
        return self._clock() - self._last[camera]
