"""Draw boxes and captions onto a copy of a frame, and a camera's zones, lines, counts and
trails (`SceneView`) under and beside them."""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.types import UNTRACKED, Detections, LabelMap, LineShape, Point
from sinks.scene_overlay import SceneView

_GOLDEN = 0.618033988749895
_FONT = cv2.FONT_HERSHEY_SIMPLEX

Color = tuple[int, int, int]
Image = npt.NDArray[np.uint8]

ZONE_COLOR: Color = (255, 176, 0)
"""RGB of zone outlines and their counts (amber)."""
LINE_COLOR: Color = (255, 64, 255)
"""RGB of counting lines and their counts (magenta)."""


@lru_cache(maxsize=1024)
def _hue_color(key: int, saturation: float, value: float) -> Color:
    # Golden-ratio hue steps keep consecutive ids far apart on the colour wheel.
    r, g, b = colorsys.hsv_to_rgb((key * _GOLDEN) % 1.0, saturation, value)
    return int(r * 255), int(g * 255), int(b * 255)


def box_color(track_id: int, label: int) -> Color:
    """RGB colour of a box: fixed per track id, or per label (paler) for untracked boxes."""
    if track_id != UNTRACKED:
        return _hue_color(int(track_id), 0.85, 0.95)
    return _hue_color(int(label) + 7919, 0.35, 0.9)


def caption(label_name: str, score: float, track_id: int) -> str:
    """'person 0.87 #3'; the '#track' part only for tracked boxes."""
    text = f"{label_name} {score:.2f}"
    return f"{text} #{track_id}" if track_id != UNTRACKED else text


def annotate(
    image: Image, detections: Detections, labels: LabelMap, scene: SceneView | None = None
) -> Image:
    """A new RGB uint8 [H, W, 3] image with a box and caption per detection, and with
    `scene`: the zones, lines and trails under the boxes, the counts over them.

    `image` is left unchanged. Boxes with non-finite coordinates are skipped.
    """
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.35, min(height, width) / 900)
    if scene is not None:
        _draw_shapes(out, scene, thickness + 1)
    for xyxy, score, label, track_id in zip(
        detections.xyxy, detections.score, detections.label, detections.track_id, strict=True
    ):
        if not all(math.isfinite(float(v)) for v in xyxy):
            continue
        x1, y1, x2, y2 = (round(float(v)) for v in xyxy)
        color = box_color(int(track_id), int(label))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        _draw_caption(
            out,
            caption(labels.name(int(label)), float(score), int(track_id)),
            (x1, y1),
            color,
            font_scale,
        )
    if scene is not None:
        _draw_counts(out, scene, font_scale)
    return out


def zone_caption(zone_id: str, inside: int | None) -> str:
    """'door: 2 inside' ('door' without a count)."""
    return zone_id if inside is None else f"{zone_id}: {inside} inside"


def direction_caption(direction: str, crossings: int | None) -> str:
    """'in 5': a direction of a line and its crossings so far ('in' without a count)."""
    return direction if crossings is None else f"{direction} {crossings}"


def line_normal(line: LineShape) -> Point:
    """The unit vector across `line` pointing to its right side (as seen walking from `a`
    to `b`, image y downwards): where a `left_to_right` crossing goes."""
    dx, dy = line.b[0] - line.a[0], line.b[1] - line.a[1]
    norm = math.hypot(dx, dy) or 1.0
    return -dy / norm, dx / norm


def _draw_shapes(image: Image, scene: SceneView, thickness: int) -> None:
    """Zone outlines, lines with an arrow each way across, and the trails, in place: not
    anti-aliased, which would cost 3 to 4 times as much (`benchmarks.analytics --draw`)."""
    for zone in scene.layout.zones:
        corners = np.rint(np.array(zone.polygon, np.float64)).astype(np.int32)
        cv2.polylines(image, [corners], True, ZONE_COLOR, thickness, cv2.LINE_8)
    for line in scene.layout.lines:
        a, b = _px(line.a), _px(line.b)
        cv2.line(image, a, b, LINE_COLOR, thickness, cv2.LINE_8)
        for end in (a, b):
            cv2.circle(image, end, thickness + 2, LINE_COLOR, cv2.FILLED, cv2.LINE_AA)
        mid, (nx, ny), reach = _midpoint(line), line_normal(line), _arrow_length(image)
        for sign in (1, -1):
            tip = _px((mid[0] + sign * nx * reach, mid[1] + sign * ny * reach))
            cv2.arrowedLine(image, _px(mid), tip, LINE_COLOR, thickness, cv2.LINE_8, 0, 0.3)
    for track_id, points in scene.trails:
        if len(points) > 1:
            color = box_color(track_id, 0)
            cv2.polylines(image, [points], False, color, max(1, thickness - 1), cv2.LINE_8)


def _draw_counts(image: Image, scene: SceneView, font_scale: float) -> None:
    """Each zone's tracks inside at its top corner; each line's id at its first end and
    each direction's crossings at the tip of the arrow that goes that way."""
    zones, lines = scene.layout.zones, scene.layout.lines
    occupancy = scene.occupancy or (None,) * len(zones)
    crossings = scene.crossings or ((None, None),) * len(lines)
    for zone, inside in zip(zones, occupancy, strict=True):
        top = min(zone.polygon, key=lambda p: (p[1], p[0]))
        _draw_label(image, zone_caption(zone.id, inside), _px(top), ZONE_COLOR, font_scale)
    for line, (forward, back) in zip(lines, crossings, strict=True):
        _draw_label(image, line.id, _px(line.a), LINE_COLOR, font_scale)
        mid, (nx, ny), reach = _midpoint(line), line_normal(line), _arrow_length(image)
        for sign, text in (
            (1, direction_caption(line.left_to_right, forward)),
            (-1, direction_caption(line.right_to_left, back)),
        ):
            # the label beyond the arrow's tip, wholly on the side the direction goes to
            th, tw = _label(text, LINE_COLOR, font_scale).shape[:2]
            off = reach + abs(nx) * (tw + 4) / 2 + abs(ny) * (th + 4) / 2 + 2
            tip = (mid[0] + sign * nx * off, mid[1] + sign * ny * off)
            _draw_tag(image, text, _px(tip), LINE_COLOR, font_scale)


def _midpoint(line: LineShape) -> Point:
    return (line.a[0] + line.b[0]) / 2, (line.a[1] + line.b[1]) / 2


def _arrow_length(image: Image) -> float:
    return max(12.0, min(image.shape[:2]) / 20)


def _px(point: Point) -> tuple[int, int]:
    return round(point[0]), round(point[1])


def _draw_tag(image: Image, text: str, center: tuple[int, int], color: Color, scale: float) -> None:
    """`text` on a filled label centred on `center` (kept inside the image)."""
    patch = _label(text, color, scale)
    h, w = patch.shape[:2]
    _paste(image, patch, center[0] - w // 2, center[1] - h // 2)


def _draw_label(
    image: Image, text: str, corner: tuple[int, int], color: Color, scale: float
) -> None:
    """`text` on a filled label above `corner` (below it at the top edge), as a box's
    caption, from the cache of labels."""
    patch = _label(text, color, scale)
    top = corner[1] - patch.shape[0]
    _paste(image, patch, corner[0], top if top >= 0 else corner[1])


@lru_cache(maxsize=256)
def _label(text: str, color: Color, scale: float) -> Image:
    """A filled label with `text`, drawn once: counts change rarely, and a label drawn
    afresh costs more than the rest of the scene."""
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    patch = np.empty((th + baseline + 3, tw + 3, 3), np.uint8)
    patch[:] = color
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(patch, text, (1, th + 1), _FONT, scale, text_color, 1, cv2.LINE_AA)
    patch.flags.writeable = False
    return patch


def _paste(image: Image, patch: Image, x: int, y: int) -> None:
    """`patch` onto `image` with its top left at (x, y), moved inside the image."""
    h, w = patch.shape[:2]
    x = min(max(x, 0), max(image.shape[1] - w, 0))
    y = min(max(y, 0), max(image.shape[0] - h, 0))
    region = image[y : y + h, x : x + w]
    region[:] = patch[: region.shape[0], : region.shape[1]]


def _draw_caption(
    image: npt.NDArray[np.uint8],
    text: str,
    corner: tuple[int, int],
    color: Color,
    font_scale: float,
) -> None:
    """Filled label above the box's top-left corner (inside the box when at the top edge)."""
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, 1)
    x = min(max(corner[0], 0), max(image.shape[1] - tw - 2, 0))
    top = corner[1] - th - baseline - 2
    if top < 0:
        top = max(corner[1], 0)
    cv2.rectangle(image, (x, top), (x + tw + 2, top + th + baseline + 2), color, cv2.FILLED)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 1, top + th + 1), _FONT, font_scale, text_color, 1, cv2.LINE_AA)
