"""The API's response bodies: what its OpenAPI description promises."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class RunOut(BaseModel):
    id: int
    started_at: datetime
    ended_at: datetime | None
    status: str = Field(
        description="running, finished, failed, interrupted, or lost (a cluster shard that "
        "died; its cameras were taken over by other runs)"
    )
    config: str = Field(description="The config file the run was started with.")
    hostname: str
    detections: int
    tracks: int
    reason: str | None = Field(None, description="Why the run was lost; null otherwise.")


class DetectionOut(BaseModel):
    id: int
    run_id: int
    camera: str
    frame: int
    pts: float
    time: datetime
    label: str
    label_id: int
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    track_id: int | None


class TrackOut(BaseModel):
    run_id: int
    camera: str
    track_id: int
    label: str
    first_time: datetime
    last_time: datetime
    frames: int
    best_score: float
    best_x1: float
    best_y1: float
    best_x2: float
    best_y2: float
    snapshot_path: str | None = Field(
        None, description="Where the snapshots sink wrote its picture (none without one)."
    )


class VisitOut(BaseModel):
    run_id: int
    camera: str
    zone: str
    track_id: int
    label: str
    entered_frame: int = Field(description="The first frame of the visit.")
    entered_at: datetime
    last_frame: int | None = Field(
        description="The last frame the track was seen inside; null in rows of older versions."
    )
    last_time: datetime | None = Field(description="The time of `last_frame`.")
    left_frame: int = Field(
        description="The frame the visit was closed on: `leave_frames` detected frames "
        "after `last_frame`, or where the track or the stream ended."
    )
    left_at: datetime
    dwell_s: float = Field(description="Seconds of video inside, to `last_frame`.")
    at_stream_end: bool = Field(
        description="Closed by the end of the stream (or a stop) with the track inside."
    )


class CountOut(BaseModel):
    key: str = Field(description="The label, camera or run id counted.")
    detections: int
    tracks: int = Field(description="Distinct confirmed tracks among those detections.")


_PERIOD = "Start of the period (UTC) with `every`; null without."


class LineCountOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    period: datetime | None = Field(None, alias="from", description=_PERIOD)
    camera: str
    line: str
    direction: str = Field(description="in or out, as the line's config names its sides.")
    crossings: int
    tracks: int = Field(description="Distinct tracks among those crossings.")


class ZoneCountOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    period: datetime | None = Field(None, alias="from", description=_PERIOD)
    camera: str
    zone: str
    visits: int | None = Field(None, description="Finished visits (without `every`).")
    tracks: int | None = Field(None, description="Distinct tracks visiting (without `every`).")
    mean_dwell_s: float | None = Field(None, description="Mean dwell (without `every`).")
    max_dwell_s: float | None = Field(None, description="Longest dwell (without `every`).")
    entered: int | None = Field(None, description="Visits entered in the period (with `every`).")
    peak: int | None = Field(
        None, description="Most visits open at once in the period: occupancy (with `every`)."
    )


class RunsPage(BaseModel):
    total: int = Field(description="Runs stored in all.")
    rows: list[RunOut]


class DetectionsPage(BaseModel):
    total: int = Field(description="Detections that match, in all.")
    rows: list[DetectionOut]


class TracksPage(BaseModel):
    total: int = Field(description="Tracks that match, in all.")
    rows: list[TrackOut]


class VisitsPage(BaseModel):
    total: int = Field(description="Visits that match, in all.")
    rows: list[VisitOut]


class CameraOut(BaseModel):
    camera: str
    source: str
    ok: bool = Field(description="False once the camera failed.")
    status: str = Field(description="ok, 'ok until lost: why' or 'FAILED: why'.")
    frames: int
    detections: int
    tracks: int
    dropped: int
    decode_errors: int
    reconnects: int


class SinkOut(BaseModel):
    sink: str
    ok: bool
    written: int
    failed: int = Field(description="Frame results not written because the sink failed.")
    buffered: int


class StatusOut(BaseModel):
    ok: bool = Field(description="No camera and no sink has failed.")
    cameras: list[CameraOut]
    sinks: list[SinkOut]


class HealthOut(BaseModel):
    ok: bool
    problems: list[str] = Field(description="One line per camera, sink or database at fault.")
