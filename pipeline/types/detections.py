"""The boxes of a frame, as columns checked on construction, and the class names their
labels index."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pipeline.types.frames import describe

UNTRACKED = -1
"""`Detections.track_id` of a box that belongs to no confirmed track."""


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
        raise TypeError(f"Detections.{name} must be a numpy array, got {describe(value)}")
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
