"""Events as one readable line each, for `python -m pipeline subscribe` on a terminal."""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Sequence
from datetime import datetime

from sinks.event_bus.schema import (
    CameraStatusEvent,
    DetectionsEvent,
    Event,
    LineCrossedEvent,
    TrackEndedEvent,
    TrackStartedEvent,
    ZoneDwellEvent,
    ZoneEnteredEvent,
    ZoneLeftEvent,
    ZoneOccupancyEvent,
)


def _local_clock(iso: str) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    with contextlib.suppress(OverflowError):  # 9999-12-31T23:59Z east of Greenwich: in UTC
        moment = moment.astimezone()
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _short_box(box: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.0f}" for v in box) + "]"


def _short_score(score: float | None) -> str:
    return "?" if score is None else f"{score:.2f}"


def format_event(event: Event) -> str:
    """One human-readable line, times in local time, e.g.

    `10:00:00.123 lobby #5021 frame 1234: 2 objects: person 0.93 #7 [100,120,180,300], ...`

    Control characters in it are shown escaped (`\\n`, `\\x1b`): its names and messages
    come from whoever publishes, and a terminal would act on them.
    """
    return _escaped(_line(event))


def _escaped(line: str) -> str:
    """`line` with its control characters (Unicode category Cc) as Python escapes."""
    if line.isprintable():
        return line
    return "".join(
        c.encode("unicode_escape").decode() if unicodedata.category(c) == "Cc" else c for c in line
    )


def _line(event: Event) -> str:
    """`format_event`'s line, as the event's fields spell it."""
    frame = "-" if event.frame is None else str(event.frame)
    head = f"{_local_clock(event.time)} {event.camera} #{event.seq} frame {frame}"
    if isinstance(event, DetectionsEvent):
        if not event.objects:
            return f"{head}: no objects"
        parts = [
            f"{o.label} {_short_score(o.score)}"
            + (f" #{o.track_id}" if o.track_id is not None else "")
            + f" {_short_box(o.box)}"
            for o in event.objects
        ]
        noun = "object" if len(parts) == 1 else "objects"
        return f"{head}: {len(parts)} {noun}: " + ", ".join(parts)
    if isinstance(event, TrackStartedEvent):
        return (
            f"{head}: track #{event.track_id} started: {event.label} "
            f"{_short_score(event.best_score)} {_short_box(event.last_box)}"
        )
    if isinstance(event, TrackEndedEvent):
        snapshot = (
            ", snapshot lost"
            if event.snapshot_lost
            else f", snapshot {event.snapshot_path}"
            if event.snapshot_path
            else ""
        )
        return (
            f"{head}: track #{event.track_id} ended: {event.label}, {event.frames} frames "
            f"({event.first_frame}-{event.last_frame}), best {_short_score(event.best_score)}"
            f"{snapshot}"
        )
    if isinstance(event, ZoneEnteredEvent):
        return f"{head}: {event.label} #{event.track_id} entered zone {event.zone}"
    if isinstance(event, ZoneLeftEvent):
        why = " (stream ended)" if event.at_stream_end else ""
        # zone.left comes leave_frames detected frames after the track was last inside
        last = (
            f", last inside at frame {event.last_frame}" if event.last_frame != event.frame else ""
        )
        return (
            f"{head}: {event.label} #{event.track_id} left zone {event.zone} after "
            f"{event.dwell_s:.1f} s{last}{why}"
        )
    if isinstance(event, ZoneDwellEvent):
        return (
            f"{head}: {event.label} #{event.track_id} in zone {event.zone} for "
            f"{event.dwell_s:.1f} s"
        )
    if isinstance(event, ZoneOccupancyEvent):
        per_label = ", ".join(f"{n} {label}" for label, n in sorted(event.counts.items()))
        return f"{head}: zone {event.zone}: {event.total} inside" + (
            f" ({per_label})" if per_label else ""
        )
    if isinstance(event, LineCrossedEvent):
        return (
            f"{head}: {event.label} #{event.track_id} crossed line {event.line}: "
            f"{event.direction} ({event.from_side} side to {event.to_side} side)"
        )
    if isinstance(event, CameraStatusEvent):
        retry = f", retry in {event.retry_in_s:g} s" if event.retry_in_s is not None else ""
        why = f": {event.message}" if event.message else ""
        return f"{head}: camera {event.state}{why}{retry}"
    if event.error is not None:
        return f"{head}: stream FAILED after {event.frames} frames: {event.error}"
    return f"{head}: stream ended after {event.frames} frames"
