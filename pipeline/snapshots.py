"""The snapshot stage: per camera, after the tracker, the pixels of each open track's
best-scoring detection, attached to the track's "ended" event as a `Snapshot`.

What it keeps is cheap: per open track, a copy of the crop of its best detection so far
(the box and a margin; never a copy of the whole frame), and per camera references to its
last `recent_frames` detected frames, from which a track confirmed on a later frame gets
the crop of its best detection (the tracker's `TrackSummary.best_frame`); with
`full_frame`, also a reference (not a copy) to the frame of each open track's best
detection, so at most one frame per open track is kept alive.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipeline.types import Detections, Frame, Snapshot, TrackEvent
from sinks.snapshot_files import frame_name, snapshot_name

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Best:
    """A track's best detection so far, and its pixels."""

    score: float
    frame_index: int
    box: Box
    crop: npt.NDArray[np.uint8] | None
    frame: npt.NDArray[np.uint8] | None


def crop_box(image: npt.NDArray[np.uint8], box: Box, margin: float) -> npt.NDArray[np.uint8]:
    """The pixels of `box` widened by `margin` (a fraction of the box's width and height on
    each side), clipped to the image: a read-only copy that does not keep `image` alive.
    Empty ([0, 0, 3]) when the box lies outside the image."""
    x1, y1, x2, y2 = box
    mx, my = margin * max(x2 - x1, 0.0), margin * max(y2 - y1, 0.0)
    height, width = image.shape[:2]
    left, top = max(0, math.floor(x1 - mx)), max(0, math.floor(y1 - my))
    right, bottom = min(width, math.ceil(x2 + mx)), min(height, math.ceil(y2 + my))
    if right <= left or bottom <= top:
        crop = np.zeros((0, 0, 3), np.uint8)
    else:
        crop = image[top:bottom, left:right].copy()
    crop.flags.writeable = False
    return crop


class SnapshotKeeper:
    """One camera's snapshot stage: `update` after each tracked frame, `finish` at the end
    of its stream; both return the track events, the "ended" ones with their `Snapshot`.

    `directory`: the snapshot folder (named in each `Snapshot`); `margin`: crop margin, a
    fraction of the box size per side; `full_frame`: also keep the whole frame;
    `recent_frames`: detected frames remembered for tracks not confirmed yet (the tracker's
    `t_min`: a track's best detection before it was confirmed lies in its last `t_min`
    detected frames).
    """

    def __init__(
        self,
        camera_id: str,
        directory: Path,
        *,
        margin: float = 0.1,
        full_frame: bool = False,
        recent_frames: int = 2,
    ) -> None:
        if margin < 0:
            raise ValueError(f"SnapshotKeeper margin must be >= 0, got {margin}")
        if recent_frames < 1:
            raise ValueError(f"SnapshotKeeper recent_frames must be >= 1, got {recent_frames}")
        self.camera_id = camera_id
        self.directory = str(directory)
        self.margin = margin
        self.full_frame = full_frame
        self._recent: deque[Frame] = deque(maxlen=recent_frames)
        self._best: dict[int, _Best] = {}

    @property
    def open_tracks(self) -> int:
        """Tracks whose best detection is kept now."""
        return len(self._best)

    def kept_bytes(self) -> int:
        """Bytes of crops held (frames referenced are not counted: they are not copies)."""
        return sum(b.crop.nbytes for b in self._best.values() if b.crop is not None)

    def update(
        self, frame: Frame, tracked: Detections, events: tuple[TrackEvent, ...]
    ) -> tuple[TrackEvent, ...]:
        """Keep the pixels of every track's best detection in `frame` (its boxes `tracked`);
        returns `events` (the tracker's for this frame), the "ended" ones with a snapshot."""
        self._recent.append(frame)
        for event in events:
            if event.kind == "started":
                self._start(event)
        scores: list[float] = tracked.score.tolist()
        for row, track_id in enumerate(tracked.track_id.tolist()):
            best = self._best.get(track_id)
            if best is not None and scores[row] > best.score:  # as the tracker: strictly
                box = tuple(tracked.xyxy[row].tolist())
                self._best[track_id] = self._keep(frame, scores[row], box)  # type: ignore[arg-type]
        return self._ended(events)

    def finish(self, events: tuple[TrackEvent, ...]) -> tuple[TrackEvent, ...]:
        """The stream ended: `events` (the tracker's last) with snapshots; all is forgotten."""
        ended = self._ended(events)
        self._best.clear()
        self._recent.clear()
        return ended

    def _start(self, event: TrackEvent) -> None:
        track = event.track
        frame = next((f for f in self._recent if f.index == track.best_frame), None)
        if frame is None:  # not seen: its next detection will be kept
            log.debug("camera %s: track %d's best frame is gone", self.camera_id, track.track_id)
            self._best[track.track_id] = _Best(-math.inf, -1, track.best_box, None, None)
            return
        self._best[track.track_id] = self._keep(frame, track.best_score, track.best_box)

    def _keep(self, frame: Frame, score: float, box: Box) -> _Best:
        whole = frame.image if self.full_frame else None
        if whole is not None and whole.flags.writeable:
            whole = whole.view()  # a read-only view of the same pixels, not a copy
            whole.flags.writeable = False
        return _Best(score, frame.index, box, crop_box(frame.image, box, self.margin), whole)

    def _ended(self, events: tuple[TrackEvent, ...]) -> tuple[TrackEvent, ...]:
        out = []
        for event in events:
            best = self._best.pop(event.track.track_id, None) if event.kind == "ended" else None
            if best is not None and best.crop is not None and best.crop.size:
                name = snapshot_name(self.camera_id, event.track.track_id, event.track.first_time)
                snapshot = Snapshot(
                    frame_index=best.frame_index,
                    box=best.box,
                    crop=best.crop,
                    directory=self.directory,
                    name=name,
                    frame=best.frame,
                    frame_name=None if best.frame is None else frame_name(name),
                )
                event = dataclasses.replace(event, snapshot=snapshot)
            out.append(event)
        return tuple(out)
