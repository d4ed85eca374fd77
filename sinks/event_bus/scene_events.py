"""The bus events of what zones and lines saw, built from the shared types (the models are
in `sinks.event_bus.schema`, with every other event's)."""

from __future__ import annotations

from pipeline.types import AnalyticsEvent, LabelMap, LineCrossing, ZoneEvent, ZoneOccupancy
from sinks.event_bus.bodies import _header, iso_time
from sinks.event_bus.schema import (
    LINE_CROSSED,
    ZONE_OCCUPANCY,
    LineCrossedEvent,
    ZoneDwellEvent,
    ZoneEnteredEvent,
    ZoneLeftEvent,
    ZoneOccupancyEvent,
)

AnalyticsBusEvent = (
    ZoneEnteredEvent | ZoneLeftEvent | ZoneDwellEvent | ZoneOccupancyEvent | LineCrossedEvent
)


def analytics_event(event: AnalyticsEvent, labels: LabelMap, seq: int) -> AnalyticsBusEvent:
    """The bus event of what a camera's zones or lines saw (sent at the event's frame)."""
    if isinstance(event, ZoneOccupancy):
        body = _header(ZONE_OCCUPANCY, event.camera_id, seq, event.frame, event.time)
        counts = {labels.name(int(label)): int(n) for label, n in event.counts}
        body.update(zone=event.zone_id, total=event.total, counts=counts)
        return ZoneOccupancyEvent.model_validate(body)
    if isinstance(event, LineCrossing):
        body = _header(LINE_CROSSED, event.camera_id, seq, event.frame, event.time)
        body.update(
            line=event.line_id,
            track_id=int(event.track_id),
            label=labels.name(int(event.label)),
            label_id=int(event.label),
            direction=event.direction,
            from_side=event.from_side,
            to_side=event.to_side,
        )
        return LineCrossedEvent.model_validate(body)
    return _zone_visit_event(event, labels, seq)


def _zone_visit_event(
    event: ZoneEvent, labels: LabelMap, seq: int
) -> ZoneEnteredEvent | ZoneLeftEvent | ZoneDwellEvent:
    models: dict[str, type[ZoneEnteredEvent | ZoneLeftEvent | ZoneDwellEvent]] = {
        "entered": ZoneEnteredEvent,
        "left": ZoneLeftEvent,
        "dwell": ZoneDwellEvent,
    }
    model = models[event.kind]
    body = _header(f"zone.{event.kind}", event.camera_id, seq, event.frame, event.time)
    body.update(
        zone=event.zone_id,
        track_id=int(event.track_id),
        label=labels.name(int(event.label)),
        label_id=int(event.label),
        entered_frame=int(event.entered_frame),
        entered_time=iso_time(event.entered_time),
        dwell_s=round(float(event.dwell_s), 3),
    )
    if event.kind == "left":
        last_frame, last_time = event.last_seen
        body.update(
            at_stream_end=event.at_stream_end,
            last_frame=int(last_frame),
            last_time=iso_time(last_time),
        )
    return model.model_validate(body)
