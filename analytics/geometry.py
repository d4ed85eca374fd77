"""A camera's zones and lines as configured (in pixels or fractions of the frame), and in
pixels of a frame size: what `SceneAnalyzer` tests tracks against."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pipeline.boxes import polygon_edges
from pipeline.types import LineShape, SceneLayout, ZoneShape

log = logging.getLogger(__name__)

XY = tuple[float, float]
LEFT_TO_RIGHT, RIGHT_TO_LEFT = "left_to_right", "right_to_left"
"""A line's directions when the config names none."""


@dataclass(frozen=True)
class Zone:
    """A zone: `polygon` in pixels, or in fractions of the frame unless `in_pixels`;
    `labels`: the class indices it counts (None: all)."""

    id: str
    polygon: tuple[XY, ...]
    in_pixels: bool = False
    labels: frozenset[int] | None = None
    dwell_alert_s: float | None = None


@dataclass(frozen=True)
class Line:
    """A line from `a` to `b` (pixels, or fractions unless `in_pixels`) and the names of
    its two directions, sides as seen on the screen walking from `a` to `b`."""

    id: str
    a: XY
    b: XY
    in_pixels: bool = False
    labels: frozenset[int] | None = None
    left_to_right: str = LEFT_TO_RIGHT
    right_to_left: str = RIGHT_TO_LEFT


@dataclass(frozen=True)
class PixelGeometry:
    """Zones and lines in pixels of one frame size: the zones' edges (`polygon_edges`), the
    lines' ends, one row per line in `line_array`, and the lines' hysteresis."""

    edges: np.ndarray
    starts: np.ndarray
    lines: list[tuple[XY, XY]]
    line_array: np.ndarray
    hysteresis_px: float


def pixel_geometry(
    camera_id: str,
    zones: list[Zone],
    lines: list[Line],
    line_hysteresis: float,
    width: int,
    height: int,
) -> PixelGeometry:
    """`zones` and `lines` in pixels of a `width` x `height` frame; `line_hysteresis` is a
    fraction of its diagonal. Logs those that lie wholly outside the frame."""

    polygons = [
        np.array([to_pixels(p, z.in_pixels, width, height) for p in z.polygon]) for z in zones
    ]
    ends = [
        (to_pixels(li.a, li.in_pixels, width, height), to_pixels(li.b, li.in_pixels, width, height))
        for li in lines
    ]
    shapes = [(f"zone {z.id}", p) for z, p in zip(zones, polygons, strict=True)]
    shapes += [(f"line {li.id}", np.array(e)) for li, e in zip(lines, ends, strict=True)]
    for name, points in shapes:
        low, high = points.min(axis=0), points.max(axis=0)
        if high[0] < 0 or high[1] < 0 or low[0] > width or low[1] > height:
            log.warning(
                "camera %s: %s lies outside the %dx%d frame: it will see nothing "
                "(pixel coordinates of another resolution? fractions survive a change)",
                camera_id,
                name,
                width,
                height,
            )
    edges, starts = polygon_edges(polygons)
    return PixelGeometry(
        edges,
        starts,
        ends,
        np.array([[*a, *b] for a, b in ends], np.float64).reshape(-1, 4),
        line_hysteresis * math.hypot(width, height),
    )


def to_pixels(point: XY, in_pixels: bool, width: int, height: int) -> XY:
    """`point` in pixels of a `width` x `height` frame (it is a fraction of it unless
    `in_pixels`)."""
    return point if in_pixels else (point[0] * width, point[1] * height)


def scene_layout(
    zones: list[Zone], lines: list[Line], anchor: XY | None, width: int, height: int
) -> SceneLayout:
    """`zones` and `lines` as drawn on a `width` x `height` frame, with the `anchor` that
    says where a box's object is (None: none, no trails)."""
    return SceneLayout(
        tuple(
            ZoneShape(z.id, tuple(to_pixels(p, z.in_pixels, width, height) for p in z.polygon))
            for z in zones
        ),
        tuple(
            LineShape(
                li.id,
                to_pixels(li.a, li.in_pixels, width, height),
                to_pixels(li.b, li.in_pixels, width, height),
                li.left_to_right,
                li.right_to_left,
            )
            for li in lines
        ),
        anchor,
    )
