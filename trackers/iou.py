"""Online IoU tracker (Bochinski, Eiselein, Sikora, AVSS 2017).

"High-Speed Tracking-by-Detection Without Using Image Information": boxes are linked
from frame to frame by overlap alone. This is the online form of that tracker, one
instance per camera; see docs/tracking.md for the parameters and their trade-offs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torchvision.ops import box_iou

from pipeline.types import UNTRACKED, Detections, Frame, TrackEvent, TrackSummary

Box = tuple[float, float, float, float]


@dataclass
class _Track:
    """State of one active track, tentative (`track_id is None`) or confirmed."""

    label: int
    first_frame: int
    first_time: float
    last_frame: int
    last_time: float
    last_box: Box
    best_score: float
    best_box: Box
    frames: int = 1
    track_id: int | None = None

    @classmethod
    def start(cls, frame: Frame, box: Box, score: float, label: int) -> _Track:
        return cls(
            label=label,
            first_frame=frame.index,
            first_time=frame.wall_time,
            last_frame=frame.index,
            last_time=frame.wall_time,
            last_box=box,
            best_score=score,
            best_box=box,
        )

    @property
    def confirmed(self) -> bool:
        return self.track_id is not None

    def extend(self, frame: Frame, box: Box, score: float) -> None:
        """Add the detection matched in `frame`."""
        self.last_frame = frame.index
        self.last_time = frame.wall_time
        self.last_box = box
        self.frames += 1
        if score > self.best_score:
            self.best_score = score
            self.best_box = box

    def summary(self, camera_id: str) -> TrackSummary:
        if self.track_id is None:
            raise RuntimeError("a tentative track has no summary; confirm it first")
        return TrackSummary(
            camera_id=camera_id,
            track_id=self.track_id,
            label=self.label,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            first_time=self.first_time,
            last_time=self.last_time,
            frames=self.frames,
            best_score=self.best_score,
            best_box=self.best_box,
            last_box=self.last_box,
        )


class IoUTracker:
    """Links one camera's detections into tracks by IoU with each track's last box.

    Per frame: detections with score < `sigma_l` are ignored. Each active track is matched
    to at most one detection of the same class with IoU >= `sigma_iou`; the assignment is
    greedy by descending IoU over the frame's whole track×detection IoU matrix (ties: older
    track, then lower detection index), which is the paper's greedy matching made
    order-independent. Unmatched detections start tentative tracks. A track is confirmed,
    and given the next id of this camera (1, 2, ...; never reused), as soon as it holds at
    least `t_min` detections and its best score is >= `sigma_h`. A track not matched in a
    frame ends at once (no gap bridging): a confirmed one emits an "ended" event, a
    tentative one is dropped.

    Args:
        camera_id: the camera whose frames this instance tracks.
        sigma_l: detections scoring below this are never tracked, in [0, 1].
        sigma_h: a track needs one detection scoring at least this to be confirmed,
            in [sigma_l, 1].
        sigma_iou: least IoU between a track's last box and a detection to match, in (0, 1].
        t_min: least number of detections before a track is confirmed, >= 1.
    """

    def __init__(
        self,
        camera_id: str,
        *,
        sigma_l: float = 0.0,
        sigma_h: float = 0.5,
        sigma_iou: float = 0.3,
        t_min: int = 3,
    ) -> None:
        if not isinstance(camera_id, str) or not camera_id:
            raise ValueError(f"IoUTracker camera_id must be a non-empty string, got {camera_id!r}")
        if not 0.0 <= sigma_l <= 1.0:
            raise ValueError(f"IoUTracker sigma_l must be in [0, 1], got {sigma_l}")
        if not sigma_l <= sigma_h <= 1.0:
            raise ValueError(f"IoUTracker sigma_h must be in [sigma_l={sigma_l}, 1], got {sigma_h}")
        if not 0.0 < sigma_iou <= 1.0:
            raise ValueError(f"IoUTracker sigma_iou must be in (0, 1], got {sigma_iou}")
        if isinstance(t_min, bool) or not isinstance(t_min, int) or t_min < 1:
            raise ValueError(f"IoUTracker t_min must be an integer >= 1, got {t_min!r}")
        self.camera_id = camera_id
        self.sigma_l = float(sigma_l)
        self.sigma_h = float(sigma_h)
        self.sigma_iou = float(sigma_iou)
        self.t_min = t_min
        self._tracks: list[_Track] = []
        self._events: list[TrackEvent] = []
        self._last_id = 0
        self._last_frame: int | None = None

    def update(self, detections: Detections, frame: Frame) -> Detections:
        """Track one frame's boxes.

        Returns the same boxes in the same order (a new `Detections`), with `track_id` set
        to the id of their confirmed track, or -1 (`UNTRACKED`) for boxes below `sigma_l`
        and boxes of tracks not confirmed yet. Events are queued for `pop_events`.

        Raises:
            ValueError: `frame` is from another camera, or its index is not greater than the
                previous frame's (since the last `finish`/`reset`).
        """
        self._check_frame(frame)
        n = len(detections)
        track_ids = np.full(n, UNTRACKED, dtype=np.int64)
        # Only the detections we track take part; `cand` maps back to input rows.
        cand = np.flatnonzero(detections.score >= self.sigma_l)
        boxes = detections.xyxy[cand]
        scores = detections.score[cand]
        labels = detections.label[cand]

        track_det = self._match(boxes, labels)  # [T] row of `boxes` per track, or -1
        # (track, input row) of every track alive after this frame, oldest track first.
        alive: list[tuple[_Track, int]] = []
        for track, i in zip(self._tracks, track_det, strict=True):
            if i >= 0:
                track.extend(frame, _box(boxes[i]), float(scores[i]))
                alive.append((track, int(cand[i])))
            elif track.confirmed:
                self._events.append(TrackEvent("ended", self._summary(track)))
        unmatched = np.ones(len(cand), dtype=bool)
        unmatched[track_det[track_det >= 0]] = False
        for i in np.flatnonzero(unmatched):
            track = _Track.start(frame, _box(boxes[i]), float(scores[i]), int(labels[i]))
            alive.append((track, int(cand[i])))
        self._tracks = [track for track, _ in alive]

        for track, row in alive:
            if track.track_id is None and self._confirmable(track):
                self._last_id += 1
                track.track_id = self._last_id
                self._events.append(TrackEvent("started", self._summary(track)))
            if track.track_id is not None:
                track_ids[row] = track.track_id
        return detections.with_track_ids(track_ids)

    def pop_events(self) -> list[TrackEvent]:
        """The "started"/"ended" events queued since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def finish(self) -> list[TrackEvent]:
        """End the stream: queued events plus an "ended" event per confirmed active track.

        Tentative tracks are forgotten. The tracker can be used again afterwards (for a new
        stream, whose frame indices may start over); ids keep increasing.
        """
        self._events.extend(
            TrackEvent("ended", self._summary(t)) for t in self._tracks if t.confirmed
        )
        self._tracks = []
        self._last_frame = None
        return self.pop_events()

    def reset(self) -> None:
        """Forget all tracks and queued events without emitting any; ids keep increasing."""
        self._tracks = []
        self._events = []
        self._last_frame = None

    def _check_frame(self, frame: Frame) -> None:
        if frame.camera_id != self.camera_id:
            raise ValueError(
                f"IoUTracker for camera {self.camera_id!r} got a frame of camera "
                f"{frame.camera_id!r}; use one tracker per camera"
            )
        if self._last_frame is not None and frame.index <= self._last_frame:
            raise ValueError(
                f"IoUTracker for camera {self.camera_id!r} got frame {frame.index} after frame "
                f"{self._last_frame}; frames must come in increasing index order "
                "(call finish() or reset() before a new stream)"
            )
        self._last_frame = frame.index

    def _match(
        self, boxes: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.intp]:
        """Greedy assignment of active tracks to detections, by descending IoU.

        Args:
            boxes: float32 [D, 4] tracked detections (xyxy).
            labels: int64 [D] their classes.
        Returns:
            intp [T]: for each track of `self._tracks`, the row of its detection, -1 if none.
        """
        track_det = np.full(len(self._tracks), -1, dtype=np.intp)
        if not self._tracks or len(boxes) == 0:
            return track_det
        track_boxes = np.array([t.last_box for t in self._tracks], dtype=np.float32)
        track_labels = np.array([t.label for t in self._tracks], dtype=np.int64)
        iou = box_iou(torch.tensor(track_boxes), torch.tensor(boxes)).numpy()  # [T, D]
        iou[track_labels[:, None] != labels[None, :]] = -1.0
        # Only candidate pairs are visited (NaN from degenerate boxes fails `>=`).
        rows, cols = np.nonzero(iou >= self.sigma_iou)
        order = np.argsort(-iou[rows, cols], kind="stable")
        det_taken = np.zeros(len(boxes), dtype=bool)
        for r, c in zip(rows[order], cols[order], strict=True):
            if track_det[r] < 0 and not det_taken[c]:
                track_det[r] = c
                det_taken[c] = True
        return track_det

    def _confirmable(self, track: _Track) -> bool:
        return track.frames >= self.t_min and track.best_score >= self.sigma_h

    def _summary(self, track: _Track) -> TrackSummary:
        return track.summary(self.camera_id)


def _box(row: npt.NDArray[np.float32]) -> Box:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
