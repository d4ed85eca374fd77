"""Rows of what zones and lines saw: a `zone_visits` row per finished visit (`zone.left`),
a `line_crossings` row per crossing. Entering, dwell alerts and occupancy are not stored:
a visit's row holds when it began, and occupancy at any moment is the visits open then."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.types import AnalyticsEvent, LabelMap, LineCrossing, ZoneEvent

SceneKey = tuple[str, str, int, int]
"""What a camera's zone visit or line crossing row is told apart by within a run (the
tables' unique constraints): ("zone", zone, track, entered frame) or ("line", line, track,
frame)."""


def scene_key(event: AnalyticsEvent) -> SceneKey | None:
    """The key of the row `event` is stored as (`scene_rows`); None when it is stored as
    none (entering, dwell alerts, occupancy)."""
    if isinstance(event, ZoneEvent) and event.kind == "left":
        return ("zone", event.zone_id, int(event.track_id), int(event.entered_frame))
    if isinstance(event, LineCrossing):
        return ("line", event.line_id, int(event.track_id), int(event.frame))
    return None


def scene_rows(
    run_id: int, events: Iterable[AnalyticsEvent], labels: LabelMap
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The zone visit rows and the line crossing rows of `events` (times as Unix seconds)."""
    visits: list[dict[str, Any]] = []
    crossings: list[dict[str, Any]] = []
    for event in events:
        if scene_key(event) is None:
            continue
        if isinstance(event, ZoneEvent):
            last_frame, last_time = event.last_seen
            visits.append(
                {
                    "run_id": run_id,
                    "camera": event.camera_id,
                    "zone": event.zone_id,
                    "track_id": int(event.track_id),
                    "label": labels.name(int(event.label)),
                    "label_id": int(event.label),
                    "entered_frame": int(event.entered_frame),
                    "entered_at": float(event.entered_time),
                    "left_frame": int(event.frame),
                    "left_at": float(event.time),
                    "dwell_s": float(event.dwell_s),
                    "at_stream_end": bool(event.at_stream_end),
                    "last_frame": int(last_frame),
                    "last_time": float(last_time),
                }
            )
        elif isinstance(event, LineCrossing):
            crossings.append(
                {
                    "run_id": run_id,
                    "camera": event.camera_id,
                    "line": event.line_id,
                    "track_id": int(event.track_id),
                    "label": labels.name(int(event.label)),
                    "label_id": int(event.label),
                    "direction": event.direction,
                    "from_side": event.from_side,
                    "to_side": event.to_side,
                    "frame": int(event.frame),
                    "time": float(event.time),
                }
            )
    return visits, crossings
