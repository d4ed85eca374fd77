"""The vocabulary every stage speaks: frames in, detections and track events out.

This is a leaf module: it imports nothing from the project, so readers, the detector,
trackers and sinks can all depend on it without depending on each other. Every type is
immutable in spirit; stages build new objects instead of changing the ones they receive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np
import numpy.typing as npt

UNTRACKED = -1
"""`Detections.track_id` of a box that belongs to no confirmed track."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        camera_id: id of the camera (from the config) the frame came from.
        index: 0-based position of the frame in its stream, counting every decoded frame.
        pts: presentation time in seconds from the start of the stream.
        wall_time: Unix time (seconds) at which the frame was decoded.
        image: RGB uint8 array, shape [H, W, 3].
        model_image: `image` already resized for the detector's network (RGB uint8
            [h, w, 3]), made on the camera's reader thread so that the detector's thread
            need not; None: the detector resizes `image` itself. Boxes are still in `image`'s
            pixels.
    """

    camera_id: str
    index: int
    pts: float
    wall_time: float
    image: npt.NDArray[np.uint8]
    model_image: npt.NDArray[np.uint8] | None = None

    def __post_init__(self) -> None:
        _check_image("Frame.image", self.image)
        if self.model_image is not None:
            _check_image("Frame.model_image", self.model_image)
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def image_for(self, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
        """The pixels to resize to `size` (h, w) for a network: `model_image` where it has
        that size (made ahead for that network), else `image`."""
        if self.model_image is not None and self.model_image.shape[:2] == size:
            return self.model_image
        return self.image


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame detected on its own (motion regions): its top left corner
    (`x`, `y`) and size, in frame pixels."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.width < 1 or self.height < 1:
            raise ValueError(f"Region must lie at x, y >= 0 with a size >= 1, got {self}")

    @property
    def area(self) -> int:
        return self.width * self.height

    def crop(self, frame: Frame) -> Frame:
        """The region's pixels as a frame of their own (a view, not a copy)."""
        if self.x + self.width > frame.width or self.y + self.height > frame.height:
            raise ValueError(f"{self} is not inside a {frame.width}x{frame.height} frame")
        image = frame.image[self.y : self.y + self.height, self.x : self.x + self.width]
        return Frame(frame.camera_id, frame.index, frame.pts, frame.wall_time, image)

    def contains(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which boxes (x1, y1, x2, y2, frame pixels) lie wholly inside the region."""
        x2, y2 = self.x + self.width, self.y + self.height
        inside_x = (xyxy[:, 0] >= self.x) & (xyxy[:, 2] <= x2)
        return inside_x & (xyxy[:, 1] >= self.y) & (xyxy[:, 3] <= y2)


@dataclass(frozen=True, eq=False)
class Detections:
    """Column-based boxes for one frame, checked on construction (those its own methods
    derive from checked columns, rows selected or new track ids, are not checked twice).

    Attributes:
        xyxy: float32 [N, 4], (x1, y1, x2, y2) in frame pixels, finite.
        score: float32 [N], confidence in [0, 1], finite.
        label: int64 [N], class index into the detector's label names.
        track_id: int64 [N], confirmed track id or `UNTRACKED` (-1).

    `track_id=None` means "not tracked yet" and is filled with -1. Index with a boolean
    mask or an integer index array to select rows; the result is a new `Detections`.
    """

    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]
    label: npt.NDArray[np.int64]
    track_id: npt.NDArray[np.int64] = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        xyxy = _column("xyxy", self.xyxy, np.float32)
        score = _column("score", self.score, np.float32)
        label = _column("label", self.label, np.int64)
        if self.track_id is None:
            track_id = np.full(len(score), UNTRACKED, dtype=np.int64)
        else:
            track_id = _column("track_id", self.track_id, np.int64)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy must have shape [N, 4], got {list(xyxy.shape)}")
        n = xyxy.shape[0]
        for name, col in (("score", score), ("label", label), ("track_id", track_id)):
            _check_rows(name, col, n)
        _check_finite("xyxy", xyxy)
        _check_finite("score", score)
        _read_only(xyxy, score, label, track_id)
        _set_columns(self, xyxy, score, label, track_id)

    @classmethod
    def _of_checked(
        cls,
        xyxy: npt.NDArray[np.float32],
        score: npt.NDArray[np.float32],
        label: npt.NDArray[np.int64],
        track_id: npt.NDArray[np.int64],
    ) -> Detections:
        """Detections of columns that hold what the constructor checks already: taken from
        a `Detections` (rows selected, or its other columns kept beside a new column
        checked on its own), so nothing is checked again; they must be read-only already.
        Only this class builds with it: every `Detections` anyone else builds goes through
        the constructor's checks, so "checked on construction" holds for all of them."""
        new = object.__new__(cls)
        _set_columns(new, xyxy, score, label, track_id)
        return new

    @classmethod
    def empty(cls) -> Detections:
        """No boxes (one shared instance: its columns are read-only, like every one's)."""
        return _EMPTY

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(
        self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice
    ) -> Detections:
        if (
            isinstance(index, np.ndarray)
            and index.dtype == np.bool_
            and index.shape != (len(self),)
        ):
            raise IndexError(
                f"boolean mask of shape {list(index.shape)} for {len(self)} detections"
            )
        columns = (self.xyxy[index], self.score[index], self.label[index], self.track_id[index])
        if isinstance(index, slice) or (isinstance(index, np.ndarray) and index.ndim == 1):
            # rows of checked columns, in their shapes: nothing to check again
            _read_only(*columns)
            return Detections._of_checked(*columns)
        return Detections(*columns)

    def with_track_ids(self, track_id: npt.NDArray[np.int64]) -> Detections:
        """These boxes with `track_id` replaced, as a new `Detections`.

        The other columns are shared, not copied: they are read-only and were checked when
        this object was built. Called on every tracked frame, so the saving counts.
        """
        track_id = _column("track_id", track_id, np.int64)
        _check_rows("track_id", track_id, len(self))
        _read_only(track_id)
        return Detections._of_checked(self.xyxy, self.score, self.label, track_id)


@dataclass(frozen=True)
class TrackSummary:
    """What is known about one confirmed track; carried by track events and stored in SQL.

    Times are Unix seconds (`Frame.wall_time`); boxes are (x1, y1, x2, y2) in frame pixels.
    """

    camera_id: str
    track_id: int
    label: int
    first_frame: int
    last_frame: int
    first_time: float
    last_time: float
    frames: int
    best_score: float
    best_box: tuple[float, float, float, float]
    last_box: tuple[float, float, float, float]
    best_frame: int = -1
    """`Frame.index` of the detection with `best_score` (-1: not known)."""


@dataclass(frozen=True)
class SnapshotLoss:
    """Why a snapshot's files were not written: `reason` in one line ("disk full: the
    file system at ..."), and whether its cause may pass (`transient`: a full disk, a disk
    that did not answer in time; the snapshots sink counts such losses and goes on)."""

    reason: str
    transient: bool


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The picture of a track's best-scoring detection, carried by its "ended" event.

    Attributes:
        frame_index: `Frame.index` of the frame the detection is in.
        box: the detection's box (x1, y1, x2, y2) in frame pixels.
        crop: RGB uint8 [h, w, 3], the box with a margin: a read-only copy of those pixels
            only, so that keeping it does not keep the frame.
        frame: the whole RGB frame (read-only, shared with the frame, not copied), or its
            JPEG bytes (when the snapshot stage held too many whole frames), or None when
            only the crop is kept.
        directory: the folder snapshot files go to.
        name: the crop's file, relative to `directory` (`<camera>/<stamp>_<track>.jpg`).
        frame_name: the whole frame's file, relative to `directory`, when `frame` is kept.
        lost: why its files could not be written (then none of them is there), or None.
    """

    frame_index: int
    box: tuple[float, float, float, float]
    crop: npt.NDArray[np.uint8]
    directory: str
    name: str
    frame: npt.NDArray[np.uint8] | bytes | None = None
    frame_name: str | None = None
    lost: SnapshotLoss | None = None

    def __post_init__(self) -> None:
        for what, image in (("crop", self.crop), ("frame", self.frame)):
            if image is not None and not isinstance(image, bytes):
                _check_image(f"Snapshot.{what}", image)
        if (self.frame is None) != (self.frame_name is None):
            raise ValueError("Snapshot.frame and Snapshot.frame_name go together")

    @property
    def path(self) -> str:
        """Where the crop is written: `directory/name`."""
        return f"{self.directory.rstrip('/')}/{self.name}"

    @property
    def frame_path(self) -> str | None:
        """Where the whole frame is written, or None."""
        if self.frame_name is None:
            return None
        return f"{self.directory.rstrip('/')}/{self.frame_name}"

    @property
    def stored_paths(self) -> tuple[str | None, str | None]:
        """(`path`, `frame_path`) as events and rows give them: both None when `lost`."""
        return (None, None) if self.lost is not None else (self.path, self.frame_path)


@dataclass(frozen=True)
class TrackEvent:
    """A confirmed track started, or a track ended (expired or its stream ended).

    An "ended" event carries the track's `snapshot` when a snapshots sink asked for them.
    """

    kind: Literal["started", "ended"]
    track: TrackSummary
    snapshot: Snapshot | None = None


Side = Literal["left", "right"]
"""A side of a line, as seen on the screen walking from its first point to its second."""


@dataclass(frozen=True)
class ZoneEvent:
    """A track entered a zone, left it, or has stayed in it past the zone's dwell alert.

    Times are Unix seconds of frames (`Frame.wall_time`); `dwell_s` is stream time (the
    frames' `pts`) from the first frame inside to the last one (so far, for "dwell").
    `at_stream_end` marks a "left" forced by the end of the stream (or a stop) while the
    track was still inside. `last_frame`/`last_time`: the last frame the track was seen
    inside (for "left", some frames before `frame`; for the others, `frame` itself).
    """

    kind: Literal["entered", "left", "dwell"]
    camera_id: str
    zone_id: str
    track_id: int
    label: int
    frame: int
    time: float
    entered_frame: int
    entered_time: float
    dwell_s: float = 0.0
    at_stream_end: bool = False
    last_frame: int | None = None
    last_time: float | None = None

    @property
    def last_seen(self) -> tuple[int, float]:
        """(`last_frame`, `last_time`); `frame` and `time` where they are not given."""
        return (
            self.frame if self.last_frame is None else self.last_frame,
            self.time if self.last_time is None else self.last_time,
        )


@dataclass(frozen=True)
class LineCrossing:
    """A track's anchor point crossed a line, from one side to the other.

    `direction` is the name the config gives to going from `from_side` to `to_side`.
    """

    camera_id: str
    line_id: str
    track_id: int
    label: int
    direction: str
    from_side: Side
    to_side: Side
    frame: int
    time: float


@dataclass(frozen=True)
class ZoneOccupancy:
    """How many tracks are inside a zone now, per label (`(label, count)`, label order;
    labels with no track inside are left out)."""

    camera_id: str
    zone_id: str
    counts: tuple[tuple[int, int], ...]
    frame: int | None
    time: float

    @property
    def total(self) -> int:
        return sum(count for _, count in self.counts)


AnalyticsEvent = ZoneEvent | LineCrossing | ZoneOccupancy
"""What a camera's zones and lines saw on a frame (`FrameResult.analytics`)."""


Point = tuple[float, float]
"""(x, y) in frame pixels."""


@dataclass(frozen=True)
class ZoneShape:
    """A zone as drawn: its id and its polygon's corners, in frame pixels."""

    id: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class LineShape:
    """A counting line as drawn: its ends `a` and `b` in frame pixels, and the names of its
    two directions (sides as seen on the screen walking from `a` to `b`)."""

    id: str
    a: Point
    b: Point
    left_to_right: str
    right_to_left: str


@dataclass(frozen=True)
class SceneLayout:
    """A camera's zones and lines in pixels of its stream's frame size, and `anchor`: the
    point of a box (fractions of its width and height from its top left) that stands for
    where its object is, which trails follow (None: no trails are drawn)."""

    zones: tuple[ZoneShape, ...] = ()
    lines: tuple[LineShape, ...] = ()
    anchor: Point | None = None


@dataclass(frozen=True)
class StreamInfo:
    """A camera's stream as opened by its reader; sent to sinks before its first frame.

    `scene`: the camera's zones and lines in pixels of `width` x `height`, for sinks that
    draw them (None: not known, nothing is drawn beyond boxes). `live`: a stream or a device,
    whose frames may stop while the run goes on (reconnecting); a file's frames stop only
    at its end. For the sinks that draw every frame, when frames are left out of them:
    `frame_gap_s`, the wait, in seconds of the stream, between two of its frames that reach
    them, always, as frame-rate limiting (`max_fps`, `detect_every`) leaves the others out
    (None: 1 / `frame_rate`); `still_gap_s`, the longest such wait while motion gating finds
    the scene still (None: no gating), its frames coming `frame_gap_s` apart while things move.
    """

    camera_id: str
    width: int
    height: int
    frame_rate: Fraction
    source: str
    scene: SceneLayout | None = None
    live: bool = False
    frame_gap_s: float | None = None
    still_gap_s: float | None = None


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline knows about one frame after detection and tracking.

    `detected` is False for a frame skipped by frame-rate limiting (`max_fps`,
    `detect_every`) or motion gating (`motion`): it carries the camera's last tracked boxes
    and reaches only the sinks that draw every frame (`Sink.wants_every_frame`).
    `analytics`: what the camera's zones and lines saw on this frame (always empty for a
    camera without any).
    """

    frame: Frame
    detections: Detections
    track_events: tuple[TrackEvent, ...] = ()
    detected: bool = True
    analytics: tuple[AnalyticsEvent, ...] = ()


@dataclass(frozen=True)
class HeldTrackEvents:
    """A camera's "ended" track events that were held back until their snapshot's files
    were written (or lost), going out between its frames: after the frame results already
    handed out, before its next one (or its `StreamEnd`). Held events settled while no
    frame of the camera is being processed go out so, so that a camera whose frames stop
    (reconnecting, a still scene under motion gating) still tells that its tracks ended."""

    camera_id: str
    track_events: tuple[TrackEvent, ...]


CameraState = Literal["connecting", "streaming", "reconnecting", "stopped", "failed"]


@dataclass(frozen=True)
class CameraStatus:
    """A camera's reader changed state; `message` says why (credentials masked).

    Attributes:
        time: Unix time of the change.
        frames: frames decoded so far; `dropped`: frames the queue dropped to keep latency
            bounded (live sources); `decode_errors`: corrupt packets or images skipped.
        retry_in_s: with "reconnecting", the wait before the next attempt.
    """

    camera_id: str
    state: CameraState
    time: float
    message: str | None = None
    frames: int = 0
    dropped: int = 0
    decode_errors: int = 0
    retry_in_s: float | None = None


@dataclass(frozen=True)
class StreamEnd:
    """A camera's stream is over: tracks still open are closed in `track_events`, and
    visits of zones still open are closed in `analytics` (`ZoneEvent.at_stream_end`).

    `error` is None when the stream ended normally, or a one-line reason when it failed.
    """

    camera_id: str
    frames: int
    track_events: tuple[TrackEvent, ...] = ()
    error: str | None = None
    analytics: tuple[AnalyticsEvent, ...] = ()


RunOutcome = Literal["finished", "failed", "interrupted"]
"""How a run ended: every camera done; a camera or sink failed; stopped (Ctrl-C, SIGTERM)."""


@dataclass(frozen=True)
class SinkMetric:
    """A count a sink keeps of itself (rows spooled, messages dropped...), read at each
    scrape of the run's metrics (`Sink.metrics`); exposed as `ssd_sink_<name>` with the
    sink's label."""

    name: str
    """snake_case, the kind of sink first: `sql_rows_spooled`."""
    help: str
    value: float
    kind: Literal["counter", "gauge"] = "counter"
    """counter: only grows during a run; gauge: goes up and down (what waits now)."""


UNNAMED = ("", "N/A")
"""Class names of columns that are no class: COCO's models keep "N/A" for its unused ids."""


CLASS_NAME_MAX = 128
"""The longest class name: what the SQL tables' label columns hold (PostgreSQL refuses a
longer one), so a dataset's classes are refused past it before a model is trained on them."""


@dataclass(frozen=True)
class LabelMap:
    """Class names of a detector, indexed by `Detections.label`."""

    names: tuple[str, ...] = field(default_factory=tuple)

    def name(self, label: int) -> str:
        if 0 <= label < len(self.names) and self.names[label]:
            return self.names[label]
        return str(label)

    @staticmethod
    def key(name: str) -> str:
        """What a class name is matched by, wherever a person names a class (`labels:` in
        a config, a dataset's classes in `evaluate`, `subscribe --label`): the one rule,
        case and surrounding spaces ignored ("Person " is person)."""
        return name.strip().casefold()

    def columns(self, name: str, background: int | None = None) -> tuple[int, ...]:
        """The columns whose class is `name` (by `key`), in order; never `background`,
        nor a column without a class (`UNNAMED`)."""
        wanted = self.key(name)
        return tuple(i for i in self.classes(background) if self.key(self.names[i]) == wanted)

    def classes(self, background: int | None = None) -> tuple[int, ...]:
        """The columns that are a class: all but `background` and those `UNNAMED`."""
        return tuple(
            i
            for i, name in enumerate(self.names)
            if i != background and name.strip() not in UNNAMED
        )


def _check_image(name: str, img: object) -> None:
    """Raises unless `img` is an RGB uint8 array [H, W, 3]; `name`: what it is, e.g.
    "Frame.image"."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 numpy array, got {_describe(img)}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must have shape [H, W, 3], got {list(img.shape)}")


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray(dtype={value.dtype}, shape={list(value.shape)})"
    return type(value).__name__


def _check_rows(name: str, column: np.ndarray, n: int) -> None:
    """A per-box column must have shape [n], n being the number of boxes (xyxy rows)."""
    if column.shape != (n,):
        raise ValueError(
            f"Detections.{name} must have shape [{n}] to match xyxy, got {list(column.shape)}"
        )


def _check_finite(name: str, column: np.ndarray) -> None:
    """A float column holds no NaN or infinity: sinks could not encode them, nor trackers
    compare them."""
    if not np.isfinite(column).all():
        at = tuple(np.argwhere(~np.isfinite(column))[0])
        raise ValueError(f"Detections.{name} must be finite, got {column[at]} in row {at[0]}")


def _column(name: str, value: object, dtype: type[np.generic]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"Detections.{name} must be a numpy array, got {_describe(value)}")
    if value.dtype != dtype:
        raise TypeError(
            f"Detections.{name} must have dtype {np.dtype(dtype).name}, got {value.dtype.name}"
        )
    # A private copy, made read-only once checked: the caller may go on using (and
    # changing) its own array.
    return np.array(value, dtype=dtype, copy=True)


def _set_columns(
    detections: Detections,
    xyxy: npt.NDArray[np.float32],
    score: npt.NDArray[np.float32],
    label: npt.NDArray[np.int64],
    track_id: npt.NDArray[np.int64],
) -> None:
    """Sets the columns of a `Detections` being built (read-only ones: `_read_only`)."""
    object.__setattr__(detections, "xyxy", xyxy)
    object.__setattr__(detections, "score", score)
    object.__setattr__(detections, "label", label)
    object.__setattr__(detections, "track_id", track_id)


def _read_only(*columns: np.ndarray) -> None:
    # Columns are frozen so that a stage cannot change what another stage still holds.
    for column in columns:
        column.flags.writeable = False


_EMPTY = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
