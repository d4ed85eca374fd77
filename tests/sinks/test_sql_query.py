"""Counting stored detections, deleting old records, and the commands that do both."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import zmq.auth
from sqlalchemy import create_engine, func, select, text, update

import sinks.sql_query
from pipeline.cli import main
from pipeline.types import StreamEnd, TrackEvent, TrackSummary
from sinks.sql import SqlSink
from sinks.sql_models import Detection, Run, Track
from sinks.sql_query import DetectionQuery, count_detections, delete_older_than
from tests.sinks.test_sql import LABELS, Box, frame_result

DAY = 86_400.0


def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                m.__tablename__: int(conn.scalar(select(func.count()).select_from(m)) or 0)
                for m in (Detection, Track, Run)
            }
    finally:
        engine.dispose()


def write_run(url: str, start: float, frames: dict[str, list[list[Box]]]) -> int:
    """One run: per camera, frames of boxes 1 s apart from `start`; one ended track each."""
    sink = SqlSink(url, LABELS, batch_size=7)
    for camera, boxes_per_frame in frames.items():
        for i, boxes in enumerate(boxes_per_frame):
            sink.write(frame_result(camera, i, start + i, boxes))
        n = len(boxes_per_frame)
        track = TrackSummary(
            camera_id=camera, track_id=1, label=PERSON, first_frame=0, last_frame=n - 1,
            first_time=start, last_time=start + n - 1, frames=n, best_score=0.9,
            best_box=(0.0, 0.0, 1.0, 1.0), last_box=(0.0, 0.0, 1.0, 1.0),
        )
        sink.end(StreamEnd(camera, len(boxes_per_frame), (TrackEvent("ended", track),)))
    sink.close()
    return sink.run_id


PERSON, CAR = 1, 2


@pytest.fixture
def two_runs(sql_db_url: str) -> tuple[str, int, int]:
    """An old run (10 days ago) and a recent one (1 h ago) with persons and cars."""
    now = time.time()
    old = write_run(
        sql_db_url,
        now - 10 * DAY,
        {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON, 1), Box(0, 0, 2, 2, 0.8, CAR, 2)]] * 5},
    )
    engine = create_engine(sql_db_url)
    with engine.begin() as conn:  # it also ended then
        conn.execute(
            update(Run)
            .where(Run.id == old)
            .values(started_at=datetime.fromtimestamp(now - 10 * DAY, timezone.utc),
                    ended_at=datetime.fromtimestamp(now - 10 * DAY + 5, timezone.utc))
        )
    engine.dispose()
    recent = write_run(
        sql_db_url,
        now - 3600,
        {
            "gate": [[Box(0, 0, 1, 1, 0.9, PERSON, 1)]] * 3,
            "lobby": [[Box(0, 0, 1, 1, 0.7, PERSON, 4), Box(0, 0, 1, 1, 0.6, PERSON, -1)]] * 4,
        },
    )
    return sql_db_url, old, recent


def test_count_by_label_camera_and_run_counts_detections_and_distinct_tracks(
    two_runs: tuple[str, int, int],
) -> None:
    url, old, recent = two_runs
    by_label = count_detections(url, DetectionQuery(), "label")
    assert [(r.key, r.detections, r.tracks) for r in by_label] == [
        ("person", 5 + 3 + 8, 3),  # tracks: (old, gate, 1), (recent, gate, 1), (recent, lobby, 4)
        ("car", 5, 1),
    ]
    by_camera = count_detections(url, DetectionQuery(), "camera")
    assert [(r.key, r.detections, r.tracks) for r in by_camera] == [
        ("gate", 10 + 3, 3),
        ("lobby", 8, 1),
    ]
    by_run = count_detections(url, DetectionQuery(), "run")
    assert {r.key: r.detections for r in by_run} == {str(old): 10, str(recent): 11}
    # filters apply before counting
    recent_persons = count_detections(url, DetectionQuery(run=recent, min_score=0.65), "camera")
    assert [(r.key, r.detections) for r in recent_persons] == [("lobby", 4), ("gate", 3)]


def test_retention_deletes_old_rows_and_runs_left_empty_and_vacuums_sqlite(
    two_runs: tuple[str, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, recent = two_runs
    monkeypatch.setattr(sinks.sql_query, "RETENTION_CHUNK", 3)  # several chunks per table
    cutoff = datetime.fromtimestamp(time.time() - DAY, timezone.utc)

    dry = delete_older_than(url, cutoff, dry_run=True)
    # a dry run counts runs that have rows still (they would be emptied first): none yet
    assert (dry.detections, dry.tracks, dry.runs, dry.vacuumed) == (10, 1, 0, False)
    assert table_counts(url) == {"detections": 21, "tracks": 3, "runs": 2}

    done = delete_older_than(url, cutoff)
    assert (done.detections, done.tracks, done.runs) == (10, 1, 1)
    assert table_counts(url) == {"detections": 11, "tracks": 2, "runs": 1}
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(Run.id)) == recent
    engine.dispose()
    if url.startswith("sqlite"):
        assert done.vacuumed
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_an_older_detections_table_gets_the_unique_key_column(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the table as the first version created it
        conn.executescript(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at DATETIME, ended_at DATETIME,"
            " status VARCHAR(16), config TEXT, hostname VARCHAR(255));"
            "CREATE TABLE detections (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),"
            " camera VARCHAR(255), frame INTEGER, pts FLOAT, time DATETIME, label VARCHAR(128),"
            " label_id INTEGER, score FLOAT, x1 FLOAT, y1 FLOAT, x2 FLOAT, y2 FLOAT,"
            " track_id INTEGER);"
            "INSERT INTO runs VALUES (1, '2026-01-01 00:00:00', NULL, 'finished', '', 'h');"
            "INSERT INTO detections VALUES (1, 1, 'gate', 0, 0.0, '2026-01-01 00:00:00',"
            " 'person', 1, 0.5, 0, 0, 1, 1, NULL);"
        )
    url = f"sqlite:///{db}"
    write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]] * 2})
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT run_id, frame, obj FROM detections ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, 0, None), (2, 0, 0), (2, 1, 0)]


# ---------------------------------------------------------------------------- commands


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_command_counts_by_camera_since_a_relative_time(
    two_runs: tuple[str, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = two_runs
    code, out, _ = run_cli(
        capsys, "query", "--db", url, "--since", "2 days ago", "--count-by", "camera",
        "--format", "json",
    )
    assert code == 0
    assert json.loads(out) == [
        {"camera": "lobby", "detections": 8, "tracks": 1},
        {"camera": "gate", "detections": 3, "tracks": 1},
    ]
    code, out, _ = run_cli(capsys, "query", "--db", url, "--count-by", "label")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["label", "detections", "tracks"]
    assert lines[1].split() == ["person", "16", "3"] and lines[-1] == "(2 groups)"


def test_query_command_refuses_an_unreadable_time_naming_the_forms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["query", "--since", "last tuesday"])
    assert exit_.value.code == 2
    assert "not a time: 'last tuesday'" in capsys.readouterr().err


def test_retention_command_deletes_records_and_old_video_files(
    two_runs: tuple[str, int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = two_runs
    videos = tmp_path / "video"
    videos.mkdir()
    old_video = videos / "gate_20261101-100000.mp4"
    old_video.write_bytes(b"x")
    then = time.time() - 10 * DAY
    os.utime(old_video, (then, then))
    new_video = videos / "gate_20261121-100000.mp4"
    new_video.write_bytes(b"x")

    code, out, _ = run_cli(
        capsys, "retention", "--db", url, "--older-than", "7d", "--video-dir", str(videos),
        "--dry-run",
    )
    assert code == 0 and "would delete 10 detections, 1 tracks" in out
    assert old_video.exists() and table_counts(url)["detections"] == 21

    code, out, _ = run_cli(
        capsys, "retention", "--db", url, "--older-than", "7d", "--video-dir", str(videos)
    )
    assert code == 0 and "deleted 10 detections, 1 tracks" in out
    assert "deleted 1 video files" in out
    assert not old_video.exists() and new_video.exists()
    assert table_counts(url)["detections"] == 11


def test_retention_command_on_a_missing_database_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "retention", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--older-than", "1d"
    )
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err


def test_keygen_command_writes_a_key_pair_the_sink_and_subscriber_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "keygen", str(tmp_path / "keys"))
    assert code == 0
    public, secret = zmq.auth.load_certificate(tmp_path / "keys" / "server.key_secret")
    assert secret is not None and public.decode() in out
    code, _, err = run_cli(capsys, "keygen", str(tmp_path / "keys"))
    assert code == 2 and "exists" in err


