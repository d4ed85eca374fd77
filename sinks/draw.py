"""Draw boxes and captions onto a copy of a frame."""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.types import UNTRACKED, Detections, LabelMap

_GOLDEN = 0.618033988749895
_FONT = cv2.FONT_HERSHEY_SIMPLEX

Color = tuple[int, int, int]


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
    image: npt.NDArray[np.uint8], detections: Detections, labels: LabelMap
) -> npt.NDArray[np.uint8]:
    """A new RGB uint8 [H, W, 3] image with a box and caption per detection.

    `image` is left unchanged. Boxes with non-finite coordinates are skipped.
    """
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.35, min(height, width) / 900)
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
    return out


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
    cv2.putText(
        image, text, (x + 1, top + th + 1), _FONT, font_scale, text_color, 1, cv2.LINE_AA
    )
