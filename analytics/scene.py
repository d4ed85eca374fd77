"""A camera's zones and lines, watched frame by frame over its tracks.

Where an object is: one anchor point of its box (the bottom centre by default: the feet of a
person). A track enters a zone once its anchor has been seen inside on `min_frames` detected
frames with none seen outside between them and no gap of `leave_frames` detected frames
without it inside (the gap that ends a visit); it leaves once it has not been seen inside
for `leave_frames` detected frames (outside, or not detected at all; or when its track
ends). A track crosses a line when its anchor goes from more than the hysteresis on one
side to more than the hysteresis on the other, through the segment between the line's ends.
docs/analytics.md states the rules for users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from analytics.geometry import XY, Line, PixelGeometry, Zone, pixel_geometry
from pipeline.boxes import anchor_points, crossing_position, distances_to_lines, points_in_polygons
from pipeline.types import (
    UNTRACKED,
    AnalyticsEvent,
    FrameResult,
    LineCrossing,
    Side,
    ZoneEvent,
    ZoneOccupancy,
)


@dataclass(frozen=True)
class SceneRules:
    """`anchor`: the point of a box that stands for its object, as fractions of its width
    and height; `line_hysteresis`: the distance past a line that counts, as a fraction of
    the frame's diagonal; `min_frames`: detected frames seen inside a zone, none seen
    outside between them, before entering counts; `occupancy_period_s`: stream seconds
    between occupancy events sent even without a change (None: on change only);
    `leave_frames`: detected frames in a row a track is not seen inside a zone before its
    visit ends (and before a visit still entering is dropped)."""

    anchor: XY
    line_hysteresis: float
    min_frames: int
    occupancy_period_s: float | None
    leave_frames: int


@dataclass
class _Visit:
    """A track in (or becoming in) a zone. Times: (frame, wall time, pts)."""

    label: int
    first: tuple[int, float, float]
    last_inside: tuple[int, float, float]
    seen: int  # the analyzer's update count on the last frame the track was seen inside
    run: int = 1  # detected frames seen inside so far, before entering
    inside: bool = False
    alerted: bool = False


@dataclass
class _Crossing:
    """A track's side of a line (+1 right, -1 left) and its last point clearly there."""

    side: int
    point: XY


@dataclass
class _ZoneState:
    visits: dict[int, _Visit] = field(default_factory=dict)
    counts: tuple[tuple[int, int], ...] = ()


class SceneAnalyzer:
    """Zone visits, dwell alerts, line crossings and occupancy of one camera's tracks.

    `update` takes each detected frame's result (in frame order) and returns what
    happened on it; `finish`, at the end of the stream (or a stop), closes every visit
    still open. Inputs are only read.
    """

    def __init__(
        self, camera_id: str, zones: list[Zone], lines: list[Line], rules: SceneRules
    ) -> None:
        self.camera_id = camera_id
        self.zones = list(zones)
        self.lines = list(lines)
        self.rules = rules
        self._zones = [_ZoneState() for _ in self.zones]
        self._sides: list[dict[int, _Crossing]] = [{} for _ in self.lines]
        self._geometry: dict[tuple[int, int], PixelGeometry] = {}
        self._now: tuple[int, float, float] | None = None  # the last frame seen
        self._updates = 0  # detected frames seen
        self._period_start: float | None = None

    def update(self, result: FrameResult) -> tuple[AnalyticsEvent, ...]:
        """What the camera's zones and lines saw on this frame."""
        frame = result.frame
        now = self._now = (frame.index, frame.wall_time, frame.pts)
        self._updates += 1
        geometry = self._geometry.get((frame.width, frame.height))
        if geometry is None:  # once per frame size
            geometry = self._geometry[(frame.width, frame.height)] = pixel_geometry(
                self.camera_id,
                self.zones,
                self.lines,
                self.rules.line_hysteresis,
                frame.width,
                frame.height,
            )
        dets = result.detections
        tracked = dets.track_id != UNTRACKED
        ids: list[int] = dets.track_id[tracked].tolist()
        labels: list[int] = dets.label[tracked].tolist()
        points = anchor_points(dets.xyxy[tracked], *self.rules.anchor)
        label_column = dets.label[tracked]
        events: list[AnalyticsEvent] = []
        # every zone and every line in one numpy pass each; then plain Python per track
        inside = points_in_polygons(points, geometry.edges, geometry.starts).T.tolist()
        for zone, state, zone_inside in zip(self.zones, self._zones, inside, strict=True):
            if zone.labels is not None:
                wanted = _counted(zone.labels, label_column)
                zone_inside = (np.array(zone_inside, np.bool_) & wanted).tolist()
            events += self._zone_step(zone, state, ids, labels, zone_inside, now)
        distances = distances_to_lines(points, geometry.line_array).T.tolist()
        point_list = points.tolist()
        for line, sides, ends, distance in zip(
            self.lines, self._sides, geometry.lines, distances, strict=True
        ):
            counted: list[bool] = [True] * len(ids)
            if line.labels is not None:
                counted = _counted(line.labels, label_column).tolist()
            events += self._line_step(
                line,
                sides,
                ends,
                geometry.hysteresis_px,
                ids,
                labels,
                counted,
                distance,
                point_list,
                now,
            )
        for zone, state in zip(self.zones, self._zones, strict=True):
            events += self._gone(zone, state, now)
        for ended in result.track_events:
            if ended.kind == "ended":
                events += self._forget(ended.track.track_id, now)
        events += self._occupancy(now)
        return tuple(events)

    def finish(self) -> tuple[AnalyticsEvent, ...]:
        """Every visit still open, left at the stream's end (`at_stream_end`), and the
        occupancy that follows; the analyzer starts afresh after."""
        now = self._now
        if now is None:
            return ()
        events: list[AnalyticsEvent] = []
        for zone, state in zip(self.zones, self._zones, strict=True):
            for track_id, visit in state.visits.items():
                if visit.inside:
                    left = self._zone_event("left", zone, track_id, visit, now, at_stream_end=True)
                    events.append(left)
            state.visits.clear()
        events += self._occupancy(now, periodic=False)
        for sides in self._sides:
            sides.clear()
        self._now = self._period_start = None
        return tuple(events)

    # ------------------------------------------------------------------ zones

    def _zone_step(
        self,
        zone: Zone,
        state: _ZoneState,
        ids: list[int],
        labels: list[int],
        inside: list[bool],
        now: tuple[int, float, float],
    ) -> list[AnalyticsEvent]:
        """Visits entered (and dwell alerts) on this frame. A frame seen outside drops a
        visit still entering; a frame missed does not, as a missed detection is no sign of
        having left (`_gone` drops it after `leave_frames` of them)."""
        events: list[AnalyticsEvent] = []
        min_frames = self.rules.min_frames
        for track_id, label, is_in in zip(ids, labels, inside, strict=True):
            visit = state.visits.get(track_id)
            if is_in:
                if visit is None:
                    visit = state.visits[track_id] = _Visit(label, now, now, self._updates)
                elif not visit.inside:
                    visit.run += 1
                visit.last_inside, visit.seen = now, self._updates
                if not visit.inside and visit.run >= min_frames:
                    visit.inside, visit.run = True, 0
                    events.append(self._zone_event("entered", zone, track_id, visit, now))
                if (
                    visit.inside
                    and not visit.alerted
                    and zone.dwell_alert_s is not None
                    and now[2] - visit.first[2] > zone.dwell_alert_s
                ):
                    visit.alerted = True
                    events.append(self._zone_event("dwell", zone, track_id, visit, now))
            elif visit is not None and not visit.inside:
                del state.visits[track_id]  # it never entered
        return events

    def _gone(
        self, zone: Zone, state: _ZoneState, now: tuple[int, float, float]
    ) -> list[AnalyticsEvent]:
        """The visits that are over: their track was not seen inside on the last
        `leave_frames` detected frames (seen outside, or not detected at all). This is the
        one rule of a visit's end: a visit is open exactly while its track was seen inside
        on one of the last `leave_frames` detected frames. A visit still entering is
        dropped as soon as its track is not seen inside (`_zone_step`: seen outside) or
        missed for as long."""
        over = [
            track_id
            for track_id, visit in state.visits.items()
            if self._updates - visit.seen >= self.rules.leave_frames
        ]
        events: list[AnalyticsEvent] = []
        for track_id in over:
            visit = state.visits.pop(track_id)
            if visit.inside:
                events.append(self._zone_event("left", zone, track_id, visit, now))
        return events

    def _zone_event(
        self,
        kind: Literal["entered", "dwell", "left"],
        zone: Zone,
        track_id: int,
        visit: _Visit,
        now: tuple[int, float, float],
        *,
        at_stream_end: bool = False,
    ) -> ZoneEvent:
        """A visit's event on frame `now`; a visit that is over ("left") dwelt until the
        last frame the track was inside (its `last_frame`), one still going until now."""
        until = visit.last_inside if kind == "left" else now
        return ZoneEvent(
            kind,
            self.camera_id,
            zone.id,
            track_id,
            visit.label,
            frame=now[0],
            time=now[1],
            entered_frame=visit.first[0],
            entered_time=visit.first[1],
            dwell_s=max(0.0, until[2] - visit.first[2]),
            at_stream_end=at_stream_end,
            last_frame=until[0],
            last_time=until[1],
        )

    def _occupancy(
        self, now: tuple[int, float, float], periodic: bool = True
    ) -> list[AnalyticsEvent]:
        """Occupancy of every zone whose counts changed (of every zone, when a period has
        passed): its open visits that have entered (`_gone` says when a visit is over)."""
        period = self.rules.occupancy_period_s
        due = False
        if periodic and period is not None:
            if self._period_start is None:
                self._period_start = now[2]
            elif now[2] - self._period_start >= period:
                self._period_start, due = now[2], True
        events: list[AnalyticsEvent] = []
        for zone, state in zip(self.zones, self._zones, strict=True):
            counts: dict[int, int] = {}
            for visit in state.visits.values():
                if visit.inside:
                    counts[visit.label] = counts.get(visit.label, 0) + 1
            current = tuple(sorted(counts.items()))
            if current != state.counts or due:
                state.counts = current
                events.append(ZoneOccupancy(self.camera_id, zone.id, current, now[0], now[1]))
        return events

    def _forget(self, track_id: int, now: tuple[int, float, float]) -> list[AnalyticsEvent]:
        """A track ended: it leaves every zone it is in, and its sides are forgotten."""
        events: list[AnalyticsEvent] = []
        for zone, state in zip(self.zones, self._zones, strict=True):
            visit = state.visits.pop(track_id, None)
            if visit is not None and visit.inside:
                events.append(self._zone_event("left", zone, track_id, visit, now))
        for sides in self._sides:
            sides.pop(track_id, None)
        return events

    # ------------------------------------------------------------------ lines

    def _line_step(
        self,
        line: Line,
        sides: dict[int, _Crossing],
        ends: tuple[XY, XY],
        hysteresis_px: float,
        ids: list[int],
        labels: list[int],
        counted: list[bool],
        distances: list[float],
        points: list[list[float]],
        now: tuple[int, float, float],
    ) -> list[AnalyticsEvent]:
        events: list[AnalyticsEvent] = []
        for track_id, label, wanted, distance, point in zip(
            ids, labels, counted, distances, points, strict=True
        ):
            if not wanted or abs(distance) <= hysteresis_px:
                continue  # in the band around the line: no side yet, or still the old one
            side = 1 if distance > 0 else -1
            here = (point[0], point[1])
            known = sides.get(track_id)
            if known is None:
                sides[track_id] = _Crossing(side, here)
                continue
            if side != known.side:
                where = crossing_position(known.point, here, *ends)
                if 0.0 <= where <= 1.0:  # through the segment, not around one of its ends
                    events.append(self._crossing(line, track_id, label, known.side, side, now))
                known.side = side
            known.point = here
        return events

    def _crossing(
        self,
        line: Line,
        track_id: int,
        label: int,
        before: int,
        after: int,
        now: tuple[int, float, float],
    ) -> LineCrossing:
        from_side: Side = "right" if before > 0 else "left"
        to_side: Side = "right" if after > 0 else "left"
        direction = line.left_to_right if from_side == "left" else line.right_to_left
        return LineCrossing(
            self.camera_id,
            line.id,
            track_id,
            label,
            direction,
            from_side,
            to_side,
            frame=now[0],
            time=now[1],
        )


def _counted(labels: frozenset[int], column: np.ndarray) -> np.ndarray:
    """Which boxes of the label `column` a zone or line of `labels` counts."""
    return np.isin(column, list(labels))
