"""Online IoU tracker (Bochinski, Eiselein, Sikora, AVSS 2017) with gap bridging.

"High-Speed Tracking-by-Detection Without Using Image Information": boxes are linked
from frame to frame by overlap alone. This is the online form of that tracker, one
instance per camera, extended so that a track outlives missed detections: its box is
carried forward at constant velocity and re-matched when the object is detected again.
See docs/tracking.md for the parameters, their trade-offs and the measurements behind the
defaults.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from pipeline.types import UNTRACKED, Detections, Frame, TrackEvent, TrackSummary

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

POSITION_GAIN = 0.3
"""Weight of a new detection in a track's box estimate (the rest is the prediction)."""
VELOCITY_GAIN = 0.1
"""Weight of a new detection's evidence in a track's velocity estimate.

Detected boxes jitter by a few pixels a frame, as much as people move; a track's box and
velocity are smoothed (an alpha-beta filter: a Kalman filter with constant gains, on the
box centre, the size held) so that a gap is bridged along the walking direction rather
than along the last jitter. Both gains were chosen by measurement (docs/tracking.md).
"""

# The tracker keeps one float64 row per live track (frame numbers and ids are exact in
# float64) and updates the rows it touches with one affine map per frame. Its cost is
# numpy's per-call overhead, not arithmetic, so fewer, larger calls are what make it fast.
_STATE = slice(0, 6)  # filter state at the last frame: box x1, y1, x2, y2; centre vx, vy
_LAST = slice(6, 11)  # last matched detection: x1, y1, x2, y2, score
_BEST = slice(11, 16)  # best-scoring matched detection, same layout
_BEST_SCORE = 15
_FIRST_TIME = 16  # Frame.wall_time of the first and the last detection
_LAST_TIME = 17
_FIRST = 18  # Frame.index of the first and the last detection
_SEEN = 19
_HITS = 20  # detections matched
_LABEL = 21
_ID = 22  # track id, UNTRACKED while tentative
_MAX_GAP = 23  # frames the track may go undetected: 0 while tentative, then max_age
_DEADLINE = 24  # _SEEN + _MAX_GAP: the last frame at which the track is alive
_COLUMNS = 25

# A detection as the update sees it, one float64 row: box, score, label, then the frame's
# wall time and index and a 1, so that an affine map of a row is a matrix product.
_DET_BOX = slice(0, 4)
_DET_BOX_SCORE = slice(0, 5)  # the layout of _LAST and _BEST
_DET_SCORE = 4
_DET_LABEL = 5
_DET_TIME = 6
_DET_FRAME = 7
_DET_ONE = 8
_DET_COLUMNS = 9


def _new_track_map() -> FloatArray:
    """[_DET_COLUMNS, _COLUMNS]: detection row @ map = the row of a track it starts."""
    start = np.zeros((_DET_COLUMNS, _COLUMNS))
    start[_DET_BOX, 0:4] = np.eye(4)  # the box; no velocity yet
    for cols in (_LAST, _BEST):
        start[_DET_BOX_SCORE, cols] = np.eye(5)
    start[_DET_TIME, [_FIRST_TIME, _LAST_TIME]] = 1.0
    start[_DET_FRAME, [_FIRST, _SEEN, _DEADLINE]] = 1.0
    start[_DET_ONE, _HITS] = 1.0
    start[_DET_LABEL, _LABEL] = 1.0
    start[_DET_ONE, _ID] = UNTRACKED
    return start


_NEW_TRACK = _new_track_map()


@lru_cache(maxsize=64)
def _step_maps(
    dt: int, position_gain: float, velocity_gain: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The maps of a step of `dt` frames: (predict [6, 6], keep [_COLUMNS, _COLUMNS],
    take [_DET_COLUMNS, _COLUMNS]).

    Every track's state moves to `state @ predict`; a track matched to detection `det`
    becomes `row @ keep + det @ take`: the filter's correction (state + gain × (box −
    predicted box)), last detection, time, frame, hit count and deadline at once.
    """
    move = np.zeros((2, 4))
    move[0, 0::2] = move[1, 1::2] = 1.0  # vx moves x1 and x2, vy moves y1 and y2
    predict = np.eye(6)
    predict[4:, :4] = dt * move
    gain = np.zeros((4, 6))  # residual [4] @ gain = state correction [6]
    gain[:, :4] = position_gain * np.eye(4)
    gain[:, 4:] = velocity_gain / (2 * dt) * move.T  # the mean of both corners' residuals

    keep = np.eye(_COLUMNS)
    keep[0:4, _STATE] -= gain  # state - box @ gain ...
    take = np.zeros((_DET_COLUMNS, _COLUMNS))
    take[_DET_BOX, _STATE] = gain  # ... + detected box @ gain
    for col in (_LAST, _LAST_TIME, _SEEN, _DEADLINE):
        keep[col, col] = 0.0  # replaced
    take[_DET_BOX_SCORE, _LAST] = np.eye(5)
    take[_DET_TIME, _LAST_TIME] = 1.0
    take[_DET_FRAME, [_SEEN, _DEADLINE]] = 1.0
    keep[_MAX_GAP, _DEADLINE] = 1.0
    take[_DET_ONE, _HITS] = 1.0
    return predict, keep, take


class IoUTracker:
    """Links one camera's detections into tracks by IoU with each track's predicted box.

    Per call of `update` (one detected frame):

    1. Detections scoring below `sigma_l` are ignored (returned with id -1).
    2. Every live track's box is predicted at this frame at constant velocity.
    3. The IoU matrix of predicted boxes × detections is computed at once, pairs of
       different classes are zeroed, and pairs are assigned greedily by descending IoU over
       the whole matrix (`greedy_assignment`), keeping pairs with IoU >= `sigma_iou`.
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
        self._labels: set[int] = set()  # classes seen; one class needs no class check
        self._tracks: FloatArray = np.zeros((0, _COLUMNS))  # [T, _COLUMNS], oldest first
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
        boxes, scores, labels = detections.xyxy, detections.score, detections.label
        tracked = None
        if self.sigma_l > 0.0:
            # Only the detections we track take part; `tracked` maps back to input rows.
            tracked = (scores >= self.sigma_l).nonzero()[0]
            boxes, scores, labels = (
                boxes.take(tracked, 0),
                scores.take(tracked),
                labels.take(tracked),
            )
        if len(self._labels) < 2:
            self._labels.update(labels.tolist())
        det = np.empty((len(scores), _DET_COLUMNS))
        det[:, _DET_BOX] = boxes
        det[:, _DET_SCORE] = scores
        det[:, _DET_LABEL] = labels
        det[:, _DET_TIME:] = (frame.wall_time, frame.index, 1.0)
        ids = self._track(det, frame.index, previous)
        if tracked is None:
            return detections.with_track_ids(ids.astype(np.int64))
        track_ids = np.full(len(detections), UNTRACKED, dtype=np.int64)
        track_ids[tracked] = ids
        return detections.with_track_ids(track_ids)

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
        for row in self._tracks[self._tracks[:, _ID] != UNTRACKED]:
            self._events.append(TrackEvent("ended", self._summary(row)))
        self._clear()
        return self.pop_events()

    def reset(self) -> None:
        """Forget all tracks and queued events without emitting any; ids keep increasing."""
        self._events = []
        self._clear()

    def _clear(self) -> None:
        self._tracks = np.zeros((0, _COLUMNS))
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

    def _track(self, det: FloatArray, now: int, previous: int | None) -> FloatArray:
        """Match, extend, expire and start tracks with the detections `det` of frame `now`.

        Returns the detections' track ids, float64 [D] (-1 for tentative tracks).
        """
        ids = np.empty(len(det))
        ids.fill(UNTRACKED)
        matched: list[int] = []
        if len(self._tracks):
            assert previous is not None  # the tracks are cleared with it
            step = now - previous
            predict, keep, take = _step_maps(step, POSITION_GAIN, VELOCITY_GAIN)
            tracks = self._tracks
            tracks[:, _STATE] = predicted = tracks[:, _STATE] @ predict
            if len(det):
                iou = box_iou(predicted[:, :4], det[:, _DET_BOX])
                if len(self._labels) > 1:
                    iou *= tracks[:, _LABEL, None] == det[:, _DET_LABEL]
                rows, cols = greedy_assignment(iou, self.sigma_iou)
                if len(rows):
                    ids[cols] = self._extend(rows, det.take(cols, 0), keep, take)
                    matched = cols.tolist()
            self._expire(now)
        if not matched:
            if len(det):
                ids[:] = self._start(det)
        elif len(matched) < len(det):
            taken = set(matched)
            new_cols = [k for k in range(len(det)) if k not in taken]
            ids[new_cols] = self._start(det.take(new_cols, 0))
        return ids

    def _extend(
        self, rows: IndexArray, det: FloatArray, keep: FloatArray, take: FloatArray
    ) -> FloatArray:
        """Give tracks `rows` their detections `det` [M, _DET_COLUMNS]; confirm the ready.

        Returns the tracks' ids, float64 [M] (-1 for tentative ones).
        """
        old = self._tracks.take(rows, 0)
        m = old @ keep + det @ take  # [M, _COLUMNS]
        # Tentative tracks are few; a frame without any needs neither check below. A track
        # with one detection is tentative unless t_min is 1.
        tentative = (old[:, _ID] == UNTRACKED).nonzero()[0].tolist()
        if (tentative or self.t_min == 1) and len(
            fresh := (old[:, _HITS] == 1).nonzero()[0]
        ):
            # A track's second detection sets its box and velocity outright: smoothing
            # from no velocity at all would lag behind anyone walking.
            box = det[fresh, _DET_BOX]
            shift = box - old[fresh, 0:4]  # its first box: a track without velocity stays put
            gap = det[fresh, _DET_FRAME, None] - old[fresh, _SEEN, None]
            m[fresh, 0:4] = box
            m[fresh, 4:6] = (shift[:, 0:2] + shift[:, 2:4]) / (2 * gap)
        better = det[:, _DET_SCORE, None] > m[:, _BEST_SCORE, None]
        np.copyto(m[:, _BEST], det[:, _DET_BOX_SCORE], where=better)
        for k in tentative:  # m keeps old's ids
            self._confirm_if_ready(m[k])
        self._tracks[rows] = m
        return m[:, _ID]

    def _start(self, det: FloatArray) -> FloatArray:
        """Start a tentative track per detection of `det` [K, _DET_COLUMNS].

        Returns their ids, float64 [K]: -1 unless `t_min` is 1 and the score reaches `sigma_h`.
        """
        start = det @ _NEW_TRACK
        if self.t_min == 1:
            for row in start:
                self._confirm_if_ready(row)
        self._tracks = np.concatenate((self._tracks, start))
        return start[:, _ID]

    def _confirm_if_ready(self, row: FloatArray) -> None:
        """Give the tentative track `row` (a view, changed in place) an id if it is ready."""
        if row[_HITS] >= self.t_min and row[_BEST_SCORE] >= self.sigma_h:
            self._last_id += 1
            row[_ID] = self._last_id
            row[_MAX_GAP] = self.max_age
            row[_DEADLINE] = row[_SEEN] + self.max_age
            self._events.append(TrackEvent("started", self._summary(row)))

    def _expire(self, now: int) -> None:
        """Drop tracks whose time is up: tentative ones not matched at frame `now`, and
        confirmed ones more than `max_age` frames past their last detection ("ended")."""
        expired = self._tracks[:, _DEADLINE] < now
        dead = expired.nonzero()[0]
        if len(dead) == 0:
            return
        for row in self._tracks.take(dead, 0):
            if row[_ID] != UNTRACKED:
                self._events.append(TrackEvent("ended", self._summary(row)))
        self._tracks = self._tracks.compress(~expired, 0)

    def _summary(self, row: FloatArray) -> TrackSummary:
        return TrackSummary(
            camera_id=self.camera_id,
            track_id=int(row[_ID]),
            label=int(row[_LABEL]),
            first_frame=int(row[_FIRST]),
            last_frame=int(row[_SEEN]),
            first_time=float(row[_FIRST_TIME]),
            last_time=float(row[_LAST_TIME]),
            frames=int(row[_HITS]),
            best_score=float(row[_BEST_SCORE]),
            best_box=_box(row[_BEST]),
            last_box=_box(row[_LAST]),
        )


def box_iou(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> FloatArray:
    """IoU of every box of `a` [N, 4] with every box of `b` [M, 4] (xyxy); float64 [N, M].

    Pairs of boxes without area get 0. Plain numpy
    rather than `torchvision.ops.box_iou`: for the tens of boxes of a frame, the tensor
    round trip costs ten times the arithmetic.
    """
    at, bt = a.T.copy(), b.T.copy()  # [4, N], [4, M]: faster small numpy calls
    lt = np.maximum(at[:2, :, None], bt[:2, None, :])  # [2, N, M]
    wh = np.minimum(at[2:, :, None], bt[2:, None, :])
    wh -= lt
    np.maximum(wh, 0.0, out=wh)
    inter = wh[0] * wh[1]
    size_a, size_b = at[2:] - at[:2], bt[2:] - bt[:2]
    union = (size_a[0] * size_a[1])[:, None] + size_b[0] * size_b[1]
    union -= inter
    return inter / np.maximum(union, 1e-9, out=union)


def greedy_assignment(score: FloatArray, threshold: float) -> tuple[IndexArray, IndexArray]:
    """Pairs (row, col) taken greedily by descending score, each row and column once.

    The same pairs as sorting all pairs with score >= `threshold` by descending score and
    taking each pair whose row and column are still free, but vectorised: a pair that is
    the best of both its row and its column is taken by that greedy order whatever
    happens elsewhere, so all such "mutual best" pairs are taken at once, and the search
    repeats on what is left. Usually no two candidate pairs share a row or a column and
    the candidates are the answer. Ties go to the lower row, then the lower column.

    Args:
        score: float [R, C] pair scores (IoU); NaN counts as below `threshold`.
        threshold: least score of a pair that may be taken.
    Returns:
        (rows, cols): intp [M] each.
    """
    valid = score >= threshold
    rows, cols = valid.nonzero()
    row_list, col_list = rows.tolist(), cols.tolist()
    n = len(row_list)
    if n == len(set(row_list)) == len(set(col_list)):
        return rows, cols
    if threshold >= 0.0:
        # The same rounds in plain Python over the candidate pairs only: faster for the
        # few candidates of a frame than numpy calls over the whole matrix.
        return _mutual_best_rounds(score[rows, cols].tolist(), row_list, col_list)
    s = np.where(valid, score, -1.0)
    row_ids = np.arange(s.shape[0])
    taken_rows: list[IndexArray] = []
    taken_cols: list[IndexArray] = []
    while True:
        best_col = s.argmax(axis=1)  # [R]
        mutual = (s[row_ids, best_col] >= 0.0) & (s.argmax(axis=0)[best_col] == row_ids)
        rows = mutual.nonzero()[0]
        if len(rows) == 0:
            break
        cols = best_col[rows]
        taken_rows.append(rows)
        taken_cols.append(cols)
        s[rows, :] = -1.0
        s[:, cols] = -1.0
        if s.max() < 0.0:
            break
    return np.concatenate(taken_rows), np.concatenate(taken_cols)


def _mutual_best_rounds(
    values: list[float], rows: list[int], cols: list[int]
) -> tuple[IndexArray, IndexArray]:
    """`greedy_assignment`'s rounds over candidate pairs given in row-major order."""
    pairs = list(zip(values, rows, cols, strict=True))
    taken_rows: list[int] = []
    taken_cols: list[int] = []
    while pairs:
        row_best: dict[int, tuple[float, int]] = {}
        col_best: dict[int, tuple[float, int]] = {}
        for value, row, col in pairs:  # strict ">": ties keep the lower column, row
            if row not in row_best or value > row_best[row][0]:
                row_best[row] = (value, col)
            if col not in col_best or value > col_best[col][0]:
                col_best[col] = (value, row)
        mutual = sorted(r for r, (_, c) in row_best.items() if col_best[c][1] == r)
        for row in mutual:
            taken_rows.append(row)
            taken_cols.append(row_best[row][1])
        done_rows, done_cols = set(mutual), {row_best[r][1] for r in mutual}
        pairs = [p for p in pairs if p[1] not in done_rows and p[2] not in done_cols]
    return np.array(taken_rows, dtype=np.intp), np.array(taken_cols, dtype=np.intp)


def _box(row: FloatArray) -> tuple[float, float, float, float]:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
