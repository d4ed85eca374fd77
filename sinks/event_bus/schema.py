"""The event contract of the ZeroMQ bus: one pydantic model per event type (built from the
shared types by `sinks.event_bus.bodies` and `sinks.event_bus.scene_events`).

Every event the `zmq` sink publishes is one of these models, serialised as JSON; subscribers
parse bodies back with `parse_event`. The JSON Schema in docs/events.schema.json is generated
from these models (`python -m sinks.event_bus.schema > docs/events.schema.json`) and a test
keeps the two equal. Field meanings are in docs/events.md.

Unknown fields are kept (`extra="allow"`): a newer publisher may add fields without raising
`schema_version`, and an older reader neither fails nor drops them when it re-serialises.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1
"""Version of the event bodies; raised when a field is removed or changes meaning."""

DETECTIONS: Final = "detections"
TRACK_STARTED: Final = "track.started"
TRACK_ENDED: Final = "track.ended"
STREAM_ENDED: Final = "stream.ended"
CAMERA_STATUS: Final = "camera.status"
ZONE_ENTERED: Final = "zone.entered"
ZONE_LEFT: Final = "zone.left"
ZONE_DWELL: Final = "zone.dwell"
ZONE_OCCUPANCY: Final = "zone.occupancy"
LINE_CROSSED: Final = "line.crossed"
EVENT_TYPES: tuple[str, ...] = (
    DETECTIONS,
    TRACK_STARTED,
    TRACK_ENDED,
    STREAM_ENDED,
    CAMERA_STATUS,
    ZONE_ENTERED,
    ZONE_LEFT,
    ZONE_DWELL,
    ZONE_OCCUPANCY,
    LINE_CROSSED,
)


def _real_time(text: str) -> str:
    """`text` if it names an instant (the pattern lets 2026-13-45 through), else refused."""
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PydanticCustomError("time", "not a real time: {why}", {"why": str(exc)}) from None
    return text


IsoTime = Annotated[
    str,
    AfterValidator(_real_time),
    Field(
        pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
        json_schema_extra={"format": "date-time"},
        description="ISO-8601 UTC with milliseconds, e.g. 2026-11-21T10:00:00.123Z",
        examples=["2026-11-21T10:00:00.123Z"],
    ),
]
Box = Annotated[
    list[float],
    Field(
        min_length=4,
        max_length=4,
        description="[x1, y1, x2, y2] in frame pixels, origin top-left, rounded to 0.1 px",
    ),
]
Score = Annotated[
    float | None,
    Field(description="confidence in [0, 1], 4 decimals; null if not a finite number"),
]


class _Model(BaseModel):
    # Publishers always send `type` and `schema_version`: required in the exported schema.
    model_config = ConfigDict(
        extra="allow", frozen=True, json_schema_serialization_defaults_required=True
    )


class EventBase(_Model):
    """Fields every event has."""

    schema_version: int = Field(
        SCHEMA_VERSION,
        description="Version of the event bodies; raised when a field is removed or "
        "changes meaning (new fields may appear without a change).",
    )
    type: str = Field(description="Event type; also the first part of the topic.")
    camera: str = Field(description="Camera id from the config.")
    seq: int = Field(
        ge=0,
        description="Per camera: 0 for the camera's first event, +1 for every event of any "
        "type, sent or dropped. A jump of k means k-1 events were lost.",
    )
    time: IsoTime = Field(description="Wall time of the frame the event belongs to.")
    frame: int | None = Field(
        ge=0,
        description="Index of that frame in its stream (0-based). For events sent when a "
        "stream ends: its last frame, or null when it ended before its first frame.",
    )


class DetectedObject(_Model):
    """One detected box of a `detections` event."""

    label: str = Field(description="Class name, or the class index when it has no name.")
    label_id: int = Field(description="Class index of the detector.")
    score: Score
    box: Box
    track_id: int | None = Field(
        description="Id of the confirmed track the box belongs to; null if none (yet)."
    )


class DetectionsEvent(EventBase):
    """Every processed frame, also frames without any object."""

    type: Literal["detections"] = DETECTIONS
    pts: float = Field(description="Presentation time of the frame, seconds from the start.")
    width: int = Field(ge=0, description="Frame width in pixels.")
    height: int = Field(ge=0, description="Frame height in pixels.")
    objects: list[DetectedObject] = Field(description="One entry per detected box.")


class _TrackFields(EventBase):
    track_id: int = Field(description="Track id, unique within the camera's stream.")
    label: str = Field(description="Class name of the track.")
    label_id: int = Field(description="Class index of the track.")
    first_frame: int = Field(ge=0, description="First frame of the track.")
    last_frame: int = Field(ge=0, description="Last frame with a box of the track (so far).")
    first_time: IsoTime = Field(description="Wall time of first_frame.")
    last_time: IsoTime = Field(description="Wall time of last_frame.")
    frames: int = Field(ge=0, description="Frames with a box of the track (so far).")
    best_score: Score
    best_box: Box = Field(description="The box with best_score.")
    last_box: Box = Field(description="The box at last_frame.")


class TrackStartedEvent(_TrackFields):
    """A track was confirmed (it got its track id)."""

    type: Literal["track.started"] = TRACK_STARTED


class TrackEndedEvent(_TrackFields):
    """A track was lost, or its stream ended while it was open."""

    type: Literal["track.ended"] = TRACK_ENDED
    snapshot_path: str | None = Field(
        None,
        description="File of the JPEG crop of the track's best detection, written before "
        "this event was sent (the snapshots sink's `dir`/<camera>/<UTC start>_<track>.jpg); "
        "null without that sink, or when it could not be written (snapshot_lost).",
    )
    snapshot_frame_path: str | None = Field(
        None,
        description="File of the whole frame of that detection (snapshots `full_frame`); "
        "null when not written.",
    )
    snapshot_lost: bool = Field(
        False,
        description="True when the track's snapshot could not be written (a full disk, or "
        "a disk that did not answer within the sink's write_timeout_s): its paths are null.",
    )


class StreamEndedEvent(EventBase):
    """A camera's stream is over; the last event of the camera."""

    type: Literal["stream.ended"] = STREAM_ENDED
    frames: int = Field(ge=0, description="Frames the stream delivered.")
    error: str | None = Field(
        description="Null when the stream ended normally, else a one-line reason."
    )


class CameraStatusEvent(EventBase):
    """A camera's reader changed state (a live camera connecting, reconnecting, failing...)."""

    type: Literal["camera.status"] = CAMERA_STATUS
    state: Literal["connecting", "streaming", "reconnecting", "stopped", "failed"] = Field(
        description="connecting: opening the source; streaming: frames flow; reconnecting: "
        "lost, waiting retry_in_s before the next attempt; stopped: ended normally or by a "
        "stop; failed: given up."
    )
    message: str | None = Field(description="Why, in one line (passwords masked); or null.")
    frames: int = Field(ge=0, description="Frames decoded from the camera so far.")
    dropped: int = Field(
        ge=0, description="Frames dropped so far to keep latency bounded (live sources)."
    )
    decode_errors: int = Field(ge=0, description="Corrupt packets or images skipped so far.")
    retry_in_s: float | None = Field(
        description="With reconnecting: seconds until the next attempt; else null."
    )


class _ZoneVisitFields(EventBase):
    zone: str = Field(description="Zone id from the camera's config.")
    track_id: int = Field(description="Track id, unique within the camera's stream.")
    label: str = Field(description="Class name of the track.")
    label_id: int = Field(description="Class index of the track.")
    entered_frame: int = Field(ge=0, description="First frame of the visit inside the zone.")
    entered_time: IsoTime = Field(description="Wall time of entered_frame.")
    dwell_s: float = Field(
        ge=0,
        description="Seconds of stream time inside the zone, from entered_frame to the last "
        "frame inside (so far).",
    )


class ZoneEnteredEvent(_ZoneVisitFields):
    """A track has entered a zone (its anchor seen inside on `min_frames` detected frames,
    with none seen outside between)."""

    type: Literal["zone.entered"] = ZONE_ENTERED


class ZoneLeftEvent(_ZoneVisitFields):
    """A track has left a zone (not seen inside for `leave_frames` detected frames), its
    track ended, or the stream ended while it was inside."""

    type: Literal["zone.left"] = ZONE_LEFT
    at_stream_end: bool = Field(
        description="True when the visit was closed by the end of the stream (or a stop) "
        "with the track still inside."
    )
    last_frame: int = Field(
        ge=0, description="The last frame the track was seen inside the zone (the visit's end)."
    )
    last_time: IsoTime = Field(description="Wall time of last_frame.")


class ZoneDwellEvent(_ZoneVisitFields):
    """A track has stayed in a zone longer than the zone's `dwell_alert_s` (once a visit)."""

    type: Literal["zone.dwell"] = ZONE_DWELL


class ZoneOccupancyEvent(EventBase):
    """How many tracks are in a zone now: on every change (and periodically if configured)."""

    type: Literal["zone.occupancy"] = ZONE_OCCUPANCY
    zone: str = Field(description="Zone id from the camera's config.")
    total: int = Field(ge=0, description="Tracks inside the zone.")
    counts: dict[str, int] = Field(
        description="Tracks inside per class name; classes with none are left out."
    )


class LineCrossedEvent(EventBase):
    """A track's anchor crossed a line, through the segment between its two points."""

    type: Literal["line.crossed"] = LINE_CROSSED
    line: str = Field(description="Line id from the camera's config.")
    track_id: int = Field(description="Track id, unique within the camera's stream.")
    label: str = Field(description="Class name of the track.")
    label_id: int = Field(description="Class index of the track.")
    direction: str = Field(
        description="The config's name for this direction (default left_to_right or right_to_left)."
    )
    from_side: Literal["left", "right"] = Field(
        description="The side it came from, as seen on the screen walking from the line's "
        "first point to its second."
    )
    to_side: Literal["left", "right"] = Field(description="The side it went to.")


Event = Annotated[
    DetectionsEvent
    | TrackStartedEvent
    | TrackEndedEvent
    | StreamEndedEvent
    | CameraStatusEvent
    | ZoneEnteredEvent
    | ZoneLeftEvent
    | ZoneDwellEvent
    | ZoneOccupancyEvent
    | LineCrossedEvent,
    Field(discriminator="type"),
]
"""Any event of the bus; `event.type` tells which model it is."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(body: bytes | str | dict[str, Any]) -> Event:
    """The event model of a JSON body (bytes/str) or a decoded dict.

    Raises pydantic.ValidationError when it is not a valid event of a known type.
    """
    if isinstance(body, dict):
        return EVENT_ADAPTER.validate_python(body)
    # Decoded first: pydantic's JSON mode holds a large object in ~100x its size while it
    # looks for the tag (a 13 MB body took 1.3 GB and seconds), the stdlib in a few times.
    try:
        decoded = json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:  # also bytes that are not UTF-8
        raise _invalid_json(str(exc)) from None
    except RecursionError:  # "[[[[..." from a hostile publisher: 1 kB is enough
        raise _invalid_json("nested too deeply") from None
    return EVENT_ADAPTER.validate_python(decoded)


def _invalid_json(error: str) -> ValidationError:
    """The ValidationError of a body that is not usable JSON, for the reason `error`."""
    return ValidationError.from_exception_data(
        "Event", [{"type": "json_invalid", "loc": (), "input": "", "ctx": {"error": error}}]
    )


def _no_constant(name: str) -> None:
    """Refuses NaN and Infinity, which are not JSON (the stdlib reads them)."""
    raise ValueError(f"{name} is not JSON")


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every event body, as committed in docs/."""
    schema = EVENT_ADAPTER.json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"ssd-pipeline event, schema_version {SCHEMA_VERSION}",
        "description": "Body of one message on the ZeroMQ event bus; see docs/events.md.",
        **schema,
    }


def schema_text() -> str:
    """`event_json_schema()` as the text committed to docs/events.schema.json."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=False) + "\n"


def topic(event_type: str, camera: str) -> str:
    """ZeroMQ topic of an event: '<type>.<camera>'."""
    return f"{event_type}.{camera}"


if __name__ == "__main__":  # python -m sinks.event_bus.schema > docs/events.schema.json
    sys.stdout.write(schema_text())
