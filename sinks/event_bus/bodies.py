"""The bus's detections, track, stream and camera events, built from the shared types."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from pipeline.types import (
    UNTRACKED,
    CameraStatus,
    Detections,
    Frame,
    LabelMap,
    Snapshot,
    StreamEnd,
    TrackSummary,
)
from sinks.event_bus.schema import (
    CAMERA_STATUS,
    DETECTIONS,
    SCHEMA_VERSION,
    STREAM_ENDED,
    TRACK_ENDED,
    TRACK_STARTED,
    CameraStatusEvent,
    DetectionsEvent,
    StreamEndedEvent,
    TrackEndedEvent,
    TrackStartedEvent,
)


def iso_time(unix_seconds: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds, e.g. '2026-11-21T10:00:00.123Z'."""
    moment = datetime.fromtimestamp(unix_seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header(
    event_type: str, camera: str, seq: int, frame: int | None, wall_time: float
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": event_type,
        "camera": camera,
        "seq": seq,
        "time": iso_time(wall_time),
        "frame": frame,
    }


def _box(xyxy: Sequence[float]) -> list[float]:
    return [round(float(v), 1) for v in xyxy]


def _score(value: float) -> float | None:
    # JSON has no NaN; a non-finite score is sent as null rather than as invalid JSON.
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def detection_objects(detections: Detections, labels: LabelMap) -> list[dict[str, Any]]:
    """The `objects` list of a detections event, one entry per box."""
    # Columns as Python lists first: far faster than iterating numpy scalars.
    return [
        {
            "label": labels.name(label),
            "label_id": label,
            "score": _score(score),
            "box": _box(xyxy),
            "track_id": None if track_id == UNTRACKED else track_id,
        }
        for xyxy, score, label, track_id in zip(
            detections.xyxy.tolist(),
            detections.score.tolist(),
            detections.label.tolist(),
            detections.track_id.tolist(),
            strict=True,
        )
    ]


def detections_event(
    frame: Frame, detections: Detections, labels: LabelMap, seq: int
) -> DetectionsEvent:
    """The `detections` event of one frame (sent even when there are no boxes)."""
    body = _header(DETECTIONS, frame.camera_id, seq, frame.index, frame.wall_time)
    body.update(
        pts=frame.pts,
        width=frame.width,
        height=frame.height,
        objects=detection_objects(detections, labels),
    )
    return DetectionsEvent.model_validate(body)


def track_event(
    kind: str,
    track: TrackSummary,
    labels: LabelMap,
    seq: int,
    frame: int | None,
    wall_time: float,
    snapshot: Snapshot | None = None,
) -> TrackStartedEvent | TrackEndedEvent:
    """The `track.started` ("started") or `track.ended` ("ended") event, sent at `frame`;
    an ended track's `snapshot` gives its paths."""
    event_type = TRACK_STARTED if kind == "started" else TRACK_ENDED
    body = _header(event_type, track.camera_id, seq, frame, wall_time)
    # int()/float() also turn numpy scalars a tracker may have stored into JSON numbers.
    body.update(
        track_id=int(track.track_id),
        label=labels.name(int(track.label)),
        label_id=int(track.label),
        first_frame=int(track.first_frame),
        last_frame=int(track.last_frame),
        first_time=iso_time(track.first_time),
        last_time=iso_time(track.last_time),
        frames=int(track.frames),
        best_score=_score(track.best_score),
        best_box=_box(track.best_box),
        last_box=_box(track.last_box),
    )
    if kind == "started":
        return TrackStartedEvent.model_validate(body)
    body.update(
        snapshot_path=None if snapshot is None else snapshot.stored_paths[0],
        snapshot_frame_path=None if snapshot is None else snapshot.stored_paths[1],
        snapshot_lost=snapshot is not None and snapshot.lost is not None,
    )
    return TrackEndedEvent.model_validate(body)


def stream_ended_event(
    stream_end: StreamEnd, seq: int, frame: int | None, wall_time: float
) -> StreamEndedEvent:
    """The `stream.ended` event; `frame` is the stream's last frame (None if none)."""
    body = _header(STREAM_ENDED, stream_end.camera_id, seq, frame, wall_time)
    body.update(frames=stream_end.frames, error=stream_end.error)
    return StreamEndedEvent.model_validate(body)


def camera_status_event(status: CameraStatus, seq: int, frame: int | None) -> CameraStatusEvent:
    """The `camera.status` event of a reader's state change; `frame`: the last one seen."""
    body = _header(CAMERA_STATUS, status.camera_id, seq, frame, status.time)
    body.update(
        state=status.state,
        message=status.message,
        frames=status.frames,
        dropped=status.dropped,
        decode_errors=status.decode_errors,
        retry_in_s=status.retry_in_s,
    )
    return CameraStatusEvent.model_validate(body)
