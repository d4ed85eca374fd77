"""What a camera's zones and lines see, and their shapes as drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCENE_NAME_MAX = 64
"""The longest zone id, line id or line direction name: what the SQL tables' zone, line and
direction columns hold."""
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
