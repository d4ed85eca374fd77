"""The event contract: pydantic models, the committed JSON Schema, and the events built from
the shared types."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.types import (
    CameraStatus,
    Detections,
    Frame,
    LineCrossing,
    Snapshot,
    SnapshotLoss,
    StreamEnd,
    TrackSummary,
    ZoneEvent,
    ZoneOccupancy,
)
from sinks.event_bus.bodies import (
    camera_status_event,
    detections_event,
    stream_ended_event,
    track_event,
)
from sinks.event_bus.scene_events import analytics_event
from sinks.event_bus.schema import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Event,
    event_json_schema,
    parse_event,
    schema_text,
)
from tests.sinks.event_bus.conftest import LABELS

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_795_255_200.0  # 2026-11-21T10:00:00Z


def frame(index: int = 7) -> Frame:
    return Frame(
        "lobby", index, pts=index / 25, wall_time=T0 + 0.123, image=np.zeros((6, 8, 3), np.uint8)
    )


def dets(tracks: list[int], labels: list[int] | None = None) -> Detections:
    n = len(tracks)
    return Detections(
        xyxy=np.array([[2.0, 3.04, 31.0, 41.0]] * n, np.float32).reshape(n, 4),
        score=np.full(n, 0.9, np.float32),
        label=np.array(labels or [1] * n, np.int64),
        track_id=np.array(tracks, np.int64),
    )


def summary(track_id: int = 5) -> TrackSummary:
    return TrackSummary(
        camera_id="lobby",
        track_id=track_id,
        label=1,
        first_frame=3,
        last_frame=7,
        first_time=T0,
        last_time=T0 + 0.2,
        frames=5,
        best_score=0.91234,
        best_box=(1.0, 2.0, 30.26, 40.0),
        last_box=(2.0, 3.0, 31.0, 41.0),
    )


def every_kind_of_event() -> list[Event]:
    return [
        detections_event(frame(), dets([5, -1]), LABELS, seq=0),
        detections_event(frame(), Detections.empty(), LABELS, seq=1),
        track_event("started", summary(), LABELS, 2, 7, T0),
        track_event("ended", summary(), LABELS, 3, 7, T0),
        stream_ended_event(StreamEnd("lobby", 8, error="decoder gave up"), 4, 7, T0),
        stream_ended_event(StreamEnd("lobby", 0), 0, None, T0),
        camera_status_event(
            CameraStatus("lobby", "reconnecting", T0, "connection refused", 8, 2, 0, 0.5), 5, 7
        ),
        camera_status_event(CameraStatus("lobby", "connecting", T0), 0, None),
        *analytics_events(),
    ]


def analytics_events() -> list[Event]:
    """One event of each kind zones and lines send (seq 10 to 15)."""
    visit = partial(
        ZoneEvent,
        camera_id="lobby",
        zone_id="door",
        track_id=5,
        label=1,
        frame=9,
        time=T0 + 0.9,
        entered_frame=3,
        entered_time=T0 + 0.3,
    )
    return [
        analytics_event(visit("entered", dwell_s=0.2), LABELS, 10),
        analytics_event(visit("dwell", dwell_s=120.04), LABELS, 11),
        analytics_event(
            visit("left", dwell_s=130.0, last_frame=6, last_time=T0 + 0.6),
            LABELS,
            12,
        ),
        analytics_event(visit("left", dwell_s=131.5, at_stream_end=True), LABELS, 13),
        analytics_event(
            LineCrossing("lobby", "entrance", 5, 1, "in", "left", "right", 9, T0 + 0.9),
            LABELS,
            14,
        ),
        analytics_event(ZoneOccupancy("lobby", "door", ((1, 2), (2, 1)), 9, T0 + 0.9), LABELS, 15),
    ]


def test_committed_json_schema_is_the_one_the_models_generate() -> None:
    committed = (ROOT / "docs" / "events.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "docs/events.schema.json is stale: run `python -m sinks.event_bus.schema > docs/events.schema.json`"
    )


def test_schema_lists_every_event_type_and_requires_the_common_fields() -> None:
    schema = event_json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    for name in (
        "DetectionsEvent",
        "TrackStartedEvent",
        "TrackEndedEvent",
        "StreamEndedEvent",
        "CameraStatusEvent",
        "ZoneEnteredEvent",
        "ZoneLeftEvent",
        "ZoneDwellEvent",
        "ZoneOccupancyEvent",
        "LineCrossedEvent",
    ):
        required = set(schema["$defs"][name]["required"])
        assert {"schema_version", "type", "camera", "seq", "time", "frame"} <= required


def test_every_event_the_sink_builds_round_trips_through_json_unchanged() -> None:
    for event in every_kind_of_event():
        wire = event.model_dump_json()
        parsed = parse_event(wire.encode())
        assert type(parsed) is type(event)
        assert parsed == event
        assert json.loads(parsed.model_dump_json()) == json.loads(wire)
        assert parsed.schema_version == SCHEMA_VERSION


def test_unknown_fields_from_a_newer_publisher_are_kept() -> None:
    body = json.loads(every_kind_of_event()[4].model_dump_json())
    body["zone"] = "entrance"
    event = parse_event(body)
    assert json.loads(event.model_dump_json())["zone"] == "entrance"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"type": "door.opened"}, "does not match any of the expected tags"),
        ({"seq": -1}, "greater than or equal to 0"),
        ({"time": "2026-11-21 10:00:00"}, "should match pattern"),
        ({"frames": None}, "valid integer"),
    ],
    ids=["unknown-type", "negative-seq", "time-not-iso-ms", "frames-null"],
)
def test_invalid_bodies_are_rejected(change: dict[str, object], problem: str) -> None:
    body = json.loads(every_kind_of_event()[4].model_dump_json())
    with pytest.raises(ValidationError, match=problem):
        parse_event({**body, **change})


def test_zone_and_line_events_carry_names_for_labels_and_iso_times() -> None:
    entered, dwell, left, closed, crossed, occupancy = (
        json.loads(e.model_dump_json()) for e in analytics_events()
    )
    assert entered == {
        "schema_version": SCHEMA_VERSION,
        "type": "zone.entered",
        "camera": "lobby",
        "seq": 10,
        "time": "2026-11-21T10:00:00.900Z",
        "frame": 9,
        "zone": "door",
        "track_id": 5,
        "label": "person",
        "label_id": 1,
        "entered_frame": 3,
        "entered_time": "2026-11-21T10:00:00.300Z",
        "dwell_s": 0.2,
    }
    assert (dwell["type"], dwell["dwell_s"]) == ("zone.dwell", 120.04)
    assert (left["type"], left["at_stream_end"], closed["at_stream_end"]) == (
        "zone.left",
        False,
        True,
    )
    # the last frame inside: its own for a visit that left, the event's when not given
    assert (left["last_frame"], left["last_time"]) == (6, "2026-11-21T10:00:00.600Z")
    assert (closed["last_frame"], closed["last_time"]) == (9, "2026-11-21T10:00:00.900Z")
    assert {k: crossed[k] for k in ("type", "line", "direction", "from_side", "to_side")} == {
        "type": "line.crossed",
        "line": "entrance",
        "direction": "in",
        "from_side": "left",
        "to_side": "right",
    }
    assert (occupancy["zone"], occupancy["total"], occupancy["counts"]) == (
        "door",
        3,
        {"person": 2, "car": 1},
    )


def snapshot(lost: SnapshotLoss | None = None) -> Snapshot:
    """Track 7's snapshot under out/snapshots/lobby/, its crop and its frame (or `lost`)."""
    crop = np.zeros((2, 2, 3), np.uint8)
    name = "lobby/20261121-100000-000_5"
    return Snapshot(
        7, (1.0, 2.0, 30.26, 40.0), crop, "out/snapshots", f"{name}.jpg", crop,
        f"{name}-frame.jpg", lost=lost,
    )  # fmt: skip


def test_track_ended_carries_its_snapshot_paths_and_null_without_one() -> None:
    snap = snapshot()
    body = json.loads(track_event("ended", summary(), LABELS, 3, 7, T0, snap).model_dump_json())
    assert body["snapshot_path"] == "out/snapshots/lobby/20261121-100000-000_5.jpg"
    assert body["snapshot_frame_path"] == "out/snapshots/lobby/20261121-100000-000_5-frame.jpg"
    bare = json.loads(track_event("ended", summary(), LABELS, 3, 7, T0).model_dump_json())
    assert bare["snapshot_path"] is None and bare["snapshot_frame_path"] is None
    started = json.loads(
        track_event("started", summary(), LABELS, 2, 7, T0, snap).model_dump_json()
    )
    assert "snapshot_path" not in started
    assert body["snapshot_lost"] is False and bare["snapshot_lost"] is False


def test_a_snapshot_that_could_not_be_written_is_sent_lost_without_paths() -> None:
    lost = SnapshotLoss("disk full: the file system at /mnt (0.0 MB free of 1.0 MB)", True)
    snap = snapshot(lost)
    body = json.loads(track_event("ended", summary(), LABELS, 3, 7, T0, snap).model_dump_json())
    assert (body["snapshot_path"], body["snapshot_frame_path"], body["snapshot_lost"]) == (
        None,
        None,
        True,
    )


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe\xfa", b"", b'{"seq": NaN}', b"[1, 2]", b"42"]
)
def test_a_body_that_is_not_a_json_object_is_a_validation_error(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_event(body)


def test_a_time_of_its_pattern_that_is_no_real_time_is_a_validation_error() -> None:
    body = {
        "schema_version": 1,
        "type": "stream.ended",
        "camera": "cam1",
        "seq": 0,
        "time": "2026-13-45T10:00:00.123Z",
        "frame": None,
        "frames": 0,
        "error": None,
    }
    with pytest.raises(ValidationError, match=r"time\n  not a real time: month must be in 1\.\.12"):
        parse_event(json.dumps(body).encode())


@pytest.mark.parametrize("opening", [b"[", b'{"a": '], ids=["arrays", "objects"])
def test_a_body_nested_too_deeply_is_a_validation_error_not_a_recursion_error(
    opening: bytes,
) -> None:
    # 100 kB, well within the subscriber's bound on a message
    with pytest.raises(ValidationError, match="nested too deeply"):
        parse_event(opening * 100_000)


def test_a_large_object_body_is_rejected_in_memory_a_few_times_its_size() -> None:
    # pydantic's JSON mode held a 13 MB object of many keys in 1.3 GB while rejecting it
    code = (
        "import json, resource\n"
        "from pydantic import ValidationError\n"
        "from sinks.event_bus.schema import parse_event\n"
        "body = json.dumps({'type': 'detections', **{f'k{i}': [i] * 3 for i in range(100_000)}})\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    parse_event(body.encode())\n"
        "except ValidationError:\n"
        "    pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, len(body))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    grown, size = map(int, out.split())
    assert grown < 10 * size, f"rejecting {size} bytes took {grown / 2**20:.0f} MiB"
