"""A camera's zones and lines with their counts so far, and its tracks' trails: the state a
drawing sink keeps between frames so that each frame shows them (`sinks.draw` draws them).

Counts come from the analytics events the frames carry: a zone shows its last
`ZoneOccupancy` (tracks inside now), a line the `LineCrossing`s of each direction so far.
A trail is a track's anchor point (`SceneLayout.anchor`; no trails without one) on its last
`trail_points` detected frames; it is dropped when its track ends, or once the track has not
been seen for that many detected frames (so that the trails kept stay bounded however tracks
end).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.types import (
    UNTRACKED,
    AnalyticsEvent,
    FrameResult,
    LabelMap,
    LineCrossing,
    SceneLayout,
    ZoneOccupancy,
)

TRAIL_POINTS = 30
"""A trail shows a track's anchor on its last this-many detected frames."""


@dataclass(frozen=True)
class SceneView:
    """What one frame shows beyond its boxes, frozen: the `layout`; per zone (layout order)
    the tracks inside now; per line the crossings `(left_to_right, right_to_left)` so far;
    and per track shown, `(track_id, points)` with points int32 [K, 2], oldest first.
    Without counts (None), zones and lines are drawn with their names alone."""

    layout: SceneLayout
    occupancy: tuple[int, ...] | None = None
    crossings: tuple[tuple[int, int], ...] | None = None
    trails: tuple[tuple[int, npt.NDArray[np.int32]], ...] = ()


class _Trail:
    """A track's last `length` points, kept in an array twice as long that is shifted back
    once full: appending and copying out cost a few microseconds, where building an array
    from a deque of points each frame costs more than drawing it."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._points = np.empty((2 * length, 2), np.int32)
        self._start = self._end = 0

    def append(self, x: int, y: int) -> None:
        if self._end == len(self._points):
            keep = self.length - 1
            self._points[:keep] = self._points[self._end - keep : self._end]
            self._start, self._end = 0, keep
        self._points[self._end] = (x, y)
        self._end += 1
        self._start = max(self._start, self._end - self.length)

    def points(self) -> npt.NDArray[np.int32]:
        """A copy of the points, oldest first: [K, 2]."""
        return self._points[self._start : self._end].copy()


class SceneOverlay:
    """One camera's counts and trails, updated frame by frame (`update`) from its results."""

    def __init__(self, layout: SceneLayout, trail_points: int = TRAIL_POINTS) -> None:
        if trail_points < 0:
            raise ValueError(f"trail_points must be >= 0, got {trail_points}")
        self.layout = layout
        self.trail_points = trail_points
        self._occupancy: dict[str, ZoneOccupancy] = {}
        self._crossings: dict[str, Counter[str]] = {li.id: Counter() for li in layout.lines}
        self._trails: dict[int, _Trail] = {}
        self._last_seen: dict[int, int] = {}
        self._shown: tuple[int, ...] = ()
        self._detected = 0

    def update(self, result: FrameResult) -> None:
        """Counts from the frame's analytics; on a detected frame, its tracks' anchors."""
        self.count(result.analytics)
        if not result.detected:
            return  # the last boxes again: their trails do not move
        self._detected += 1
        dets = result.detections
        tracked = dets.track_id != UNTRACKED
        ids: list[int] = dets.track_id[tracked].tolist()
        if self.trail_points and self.layout.anchor is not None:
            fx, fy = self.layout.anchor
            boxes = dets.xyxy[tracked].astype(np.float64)
            xs = boxes[:, 0] + fx * (boxes[:, 2] - boxes[:, 0])
            ys = boxes[:, 1] + fy * (boxes[:, 3] - boxes[:, 1])
            for track_id, x, y in zip(ids, np.rint(xs).tolist(), np.rint(ys).tolist(), strict=True):
                trail = self._trails.get(track_id)
                if trail is None:
                    trail = self._trails[track_id] = _Trail(self.trail_points)
                trail.append(int(x), int(y))
                self._last_seen[track_id] = self._detected
        self._shown = tuple(ids)
        for event in result.track_events:
            if event.kind == "ended":
                self._forget(event.track.track_id)
        stale = [
            t for t, seen in self._last_seen.items() if self._detected - seen > self.trail_points
        ]
        for track_id in stale:
            self._forget(track_id)

    def count(self, events: tuple[AnalyticsEvent, ...]) -> None:
        """Take the occupancy and crossings among `events` (a frame's, or a stream end's)."""
        for event in events:
            if isinstance(event, ZoneOccupancy):
                self._occupancy[event.zone_id] = event
            elif isinstance(event, LineCrossing):
                self._crossings.setdefault(event.line_id, Counter())[event.direction] += 1

    def end(self) -> None:
        """The stream ended: trails go (the counts stay, for a stream that starts again)."""
        self._trails.clear()
        self._last_seen.clear()
        self._shown = ()

    @property
    def tracks_kept(self) -> int:
        """Tracks whose trail is kept."""
        return len(self._trails)

    def view(self) -> SceneView:
        """The counts and the trails of the tracks on the last detected frame, frozen."""
        layout = self.layout
        occupancy = tuple(self._inside(z.id) for z in layout.zones)
        crossings = tuple(
            (self._crossings[li.id][li.left_to_right], self._crossings[li.id][li.right_to_left])
            for li in layout.lines
        )
        trails = tuple((t, self._trails[t].points()) for t in self._shown if t in self._trails)
        return SceneView(layout, occupancy, crossings, trails)

    def counts(self, labels: LabelMap) -> dict[str, Any]:
        """The counts as JSON: `{"zones": [{"id", "inside", "by_label"}], "lines": [{"id",
        "crossings": {direction: n}}]}`, in the config's order."""
        zones = []
        for zone in self.layout.zones:
            occ = self._occupancy.get(zone.id)
            by_label = {labels.name(label): n for label, n in (occ.counts if occ else ())}
            zones.append({"id": zone.id, "inside": self._inside(zone.id), "by_label": by_label})
        lines = [
            {
                "id": li.id,
                "crossings": {
                    li.left_to_right: self._crossings[li.id][li.left_to_right],
                    li.right_to_left: self._crossings[li.id][li.right_to_left],
                },
            }
            for li in self.layout.lines
        ]
        return {"zones": zones, "lines": lines}

    def _inside(self, zone_id: str) -> int:
        occ = self._occupancy.get(zone_id)
        return occ.total if occ is not None else 0

    def _forget(self, track_id: int) -> None:
        self._trails.pop(track_id, None)
        self._last_seen.pop(track_id, None)
