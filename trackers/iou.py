"""Online IoU tracker (Bochinski, Eiselein, Sikora, AVSS 2017) with gap bridging.

"High-Speed Tracking-by-Detection Without Using Image Information": boxes are linked
from frame to frame by overlap alone. This is the online form of that tracker, one
instance per camera, extended so that a track outlives missed detections: its box is
carried forward at constant velocity and re-matched when the object is detected again.
See docs/tracking.md for the parameters, their trade-offs and the measurements behind the
defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt

from pipeline.boxes import box_iou, greedy_assignment
from pipeline.types import UNTRACKED, Detections, Frame, TrackEvent, TrackSummary

FloatArray = npt.NDArray[np.float64]
Box = tuple[float, float, float, float]

POSITION_GAIN = 0.3
"""Weight of a new detection in a track's box estimate (the rest is the prediction)."""
VELOCITY_GAIN = 0.1
"""Weight of a new detection's evidence in a track's velocity estimate.

Detected boxes jitter by a few pixels a frame, as much as people move; a track's box and
velocity are smoothed (an alpha-beta filter: a Kalman filter with constant gains, on the
box centre, the size held) so that a gap is bridged along the walking direction rather
than along the last jitter. Both gains were chosen by measurement (docs/tracking.md).
"""

DENSE_PAIRS = 600
"""Frames with more (track, detection) pairs than this get their IoUs from one numpy call.

A frame holds a few tens of boxes: scalar Python over plain floats is cheaper than numpy's
fixed cost per call for them, and numpy wins only in crowds (benchmarks/tracking.py).
"""


class _Track:
    """One track. Plain Python floats: the tracker's cost is per box, not per array."""

    __slots__ = (
        "best",
        "best_frame",
        "deadline",
        "first_frame",
        "first_time",
        "frame",
        "hits",
        "id",
        "label",
        "last",
        "last_time",
        "max_gap",
        "seen",
        "vx",
        "vy",
        "x1",
        "x2",
        "y1",
        "y2",
    )

    def __init__(self, box: Box, score: float, label: int, frame: Frame) -> None:
        # Filter state: the box estimate at frame `frame` and the centre's velocity in
        # pixels per frame (the box size is held).
        self.x1, self.y1, self.x2, self.y2 = box
        self.vx = self.vy = 0.0
        self.frame = frame.index
        self.last = self.best = (box, score)  # last and best-scoring matched detection
        self.best_frame = frame.index
        self.first_time = self.last_time = frame.wall_time
        self.first_frame = self.seen = frame.index  # first and last detected frame
        self.hits = 1  # detections matched
        self.label = label
        self.id = UNTRACKED  # until confirmed
        self.max_gap = 0  # frames it may go undetected: 0 while tentative, then max_age
        self.deadline = frame.index  # seen + max_gap: the last frame it is alive at

    def predict(self, index: int) -> Box:
        """The box estimate at frame `index`, moved on at constant velocity."""
        dt = index - self.frame
        dx, dy = self.vx * dt, self.vy * dt
        return (self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def take(self, box: Box, score: float, frame: Frame, step: int) -> None:
        """Correct the estimate with the matched detection `box` of `frame`; `step`: frames
        since the tracker's previous call."""
        now = frame.index
        if self.hits == 1:
            # The second detection sets box and velocity outright: smoothing from no
            # velocity at all would lag behind anyone walking.
            gap = 2 * (now - self.seen)
            self.vx = ((box[0] - self.x1) + (box[2] - self.x2)) / gap
            self.vy = ((box[1] - self.y1) + (box[3] - self.y2)) / gap
            self.x1, self.y1, self.x2, self.y2 = box
        else:
            px1, py1, px2, py2 = self.predict(now)
            r1, s1, r2, s2 = box[0] - px1, box[1] - py1, box[2] - px2, box[3] - py2
            self.x1 = px1 + POSITION_GAIN * r1
            self.y1 = py1 + POSITION_GAIN * s1
            self.x2 = px2 + POSITION_GAIN * r2
            self.y2 = py2 + POSITION_GAIN * s2
            gain = VELOCITY_GAIN / (2 * step)  # the mean of both corners' residuals
            self.vx += gain * (r1 + r2)
            self.vy += gain * (s1 + s2)
        self.frame = self.seen = now
        self.deadline = now + self.max_gap
        self.last_time = frame.wall_time
        self.hits += 1
        self.last = (box, score)
        if score > self.best[1]:
            self.best = self.last
            self.best_frame = now

    def summary(self, camera_id: str) -> TrackSummary:
        return TrackSummary(
            camera_id=camera_id,
            track_id=self.id,
            label=self.label,
            first_frame=self.first_frame,
            last_frame=self.seen,
            first_time=self.first_time,
            last_time=self.last_time,
            frames=self.hits,
            best_score=self.best[1],
            best_box=self.best[0],
            last_box=self.last[0],
            best_frame=self.best_frame,
        )


class IoUTracker:
    """Links one camera's detections into tracks by IoU with each track's predicted box.

    Per call of `update` (one detected frame):

    1. Detections scoring below `sigma_l` are ignored (returned with id -1).
    2. Every live track's box is predicted at this frame at constant velocity.
    3. The IoU of every predicted box with every detection of its class is computed
       (`overlapping_pairs`), and the pairs with IoU >= `sigma_iou` are assigned greedily
       by descending IoU over the whole frame (`greedy_assignment`).
    4. A matched track takes its detection: its box and velocity move towards it (an
       alpha-beta filter). An unmatched tentative track is dropped; an unmatched confirmed
       track stays alive, its box moving on at constant velocity, until more than
       `max_age` frames have passed since its last detection, then ends ("ended" event).
       `max_age=0` is the paper's tracker: a track ends at its first miss.
    5. Unmatched detections start tentative tracks. A track is confirmed, and given the next
       id of this camera (1, 2, ...; never reused), as soon as it holds at least `t_min`
       detections and its best score is >= `sigma_h` ("started" event). Boxes of tentative
       tracks carry id -1.

    Motion and ages are measured in `Frame.index` differences, so the tracker may be called
    on every N-th frame only (detect every N frames): boxes move N frames of motion between
    calls and a track bridges `max_age` frames of video, not `max_age` calls (checked at the
    frames it is called with). Call it only with frames that went through the detector: a
    frame passed with no detections is a frame in which nobody was seen. Frames must come
    in increasing index order.

    Args:
        camera_id: the camera whose frames this instance tracks.
        sigma_l: detections scoring below this are never tracked, in [0, 1].
        sigma_h: a track needs one detection scoring at least this to be confirmed,
            in [sigma_l, 1].
        sigma_iou: least IoU between a track's predicted box and a detection to match,
            in (0, 1].
        t_min: least number of detections before a track is confirmed, >= 1.
        max_age: frames a confirmed track survives without a detection, >= 0.
    """

    def __init__(
        self,
        camera_id: str,
        *,
        sigma_l: float = 0.0,
        sigma_h: float = 0.5,
        sigma_iou: float = 0.3,
        t_min: int = 2,
        max_age: int = 30,
    ) -> None:
        if not isinstance(camera_id, str) or not camera_id:
            raise ValueError(f"IoUTracker camera_id must be a non-empty string, got {camera_id!r}")
        if not 0.0 <= sigma_l <= 1.0:
            raise ValueError(f"IoUTracker sigma_l must be in [0, 1], got {sigma_l}")
        if not sigma_l <= sigma_h <= 1.0:
            raise ValueError(f"IoUTracker sigma_h must be in [sigma_l={sigma_l}, 1], got {sigma_h}")
        if not 0.0 < sigma_iou <= 1.0:
            raise ValueError(f"IoUTracker sigma_iou must be in (0, 1], got {sigma_iou}")
        for name, value, least in (("t_min", t_min, 1), ("max_age", max_age, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"IoUTracker {name} must be an integer >= {least}, got {value!r}")
        self.camera_id = camera_id
        self.sigma_l = float(sigma_l)
        self.sigma_h = float(sigma_h)
        self.sigma_iou = float(sigma_iou)
        self.t_min = t_min
        self.max_age = max_age
        self._events: list[TrackEvent] = []
        self._last_id = 0
        self._tracks: list[_Track] = []  # oldest first
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
        previous = self._last_frame
        self._check_frame(frame)
        scores: list[float] = detections.score.tolist()
        rows: Sequence[int] = range(len(scores))  # the detections tracked
        if self.sigma_l > 0.0:
            rows = [k for k in rows if scores[k] >= self.sigma_l]
        boxes: list[list[float]] = detections.xyxy.tolist()
        labels: list[int] = detections.label.tolist()
        dets = cast("list[_Detection]", [(tuple(boxes[k]), scores[k], labels[k]) for k in rows])
        track_ids = [UNTRACKED] * len(scores)
        step = frame.index - previous if previous is not None else 0
        for k, track_id in zip(rows, self._track(dets, frame, step), strict=True):
            track_ids[k] = track_id
        return detections.with_track_ids(np.array(track_ids, dtype=np.int64))

    def pop_events(self) -> list[TrackEvent]:
        """The "started"/"ended" events queued since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def finish(self) -> list[TrackEvent]:
        """End the stream: queued events plus an "ended" event per confirmed live track.

        Live tracks include those bridging a gap. Tentative tracks are forgotten. The tracker
        can be used again afterwards (for a new stream, whose frame indices may start over);
        ids keep increasing.
        """
        for track in self._tracks:
            if track.id != UNTRACKED:
                self._events.append(TrackEvent("ended", track.summary(self.camera_id)))
        self._clear()
        return self.pop_events()

    def reset(self) -> None:
        """Forget all tracks and queued events without emitting any; ids keep increasing."""
        self._events = []
        self._clear()

    def _clear(self) -> None:
        self._tracks = []
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

    def _track(self, dets: list[_Detection], frame: Frame, step: int) -> list[int]:
        """Match, extend, expire and start tracks with the detections `dets` of `frame`;
        `step`: frames since the previous call. Returns the detections' track ids."""
        ids = [UNTRACKED] * len(dets)
        unmatched = [True] * len(dets)
        if self._tracks:
            tracks = self._tracks
            pairs = overlapping_pairs(
                [track.predict(frame.index) for track in tracks],
                [track.label for track in tracks],
                dets,
                self.sigma_iou,
            )
            # In track order (oldest first), so that ids are given oldest track first.
            for t, d in sorted(greedy_assignment(pairs)):
                track = tracks[t]
                box, score, _ = dets[d]
                track.take(box, score, frame, step)
                if track.id == UNTRACKED:
                    self._confirm_if_ready(track)
                ids[d] = track.id
                unmatched[d] = False
            self._expire(frame.index)
        for d, (box, score, label) in enumerate(dets):
            if unmatched[d]:
                track = _Track(box, score, label, frame)
                if self.t_min == 1:
                    self._confirm_if_ready(track)
                self._tracks.append(track)
                ids[d] = track.id
        return ids

    def _confirm_if_ready(self, track: _Track) -> None:
        """Give the tentative `track` an id if it is ready."""
        if track.hits >= self.t_min and track.best[1] >= self.sigma_h:
            self._last_id += 1
            track.id = self._last_id
            track.max_gap = self.max_age
            track.deadline = track.seen + self.max_age
            self._events.append(TrackEvent("started", track.summary(self.camera_id)))

    def _expire(self, now: int) -> None:
        """Drop tracks whose time is up: tentative ones not matched at frame `now`, and
        confirmed ones more than `max_age` frames past their last detection ("ended")."""
        alive = []
        for track in self._tracks:
            if track.deadline >= now:
                alive.append(track)
            elif track.id != UNTRACKED:
                self._events.append(TrackEvent("ended", track.summary(self.camera_id)))
        self._tracks = alive


_Detection = tuple[Box, float, int]
"""A detection as the tracker sees it: box (x1, y1, x2, y2), score, label."""


def overlapping_pairs(
    boxes: list[Box], labels: list[int], dets: list[_Detection], threshold: float
) -> list[tuple[float, int, int]]:
    """(-IoU, box index, detection index) for every pair of a box of `boxes` and a
    detection of the same label whose IoU is >= `threshold` (> 0).

    The IoU is negated so that sorting the pairs puts them in greedy order.
    """
    if len(boxes) * len(dets) > DENSE_PAIRS:
        overlap = box_iou(np.array(boxes), np.array([box for box, _, _ in dets]))
        overlap *= np.array(labels)[:, None] == np.array([label for _, _, label in dets])
        rows, cols = (overlap >= threshold).nonzero()
        values: list[float] = (-overlap[rows, cols]).tolist()
        return list(zip(values, rows.tolist(), cols.tolist(), strict=True))
    pairs = []
    for d, ((bx1, by1, bx2, by2), _, label) in enumerate(dets):
        area = (bx2 - bx1) * (by2 - by1)
        for t, (ax1, ay1, ax2, ay2) in enumerate(boxes):
            # min and max by hand: builtin calls cost more than the arithmetic here.
            w = (ax2 if ax2 < bx2 else bx2) - (ax1 if ax1 > bx1 else bx1)
            if w <= 0.0:
                continue
            h = (ay2 if ay2 < by2 else by2) - (ay1 if ay1 > by1 else by1)
            if h <= 0.0 or labels[t] != label:
                continue
            inter = w * h
            iou = inter / ((ax2 - ax1) * (ay2 - ay1) + area - inter)
            if iou >= threshold:
                pairs.append((-iou, t, d))
    return pairs
