"""Tracks as events tell of them: a track's summary, its snapshot, its start and end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from pipeline.types.frames import check_image


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
                check_image(f"Snapshot.{what}", image)
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
