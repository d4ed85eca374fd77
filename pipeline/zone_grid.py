"""A camera's frame with a coordinate grid, for writing zone polygons and lines by eye.

Lines at every tenth of the frame carry their fraction (0.1 ... 0.9) at the top and left
edge and their pixel coordinate at the bottom and right edge; short ticks every
`PIXEL_TICK` pixels run along the top and left edges. Zones and lines may be given either
way (pixels, or fractions of the frame, which survive a change of resolution).

Configured shapes are drawn over the grid by `ShapeOverlay`s: `shape_overlays` turns a
camera's configured zones and lines into one, drawn as the video and the live view draw them
(with their names, without counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from analytics import Line, Zone, scene_layout
from pipeline.build import camera_scene
from pipeline.config import CameraConfig
from pipeline.types import Detections, LabelMap
from sinks.draw import annotate
from sinks.scene_overlay import SceneView

Image = npt.NDArray[np.uint8]

FRACTION_STEPS = 10
"""Grid lines split the frame into this many parts each way."""
PIXEL_TICK = 50
"""Pixel ticks along the top and left edges, this many pixels apart."""
_LINE = (255, 255, 0)  # RGB: yellow, seen on most footage
_TICK = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class ShapeOverlay(Protocol):
    """Draws something configured (a zone's polygon, a counting line) on a gridded frame."""

    def draw(self, image: Image) -> Image:
        """A new RGB image: `image` with the shape drawn on it (`image` is not changed)."""
        ...


class SceneShapes:
    """A camera's configured zones and lines, in pixels of the image they are drawn on."""

    def __init__(self, zones: list[Zone], lines: list[Line]) -> None:
        self.zones = zones
        self.lines = lines

    def draw(self, image: Image) -> Image:
        height, width = image.shape[:2]
        layout = scene_layout(self.zones, self.lines, None, width, height)
        return annotate(image, Detections.empty(), LabelMap(), SceneView(layout))


def shape_overlays(camera: CameraConfig) -> list[ShapeOverlay]:
    """The overlays of `camera`'s configured zones and lines, to draw over its grid (none
    for a camera without any)."""
    if not camera.has_scene:
        return []
    return [SceneShapes(*camera_scene(camera))]


def grid_image(image: Image, overlays: Sequence[ShapeOverlay] = ()) -> Image:
    """`image` (RGB, [H, W, 3]) with the coordinate grid, then `overlays`, drawn on a copy.
    The result has the size of `image`."""
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    scale = max(0.35, min(width, height) / 1200)
    thick = max(1, round(scale * 2))
    for k in range(1, FRACTION_STEPS):
        f = k / FRACTION_STEPS
        x, y = round(f * (width - 1)), round(f * (height - 1))
        cv2.line(out, (x, 0), (x, height - 1), _LINE, 1, cv2.LINE_AA)
        cv2.line(out, (0, y), (width - 1, y), _LINE, 1, cv2.LINE_AA)
        _label(out, f"{f:.1f}", (x + 3, _text_height(scale) + 3), scale, thick)
        _label(out, f"{f:.1f}", (3, y - 4), scale, thick)
        _label(out, f"{x}px", (x + 3, height - 5), scale, thick)
        px = f"{y}px"
        _label(out, px, (width - _text_width(px, scale) - 4, y - 4), scale, thick)
    tick = max(4, round(8 * scale))
    for x in range(PIXEL_TICK, width, PIXEL_TICK):
        cv2.line(out, (x, 0), (x, tick), _TICK, 1)
    for y in range(PIXEL_TICK, height, PIXEL_TICK):
        cv2.line(out, (0, y), (tick, y), _TICK, 1)
    for overlay in overlays:
        out = overlay.draw(out)
    return out


def _text_height(scale: float) -> int:
    return int(cv2.getTextSize("0", _FONT, scale, 1)[0][1])


def _text_width(text: str, scale: float) -> int:
    return int(cv2.getTextSize(text, _FONT, scale, 1)[0][0])


def _label(image: Image, text: str, origin: tuple[int, int], scale: float, thick: int) -> None:
    """`text` in the grid's colour with a dark outline, readable on any footage."""
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, _LINE, thick, cv2.LINE_AA)
