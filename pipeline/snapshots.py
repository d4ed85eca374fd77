"""The snapshot stage: per camera, after the tracker, the pixels of each open track's
best-scoring detection, attached to the track's "ended" event as a `Snapshot`.

What it keeps is cheap: per open track, a copy of the crop of its best detection so far
(the box and a margin; never a copy of the whole frame), and per camera references to its
last `recent_frames` detected frames, from which a track confirmed on a later frame gets
the crop of its best detection (the tracker's `TrackSummary.best_frame`). With
`full_frame`, the frames of the open tracks' best detections are shared by the tracks whose
best they are, and at most `FULL_FRAMES_HELD` of them per camera are kept as pixels: beyond
that, the oldest is encoded as JPEG once and its pixels let go.

With a writer, an ended track's event is held back until its files are written (or lost,
or given up on at the writer's bound), then goes out with the camera's next frame, or on
its own (`release`) once settled when no frame comes first, or with its stream's end: the
stage never waits for a write but at the stream's end, and then no longer than the bound.
Other events pass at once.
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
from sinks.snapshots.writer import encode_jpeg
from sinks.snapshots.writer_thread import PendingSnapshot, SnapshotWriterThread

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

FULL_FRAMES_HELD = 4
"""With `full_frame`: whole frames a camera's open tracks keep as pixels at most; the other
best frames are held as JPEG (about a tenth of the pixels' size)."""


@dataclass(frozen=True)
class _Best:
    """A track's best detection so far, and its pixels (`frame`: the `Frame.index` of the
    whole frame it holds in the keeper's shared frames, with `full_frame`)."""

    score: float
    frame_index: int
    box: Box
    crop: npt.NDArray[np.uint8] | None
    frame: int | None


@dataclass
class _Held:
    """A whole frame some open tracks' best detections are in: its pixels (read-only, not
    a copy), or once too many frames are held, its JPEG; `users`: those tracks."""

    pixels: npt.NDArray[np.uint8] | None
    jpeg: bytes | None
    users: int = 0


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
    detected frames); `quality`: JPEG quality of the whole frames encoded beyond
    `frames_held`; `writer`: writes each snapshot before its event goes out (none: the
    snapshots are only attached), an "ended" event waiting for it meanwhile (`waiting`).
    """

    def __init__(
        self,
        camera_id: str,
        directory: Path,
        *,
        margin: float = 0.1,
        full_frame: bool = False,
        recent_frames: int = 2,
        quality: int = 90,
        frames_held: int = FULL_FRAMES_HELD,
        writer: SnapshotWriterThread | None = None,
    ) -> None:
        if margin < 0:
            raise ValueError(f"SnapshotKeeper margin must be >= 0, got {margin}")
        if recent_frames < 1:
            raise ValueError(f"SnapshotKeeper recent_frames must be >= 1, got {recent_frames}")
        if frames_held < 1:
            raise ValueError(f"SnapshotKeeper frames_held must be >= 1, got {frames_held}")
        self.camera_id = camera_id
        self.directory = str(directory)
        self.margin = margin
        self.full_frame = full_frame
        self.quality = quality
        self.frames_held = frames_held
        self.writer = writer
        self._recent: deque[Frame] = deque(maxlen=recent_frames)
        self._best: dict[int, _Best] = {}
        self._frames: dict[int, _Held] = {}  # by Frame.index, in the order first held
        self._waiting: list[tuple[TrackEvent, PendingSnapshot]] = []  # in the order ended

    @property
    def open_tracks(self) -> int:
        """Tracks whose best detection is kept now."""
        return len(self._best)

    @property
    def waiting(self) -> int:
        """Ended tracks whose event waits for their files to be written."""
        return len(self._waiting)

    @property
    def next_deadline(self) -> float | None:
        """When the first held event's write is given up on (the writer's clock, by default
        `time.monotonic()`), if any event is held."""
        return min((p.deadline for _, p in self._waiting), default=None)

    @property
    def frames_as_pixels(self) -> int:
        """Whole frames held as pixels for the open tracks (at most `frames_held`)."""
        return sum(1 for held in self._frames.values() if held.pixels is not None)

    def kept_bytes(self) -> int:
        """Bytes of crops, whole frames' pixels and their JPEGs held for the open tracks
        (not the `recent_frames`, which the stage only refers to for a moment)."""
        crops = sum(b.crop.nbytes for b in self._best.values() if b.crop is not None)
        frames = sum(
            h.pixels.nbytes if h.pixels is not None else len(h.jpeg or b"")
            for h in self._frames.values()
        )
        return crops + frames

    def update(
        self, frame: Frame, tracked: Detections, events: tuple[TrackEvent, ...]
    ) -> tuple[TrackEvent, ...]:
        """Keep the pixels of every track's best detection in `frame` (its boxes `tracked`);
        returns the events to send with it: those of earlier frames whose snapshot has
        settled since, then `events` (the tracker's for this frame), the "ended" ones with
        a snapshot, but for those still being written."""
        self._recent.append(frame)
        for event in events:
            if event.kind == "started":
                self._start(event)
        scores: list[float] = tracked.score.tolist()
        for row, track_id in enumerate(tracked.track_id.tolist()):
            best = self._best.get(track_id)
            if best is not None and scores[row] > best.score:  # as the tracker: strictly
                box = tuple(tracked.xyxy[row].tolist())
                self._release(best)
                self._best[track_id] = self._keep(frame, scores[row], box)
        return self._settled() + self._ended(events)

    def finish(self, events: tuple[TrackEvent, ...]) -> tuple[TrackEvent, ...]:
        """The stream ended: every event still held back and `events` (the tracker's last),
        with snapshots, once written or lost (the writer's bound at the most); all is
        forgotten."""
        ended = self._settled() + self._ended(events)
        waited = tuple(dataclasses.replace(e, snapshot=p.wait()) for e, p in self._waiting)
        self._waiting.clear()
        ended += waited
        self._best.clear()
        self._frames.clear()
        self._recent.clear()
        return ended

    def release(self) -> tuple[TrackEvent, ...]:
        """The held events whose snapshot was written or lost (or given up on) since, with
        it, in the order their tracks ended; for when no frame of the camera comes to carry
        them."""
        return self._settled()

    def _start(self, event: TrackEvent) -> None:
        track = event.track
        frame = next((f for f in self._recent if f.index == track.best_frame), None)
        if frame is None:  # not seen: its next detection will be kept
            log.debug("camera %s: track %d's best frame is gone", self.camera_id, track.track_id)
            self._best[track.track_id] = _Best(-math.inf, -1, track.best_box, None, None)
            return
        self._best[track.track_id] = self._keep(frame, track.best_score, track.best_box)

    def _keep(self, frame: Frame, score: float, box: Box) -> _Best:
        crop = crop_box(frame.image, box, self.margin)
        if not self.full_frame:
            return _Best(score, frame.index, box, crop, None)
        held = self._frames.get(frame.index)
        if held is None:
            pixels = frame.image
            if pixels.flags.writeable:
                pixels = pixels.view()  # a read-only view of the same pixels, not a copy
                pixels.flags.writeable = False
            held = self._frames[frame.index] = _Held(pixels, None)
            self._encode_beyond_bound()
        held.users += 1
        return _Best(score, frame.index, box, crop, frame.index)

    def _encode_beyond_bound(self) -> None:
        """Past `frames_held` frames as pixels, the oldest held as pixels become JPEG."""
        as_pixels = [h for h in self._frames.values() if h.pixels is not None]
        for held in as_pixels[: max(0, len(as_pixels) - self.frames_held)]:
            assert held.pixels is not None
            held.jpeg, held.pixels = encode_jpeg(held.pixels, self.quality), None

    def _release(self, best: _Best) -> None:
        """A track no longer needs its best's whole frame: it goes with its last user."""
        if best.frame is None:
            return
        held = self._frames[best.frame]
        held.users -= 1
        if held.users == 0:
            del self._frames[best.frame]

    def _settled(self) -> tuple[TrackEvent, ...]:
        """The held-back events whose snapshot was written or lost since."""
        out, waiting = [], []
        for event, pending in self._waiting:
            snapshot = pending.settle()
            if snapshot is None:
                waiting.append((event, pending))
            else:
                out.append(dataclasses.replace(event, snapshot=snapshot))
        self._waiting = waiting
        return tuple(out)

    def _ended(self, events: tuple[TrackEvent, ...]) -> tuple[TrackEvent, ...]:
        """`events` with their snapshots, but for those held back until written."""
        out = []
        for event in events:
            snapshot = self._snapshot(event) if event.kind == "ended" else None
            if snapshot is not None and self.writer is not None:
                pending = self.writer.submit(snapshot)
                snapshot = pending.settle()  # lost at once, or None: being written
                if snapshot is None:
                    self._waiting.append((event, pending))
                    continue
            if snapshot is not None:
                event = dataclasses.replace(event, snapshot=snapshot)
            out.append(event)
        return tuple(out)

    def _snapshot(self, event: TrackEvent) -> Snapshot | None:
        """The snapshot of an ended track (none when its best box was outside the frame);
        its pixels are let go by the stage."""
        best = self._best.pop(event.track.track_id, None)
        if best is None:
            return None
        whole: npt.NDArray[np.uint8] | bytes | None = None
        if best.frame is not None:
            held = self._frames[best.frame]
            whole = held.pixels if held.pixels is not None else held.jpeg
            self._release(best)
        if best.crop is None or not best.crop.size:
            return None
        name = snapshot_name(self.camera_id, event.track.track_id, event.track.first_time)
        return Snapshot(
            frame_index=best.frame_index,
            box=best.box,
            crop=best.crop,
            directory=self.directory,
            name=name,
            frame=whole,
            frame_name=None if whole is None else frame_name(name),
        )
