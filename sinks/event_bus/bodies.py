"""The bus's detections, track, stream and camera events, built from the shared types."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

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
    """Unix seconds as ISO-8601 UTC with milliseconds, e.g. '2026-11-21T10:00:00.123Z'.

    The same text as `datetime.fromtimestamp(t, timezone.utc).isoformat(timespec=
    "milliseconds")`, with the date and time of day formatted once per second.
    """
    # As datetime.fromtimestamp does: the fraction rounded to microseconds, half to even.
    fraction, whole = math.modf(unix_seconds)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    return f"{_iso_second(int(whole))}.{micro // 1000:03d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(unix_seconds: int) -> str:
    moment = datetime.fromtimestamp(unix_seconds, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").removesuffix("+00:00")


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


BOX_DIGITS = 1
"""Decimals of a box's pixel coordinates in events."""
SCORE_DIGITS = 4
"""Decimals of a score in events."""


def _box(xyxy: Sequence[float]) -> list[float]:
    return [round(float(v), BOX_DIGITS) for v in xyxy]


def _score(value: float) -> float | None:
    # JSON has no NaN; a non-finite score is sent as null rather than as invalid JSON. Only
    # tracks' scores come here: a `TrackSummary` is not checked for them as `Detections` is.
    value = float(value)
    return round(value, SCORE_DIGITS) if math.isfinite(value) else None


def _rounded(column: npt.NDArray[np.float32], digits: int) -> list[Any]:
    """`round(float(v), digits)` of every value of a float32 column, as (nested) lists.

    numpy rounds as rint(v * 10**digits) / 10**digits, which is Python's correctly rounded
    `round` whenever v * 10**digits is exact in float64: for float32 values (24-bit
    mantissas) with up to 12 digits (5**12 < 2**29).
    """
    if column.dtype != np.float32:
        raise TypeError(f"expected a float32 column, got {column.dtype}")
    return column.astype(np.float64).round(digits).tolist()


def detection_objects(detections: Detections, labels: LabelMap) -> list[dict[str, Any]]:
    """The `objects` list of a detections event, one entry per box."""
    if not len(detections):
        return []
    label_ids = detections.label.tolist()
    names = {label: labels.name(label) for label in set(label_ids)}
    return [
        {
            "label": names[label],
            "label_id": label,
            "score": score,
            "box": box,
            "track_id": None if track_id == UNTRACKED else track_id,
        }
        for box, score, label, track_id in zip(
            _rounded(detections.xyxy, BOX_DIGITS),
            _rounded(detections.score, SCORE_DIGITS),
            label_ids,
            detections.track_id.tolist(),
            strict=True,
        )
    ]


def detections_fields(
    frame: Frame, detections: Detections, labels: LabelMap, seq: int
) -> dict[str, Any]:
    """The fields of a frame's `detections` event (sent even when there are no boxes), as
    `detections_event(...).model_dump()` gives them, without building the model: this one
    is sent for every frame of every camera."""
    body = _header(DETECTIONS, frame.camera_id, seq, int(frame.index), frame.wall_time)
    body.update(
        pts=float(frame.pts),
        width=frame.width,
        height=frame.height,
        objects=detection_objects(detections, labels),
    )
    return body


def detections_event(
    frame: Frame, detections: Detections, labels: LabelMap, seq: int
) -> DetectionsEvent:
    """The `detections` event of one frame (sent even when there are no boxes)."""
    return DetectionsEvent.model_validate(detections_fields(frame, detections, labels, seq))


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
