"""Motion regions: the parts of a frame to detect when only those changed, and the frame's
boxes put together again after detecting them.

The rule, in one place:

- A patch of motion (`MotionGate`) becomes a region: its box, padded by `PAD_SHARE` of its
  larger side, grown about its centre to the detector's aspect and to at least the
  detector's input size (a crop smaller than that would be upscaled, costing the same and
  showing nothing more), and moved inside the frame. Overlapping regions are merged into
  one (their bounding box, shaped again) until none overlap.
- If the regions cover more than `max_share` of the frame, the whole frame is detected.
- Each region is detected as an image of its own. Its boxes are moved back to frame pixels,
  except those cut by one of its edges that is not the frame's (a thing only partly in the
  crop). The boxes of the frame last detected that are not wholly inside a region (where
  nothing changed, or a thing only partly in one) are kept as they were; those wholly
  inside one are replaced by what the region's detection found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.types import Detections, Region

PAD_SHARE = 0.25
"""A patch of motion is padded by this share of its larger side on every side: the moving
thing's edges change less than its middle, and may lie below the threshold."""
EDGE_PX = 2.0
"""A box in a crop within this many pixels of a crop edge inside the frame is cut by it."""

Box = tuple[int, int, int, int]
"""(x1, y1, x2, y2) in frame pixels, ends excluded."""


@dataclass(frozen=True)
class RegionRule:
    """How patches of motion become the regions detected (the module's rule).

    `min_size`: the detector's input (height, width): the smallest region, and its aspect.
    `max_share`: above this share of the frame in regions, the whole frame is detected.
    """

    min_size: tuple[int, int]
    max_share: float

    def __post_init__(self) -> None:
        if min(self.min_size) < 1:
            raise ValueError(f"min_size must be >= 1 pixel, got {self.min_size}")
        if not 0 < self.max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {self.max_share}")

    def regions(self, patches: Sequence[Box], width: int, height: int) -> tuple[Region, ...]:
        """The regions to detect for these patches of motion in a `width` x `height` frame;
        () for the whole frame (the regions would cover more than `max_share` of it)."""
        boxes = [self._shape(_padded(p), width, height) for p in patches]
        merged = True
        while merged:
            merged = False
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    if _overlap(boxes[i], boxes[j]):
                        both = _union(boxes[i], boxes[j])
                        boxes[i] = self._shape(both, width, height)
                        del boxes[j]
                        merged = True
                        break
                if merged:
                    break
        if sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes) > self.max_share * width * height:
            return ()
        return tuple(Region(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes)

    def _shape(self, box: Box, width: int, height: int) -> Box:
        """`box` grown about its centre to the detector's aspect and at least its input
        size, then moved inside the frame (and cut to it where larger)."""
        min_h, min_w = self.min_size
        x1, y1, x2, y2 = box
        w = max(x2 - x1, min_w, math.ceil((y2 - y1) * min_w / min_h))
        h = max(y2 - y1, min_h, math.ceil(w * min_h / min_w))
        w = max(w, math.ceil(h * min_w / min_h))
        left, right = _fit((x1 + x2) / 2, w, width)
        top, bottom = _fit((y1 + y2) / 2, h, height)
        return left, top, right, bottom


def _fit(centre: float, size: int, limit: int) -> tuple[int, int]:
    """(start, end) of a span of `size` about `centre`, moved inside [0, limit)."""
    size = min(size, limit)
    start = min(max(0, round(centre - size / 2)), limit - size)
    return start, start + size


def _padded(box: Box) -> Box:
    x1, y1, x2, y2 = box
    pad = math.ceil(PAD_SHARE * max(x2 - x1, y2 - y1))
    return x1 - pad, y1 - pad, x2 + pad, y2 + pad


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def combine(
    previous: Detections,
    regions: Sequence[Region],
    found: Sequence[Detections],
    width: int,
    height: int,
) -> Detections:
    """A `width` x `height` frame's boxes after detecting only `regions` (`found`: each
    region's boxes, in its own pixels): the module's rule."""
    if len(regions) != len(found):
        raise ValueError(f"{len(found)} detections for {len(regions)} regions")
    inside = np.zeros(len(previous), np.bool_)
    for region in regions:
        inside |= region.contains(previous.xyxy)
    parts = [previous[~inside]]
    for region, boxes in zip(regions, found, strict=True):
        parts.append(_moved(boxes[~_cut(region, boxes, width, height)], region))
    return Detections(
        xyxy=np.concatenate([p.xyxy for p in parts]),
        score=np.concatenate([p.score for p in parts]),
        label=np.concatenate([p.label for p in parts]),
    )


def _cut(region: Region, boxes: Detections, width: int, height: int) -> np.ndarray:
    """Which of a region's boxes (its pixels) touch one of its edges inside the frame."""
    xyxy = boxes.xyxy
    cut = np.zeros(len(boxes), np.bool_)
    if region.x > 0:
        cut |= xyxy[:, 0] <= EDGE_PX
    if region.y > 0:
        cut |= xyxy[:, 1] <= EDGE_PX
    if region.x + region.width < width:
        cut |= xyxy[:, 2] >= region.width - EDGE_PX
    if region.y + region.height < height:
        cut |= xyxy[:, 3] >= region.height - EDGE_PX
    return cut


def _moved(boxes: Detections, region: Region) -> Detections:
    """A region's boxes in frame pixels."""
    offset = np.array([region.x, region.y, region.x, region.y], np.float32)
    return Detections(xyxy=boxes.xyxy + offset, score=boxes.score, label=boxes.label)
