"""Zones and lines through the real command line: `python -m pipeline run` with a zone and
a line, the bus's events checked against the boxes the run stored, and the SQL rows of
visits and crossings against the events."""

from __future__ import annotations

import sqlite3
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from analytics import Line, SceneAnalyzer, SceneRules, Zone
from pipeline.config.scene import AnalyticsConfig
from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LineCrossing,
    TrackEvent,
    TrackSummary,
    ZoneEvent,
    ZoneOccupancy,
)
from tests.conftest import free_port
from tests.pipeline.cli_runs import run_cli, write_config
from tests.pipeline.test_run_e2e import Collector

SPLIT = 0.7
"""The line, and the zone's right edge, at this share of the width: where the people of the
clip's first 60 frames walk across (a few of them cross it, some stay left of it)."""
SCENE = (
    "    zones:\n"
    f"      - {{id: left, polygon: [[0, 0], [{SPLIT}, 0], [{SPLIT}, 1], [0, 1]], dwell_alert_s: 0.5}}\n"
    "    lines:\n"
    "      - id: middle\n"
    f"        points: [[{SPLIT}, 0], [{SPLIT}, 1]]\n"
    "        directions: {left_to_right: west, right_to_left: east}\n"
)
SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "pedestrians.mp4"
ANALYTICS = {"zone.entered", "zone.left", "zone.dwell", "zone.occupancy", "line.crossed"}


def stored_boxes(db: Path) -> dict[int, list[tuple[Any, ...]]]:
    """The run's boxes per frame as stored in SQL: exact, where the bus rounds to 0.1 px."""
    boxes: dict[int, list[tuple[Any, ...]]] = {}
    with sqlite3.connect(db) as conn:
        for frame, *row in conn.execute(
            "SELECT frame, x1, y1, x2, y2, score, label_id, track_id FROM detections "
            "ORDER BY frame, obj"
        ):
            boxes.setdefault(frame, []).append(tuple(row))
    return boxes


def replay(events: list[dict[str, Any]], db: Path, size: tuple[int, int]) -> list[tuple[Any, ...]]:
    """What a SceneAnalyzer makes of the run's stored boxes and the track ends the bus
    carried (those sent at the stream's end left to `finish`)."""
    defaults = AnalyticsConfig()  # the run's config leaves the analytics rules at theirs
    stored = stored_boxes(db)
    last_frame = max(e["frame"] for e in events if e["type"] == "detections")
    analyzer = SceneAnalyzer(
        "cam",
        [Zone("left", ((0, 0), (SPLIT, 0), (SPLIT, 1), (0, 1)), dwell_alert_s=0.5)],
        [Line("middle", (SPLIT, 0), (SPLIT, 1), left_to_right="west", right_to_left="east")],
        SceneRules(
            defaults.anchor_fractions,
            defaults.line_hysteresis,
            defaults.min_frames,
            defaults.occupancy_period_s,
            defaults.leave_frames,
        ),
    )
    out: list[Any] = []
    image = np.zeros((size[1], size[0], 3), np.uint8)
    for i, event in enumerate(events):
        if event["type"] != "detections":
            continue
        rows = stored.get(event["frame"], [])
        dets = Detections(
            xyxy=np.array([r[:4] for r in rows], np.float32).reshape(-1, 4),
            score=np.array([r[4] for r in rows], np.float32),
            label=np.array([r[5] for r in rows], np.int64),
            track_id=np.array([-1 if r[6] is None else r[6] for r in rows], np.int64),
        )
        ended = []
        for later in events[i + 1 :]:
            if later["type"] == "detections" or event["frame"] == last_frame:
                break
            if later["type"] == "track.ended" and later["frame"] == event["frame"]:
                box = (0.0, 0.0, 1.0, 1.0)
                summary = TrackSummary("cam", later["track_id"], 1, 0, 0, 0, 0, 1, 1, box, box)
                ended.append(TrackEvent("ended", summary))
        frame = Frame("cam", event["frame"], event["pts"], 0.0, image)
        out += analyzer.update(FrameResult(frame, dets, tuple(ended)))
    out += analyzer.finish()
    return [brief(e) for e in out]


def brief(event: Any) -> tuple[Any, ...]:
    """An analytics event as (type, frame, what), from the types or from a bus body."""
    if isinstance(event, ZoneEvent):
        return (f"zone.{event.kind}", event.frame, event.track_id, event.at_stream_end)
    if isinstance(event, LineCrossing):
        return ("line.crossed", event.frame, event.track_id, event.direction)
    if isinstance(event, ZoneOccupancy):
        return ("zone.occupancy", event.frame, event.total)
    kind = event["type"]
    if kind == "zone.occupancy":
        return (kind, event["frame"], event["total"])
    if kind == "line.crossed":
        return (kind, event["frame"], event["track_id"], event["direction"])
    return (kind, event["frame"], event["track_id"], event.get("at_stream_end", False))


def people_walking(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """The first `frames` frames of the bundled pedestrians clip (people walking across a
    campus, 10 fps) at `size`: real people for the bundled model to find and track."""
    with av.open(str(SAMPLE)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i, image in enumerate(source.decode(video=0)):
            if i == frames:
                break
            small = image.reformat(width=size[0], height=size[1], format="yuv420p")
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return path


def test_a_run_with_a_zone_and_a_line_sends_their_events_on_the_bus_as_they_happened(
    tmp_path: Path,
) -> None:
    # Real people (the model's own class at its default threshold), so that which boxes
    # enter the zone and cross the line does not hang on the order of near-zero scores.
    size = (384, 288)
    clip = people_walking(tmp_path / "cam.mp4", frames=60, size=size)
    port = free_port()
    config = write_config(tmp_path, {"cam": clip}, port)
    text = config.read_text().replace(f"    source: {clip}\n", f"    source: {clip}\n{SCENE}")
    text = text.replace("  score_threshold: 0.0\n  max_detections: 3\n", "")
    config.write_text(text.replace("tracker:\n  sigma_h: 0.0\n  t_min: 2\n", ""))
    collector = Collector(port, cameras=1)
    collector.start()
    proc = run_cli(config)
    _, err = proc.communicate(timeout=180)
    collector.join(30)
    assert proc.returncode == 0, err

    events = [body for _, body in collector.events]
    assert [e["seq"] for e in events] == list(range(len(events)))
    seen = [brief(e) for e in events if e["type"] in ANALYTICS]
    kinds = Counter(kind for kind, *_ in seen)
    assert kinds["zone.entered"] >= 1 and kinds["line.crossed"] >= 1, seen
    assert kinds["zone.entered"] == kinds["zone.left"]  # every visit closed, at the end at last
    assert seen == replay(events, tmp_path / "det.db", size)
    last = [e for e in events if e["type"] == "zone.occupancy"][-1]
    assert (last["zone"], last["total"], last["counts"]) == ("left", 0, {})

    # the SQL output holds a row per finished visit and per crossing, as the bus said
    with sqlite3.connect(tmp_path / "det.db") as conn:
        visits = conn.execute(
            "SELECT zone, track_id, entered_frame, left_frame, dwell_s, at_stream_end "
            "FROM zone_visits ORDER BY id"
        ).fetchall()
        crossings = conn.execute(
            "SELECT line, track_id, direction, from_side, to_side, frame FROM line_crossings "
            "ORDER BY id"
        ).fetchall()
    assert visits == [
        (
            e["zone"],
            e["track_id"],
            e["entered_frame"],
            e["frame"],
            pytest.approx(e["dwell_s"], abs=1e-3),
            int(e["at_stream_end"]),
        )
        for e in events
        if e["type"] == "zone.left"
    ]
    assert crossings == [
        (e["line"], e["track_id"], e["direction"], e["from_side"], e["to_side"], e["frame"])
        for e in events
        if e["type"] == "line.crossed"
    ]
