"""SqlSink and query_detections, against SQLite in tmp_path and the local PostgreSQL.

The PostgreSQL cases run in a schema of their own (dropped afterwards, see conftest.py)
and are skipped only when the server cannot be reached.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text

from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    TrackEvent,
    TrackSummary,
)
from sinks.base import SinkError
from sinks.sql import DetectionQuery, DetectionRecord, QueryError, SqlSink, query_detections
from sinks.sql_models import Detection, Run, Track

LABELS = LabelMap(("background", "person", "car"))
T0 = 1_700_000_000.0  # a Unix time; every offset below is exact in binary and in microseconds


# ---------------------------------------------------------------------------- builders


@dataclass(frozen=True)
class Box:
    """One detection as the test gives it."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: int
    track_id: int = -1


def frame_result(
    camera: str,
    index: int,
    wall_time: float,
    boxes: list[Box],
    events: tuple[TrackEvent, ...] = (),
) -> FrameResult:
    frame = Frame(
        camera_id=camera,
        index=index,
        pts=index / 25,
        wall_time=wall_time,
        image=np.zeros((4, 6, 3), np.uint8),
    )
    dets = Detections(
        xyxy=np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], np.float32).reshape(-1, 4),
        score=np.array([b.score for b in boxes], np.float32),
        label=np.array([b.label for b in boxes], np.int64),
        track_id=np.array([b.track_id for b in boxes], np.int64),
    )
    return FrameResult(frame=frame, detections=dets, track_events=events)


def summary(camera: str, track_id: int, first_frame: int, last_frame: int) -> TrackSummary:
    return TrackSummary(
        camera_id=camera,
        track_id=track_id,
        label=1,
        first_frame=first_frame,
        last_frame=last_frame,
        first_time=T0 + first_frame * 0.5,
        last_time=T0 + last_frame * 0.5,
        frames=last_frame - first_frame + 1,
        best_score=0.875,
        best_box=(1.0, 2.0, 30.5, 40.25),
        last_box=(5.0, 6.0, 35.5, 44.25),
    )


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def read_all(url: str, model: type[Any]) -> list[Any]:
    """Every row of `model`'s table, in id order, read through a separate engine."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(model.__table__).order_by(model.id)).mappings())
    finally:
        engine.dispose()


def count(url: str, model: type[Any]) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model.__table__)) or 0)
    finally:
        engine.dispose()


def detection_key(camera: str, index: int, wall_time: float, b: Box) -> tuple[Any, ...]:
    """What a `detections` row must hold for box `b` of frame `index`."""
    return (
        camera,
        index,
        index / 25,
        utc(wall_time),
        LABELS.name(b.label),
        b.label,
        float(np.float32(b.score)),
        float(np.float32(b.x1)),
        float(np.float32(b.y1)),
        float(np.float32(b.x2)),
        float(np.float32(b.y2)),
        None if b.track_id < 0 else b.track_id,
    )


def record_key(r: DetectionRecord) -> tuple[Any, ...]:
    return (
        r.camera,
        r.frame,
        r.pts,
        r.time,
        r.label,
        r.label_id,
        r.score,
        r.x1,
        r.y1,
        r.x2,
        r.y2,
        r.track_id,
    )


# ---------------------------------------------------------------------------- writing


def test_written_rows_equal_the_given_detections(sql_db_url: str) -> None:
    frames = [
        (
            "cam-a",
            0,
            T0 + 0.25,
            [
                Box(1, 2, 10, 20, 0.5, 1, 7),
                Box(3.5, 4, 11, 21, 0.75, 2),
                Box(0, 0, 5, 5, 0.125, 9),  # a label id without a name
            ],
        ),
        ("cam-b", 3, T0 + 1.5, [Box(100, 200, 150.5, 260.25, 0.9375, 1, -1)]),
        ("cam-a", 1, T0 + 2.0, []),
    ]
    sink = SqlSink(sql_db_url, LABELS)
    for camera, index, wall, boxes in frames:
        sink.write(frame_result(camera, index, wall, boxes))
    sink.close()

    records = query_detections(sql_db_url, DetectionQuery())
    expected = [detection_key(c, i, w, b) for c, i, w, boxes in frames for b in boxes]
    assert [record_key(r) for r in records] == expected
    assert {r.run_id for r in records} == {sink.run_id}
    assert [r.label for r in records][2] == "9"
    assert all(r.time.tzinfo is not None and r.time.utcoffset() == timedelta(0) for r in records)


def test_untracked_detections_are_stored_with_null_track_id(sql_db_url: str) -> None:
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(
        frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1, -1), Box(0, 0, 2, 2, 0.5, 1, 4)])
    )
    sink.close()

    assert [row["track_id"] for row in read_all(sql_db_url, Detection)] == [None, 4]


def test_detections_are_handed_to_the_writer_once_batch_size_rows_wait_and_the_rest_on_end(
    sql_db_url: str,
) -> None:
    two = [Box(0, 0, 1, 1, 0.5, 1), Box(0, 0, 2, 2, 0.5, 1)]
    sink = SqlSink(sql_db_url, LABELS, batch_size=3, flush_interval_s=3600)
    sink.write(frame_result("cam", 0, T0, two))
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 0
    sink.write(frame_result("cam", 1, T0 + 1, two))
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 4
    sink.write(frame_result("cam", 2, T0 + 2, two[:1]))
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 4
    sink.end(StreamEnd(camera_id="cam", frames=3))
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 5
    sink.close()
    assert count(sql_db_url, Detection) == 5


def test_rows_older_than_flush_interval_are_handed_over_with_the_next_frame(
    sql_db_url: str,
) -> None:
    sink = SqlSink(sql_db_url, LABELS, batch_size=100, flush_interval_s=0.05)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1)]))
    time.sleep(0.1)
    sink.write(frame_result("cam", 1, T0, [Box(0, 0, 1, 1, 0.5, 1)]))
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 2
    sink.close()


def test_close_inserts_the_rows_left_in_the_buffer(sql_db_url: str) -> None:
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1), Box(0, 0, 2, 2, 0.5, 2)]))
    assert count(sql_db_url, Detection) == 0
    sink.close()
    assert count(sql_db_url, Detection) == 2


def test_ended_tracks_from_frames_and_stream_end_become_track_rows(sql_db_url: str) -> None:
    early, late = summary("cam", 2, 0, 3), summary("cam", 5, 1, 4)
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(
        frame_result(
            "cam",
            3,
            T0 + 1.5,
            [],
            events=(TrackEvent("started", late), TrackEvent("ended", early)),
        )
    )
    sink.end(StreamEnd(camera_id="cam", frames=5, track_events=(TrackEvent("ended", late),)))
    sink.close()

    rows = read_all(sql_db_url, Track)
    assert [(r["camera"], r["track_id"]) for r in rows] == [("cam", 2), ("cam", 5)]
    for row, t in zip(rows, (early, late), strict=True):
        assert row["run_id"] == sink.run_id
        assert (row["label"], row["label_id"]) == ("person", 1)
        assert (row["first_frame"], row["last_frame"], row["frames"]) == (
            t.first_frame,
            t.last_frame,
            t.frames,
        )
        assert row["first_time"] == utc(t.first_time)
        assert row["last_time"] == utc(t.last_time)
        assert row["best_score"] == t.best_score
        assert (row["best_x1"], row["best_y1"], row["best_x2"], row["best_y2"]) == t.best_box
        assert (row["last_x1"], row["last_y1"], row["last_x2"], row["last_y2"]) == t.last_box


def test_run_row_is_running_until_close_then_finished(sql_db_url: str) -> None:
    before = datetime.now(timezone.utc)
    sink = SqlSink(sql_db_url, LABELS, run_config="config/cams.yaml")
    (run,) = read_all(sql_db_url, Run)
    assert (run["id"], run["status"], run["ended_at"]) == (sink.run_id, "running", None)
    assert run["config"] == "config/cams.yaml"
    assert run["hostname"]

    sink.close()
    (run,) = read_all(sql_db_url, Run)
    assert run["status"] == "finished"
    # Read through the mapped columns' UtcDateTime type, so both come back aware.
    assert run["started_at"].tzinfo is not None and run["ended_at"].tzinfo is not None
    assert before - timedelta(seconds=1) <= run["started_at"] <= run["ended_at"]


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("run_ended", "interrupted"),
        ("run_ended", "failed"),
        ("close_arg", "interrupted"),
        ("close_arg", "failed"),
    ],
)
def test_close_records_the_status_the_orchestrator_gives(
    sql_db_url: str, how: str, status: Any
) -> None:
    sink = SqlSink(sql_db_url, LABELS)
    if how == "run_ended":
        sink.run_ended(status)
        sink.close()
    else:
        sink.close(status=status)
    (run,) = read_all(sql_db_url, Run)
    assert run["status"] == status
    assert run["ended_at"] is not None


def test_run_ended_rejects_unknown_status(tmp_path: Path) -> None:
    sink = SqlSink(f"sqlite:///{tmp_path / 'p.db'}", LABELS)
    with pytest.raises(ValueError, match="run status"):
        sink.run_ended("done")  # type: ignore[arg-type]
    sink.close()


def test_second_close_does_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    sink = SqlSink(url, LABELS)
    sink.close()
    sink.close(status="failed")
    assert [r["status"] for r in read_all(url, Run)] == ["finished"]


def test_rows_the_database_refuses_fail_the_sink_and_are_kept_in_the_spool(
    sql_db_url: str, tmp_path: Path
) -> None:
    sink = SqlSink(sql_db_url, LABELS, batch_size=1, spool_dir=tmp_path / "spool")
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    assert sink.flush(10)
    engine = create_engine(sql_db_url)
    with engine.begin() as conn:  # the run's row vanishes: its detections break the foreign key
        conn.execute(text("DELETE FROM detections"))
        conn.execute(text("DELETE FROM runs"))
    engine.dispose()
    sink.write(frame_result("cam", 1, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    sink.flush(10)
    with pytest.raises(SinkError, match="table detections") as err:
        sink.write(frame_result("cam", 2, T0, []))
    assert "\n" not in str(err.value)
    with pytest.raises(SinkError, match="rows kept in") as err:
        sink.close()
    assert sink.kept_in is not None
    kept = [json.loads(line) for line in sink.kept_in.read_text().splitlines()]
    assert [(b["table"], [r["frame"] for r in b["rows"]]) for b in kept] == [("detections", [1])]


def test_sqlite_parent_directory_is_created_and_wal_is_enabled(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "out.db"
    sink = SqlSink(f"sqlite:///{db}", LABELS)
    sink.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:s3cret@127.0.0.1:1/x",
        "nosuchdialect://u:s3cret@127.0.0.1/x",
        "postgresql+psycopg://u:s3cret@127.0.0.1:notaport/x",
        "not a url u:s3cret@",
    ],
    ids=["unreachable", "unknown-dialect", "bad-port", "unparsable"],
)
def test_unusable_url_raises_sink_error_with_password_masked(url: str) -> None:
    with pytest.raises(SinkError) as err:
        SqlSink(url, LABELS)
    msg = str(err.value)
    assert "s3cret" not in msg
    assert "\n" not in msg
    assert msg.startswith("sql sink: cannot open database")


def test_unreachable_url_error_names_host_port_and_masks_password() -> None:
    with pytest.raises(SinkError) as err:
        SqlSink("postgresql+psycopg://u:s3cret@127.0.0.1:1/x", LABELS)
    assert "postgresql+psycopg://u:***@127.0.0.1:1/x" in str(err.value)


# ---------------------------------------------------------------------------- querying

CAMS = ("cam-a", "cam-b")


@dataclass(frozen=True)
class Written:
    """One detection written by `written_detections`, with the frame it came from."""

    run: int
    camera: str
    index: int
    wall_time: float
    box: Box

    @property
    def key(self) -> tuple[Any, ...]:
        return detection_key(self.camera, self.index, self.wall_time, self.box)


@pytest.fixture
def sql_written_detections(sql_db_url: str) -> tuple[str, list[Written]]:
    """Two runs of two cameras with persons and cars, some tracked; cam-b's frames are
    written after cam-a's but interleave with them in time."""
    written: list[Written] = []
    for run_no in range(2):
        sink = SqlSink(sql_db_url, LABELS, batch_size=4)
        for camera, offset in zip(CAMS, (0.0, 0.25), strict=True):
            for index in range(6):
                wall = T0 + run_no * 100 + index + offset
                boxes = [
                    Box(index, 0, index + 10, 10, 0.1 + 0.15 * index, 1, 1 + run_no),
                    Box(0, index, 20, index + 20, 0.9 - 0.1 * index, 2 if index % 2 else 1),
                ]
                sink.write(frame_result(camera, index, wall, boxes))
                written += [Written(sink.run_id, camera, index, wall, b) for b in boxes]
            sink.end(StreamEnd(camera_id=camera, frames=6))
        sink.close()
    return sql_db_url, written


def _score(w: Written) -> float:
    return float(np.float32(w.box.score))


QUERIES: dict[str, tuple[DetectionQuery, Callable[[Written], bool]]] = {
    "camera": (DetectionQuery(camera="cam-b"), lambda w: w.camera == "cam-b"),
    "label": (DetectionQuery(label="car"), lambda w: w.box.label == 2),
    "track": (DetectionQuery(track=2), lambda w: w.box.track_id == 2),
    "since": (DetectionQuery(since=utc(T0 + 3.25)), lambda w: w.wall_time >= T0 + 3.25),
    "until": (DetectionQuery(until=utc(T0 + 2.25)), lambda w: w.wall_time < T0 + 2.25),
    "since-until": (
        DetectionQuery(since=utc(T0 + 1), until=utc(T0 + 4)),
        lambda w: T0 + 1 <= w.wall_time < T0 + 4,
    ),
    "naive-since-is-utc": (
        DetectionQuery(since=utc(T0 + 103).replace(tzinfo=None)),
        lambda w: w.wall_time >= T0 + 103,
    ),
    "min-score": (DetectionQuery(min_score=0.7), lambda w: _score(w) >= 0.7),
    "combined": (
        DetectionQuery(camera="cam-a", label="person", min_score=0.5),
        lambda w: w.camera == "cam-a" and w.box.label == 1 and _score(w) >= 0.5,
    ),
    "nothing": (DetectionQuery(camera="cam-z"), lambda w: False),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_filter_returns_exactly_the_matching_rows(
    sql_written_detections: tuple[str, list[Written]], name: str
) -> None:
    url, written = sql_written_detections
    query, keep = QUERIES[name]
    expected = sorted((w.key for w in written if keep(w)), key=lambda k: k[3])
    got = [record_key(r) for r in query_detections(url, query)]
    # Rows of one time keep their insertion (id) order: compare as time-ordered multisets
    # here, and check the exact id order in the ordering test.
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert [k[3] for k in got] == [k[3] for k in expected]
    if name != "nothing":
        assert got, "the filter must match something for the test to mean anything"


def test_query_by_run_returns_only_that_runs_rows(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, written = sql_written_detections
    second = max(w.run for w in written)
    got = query_detections(url, DetectionQuery(run=second))
    assert {r.run_id for r in got} == {second}
    assert len(got) == sum(w.run == second for w in written)


def test_query_orders_by_time_then_id_and_limit_keeps_the_earliest(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, written = sql_written_detections
    everything = query_detections(url, DetectionQuery())
    assert len(everything) == len(written)
    assert [(r.time, r.id) for r in everything] == sorted((r.time, r.id) for r in everything)
    # cam-b was written after cam-a, yet its rows interleave with cam-a's by time.
    assert [r.camera for r in everything[:4]] == ["cam-a", "cam-a", "cam-b", "cam-b"]

    limited = query_detections(url, DetectionQuery(limit=5))
    assert limited == everything[:5]


def test_query_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        DetectionQuery(limit=0)


def test_record_as_dict_is_json_ready_with_utc_z_time(sql_db_url: str) -> None:
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(frame_result("cam", 2, T0 + 0.5, [Box(1, 2, 3, 4, 0.5, 1, -1)]))
    sink.close()
    (record,) = query_detections(sql_db_url, DetectionQuery())

    d = json.loads(json.dumps(record.as_dict()))
    assert d["time"] == "2023-11-14T22:13:20.500000Z"
    assert datetime.fromisoformat(d["time"].replace("Z", "+00:00")) == utc(T0 + 0.5)
    assert (d["camera"], d["frame"], d["label"], d["track_id"]) == ("cam", 2, "person", None)
    assert (d["x1"], d["y1"], d["x2"], d["y2"], d["score"]) == (1.0, 2.0, 3.0, 4.0, 0.5)


def test_query_of_missing_sqlite_file_raises_and_creates_no_file(tmp_path: Path) -> None:
    db = tmp_path / "missing" / "nothing.db"
    with pytest.raises(QueryError, match="does not exist") as err:
        query_detections(f"sqlite:///{db}", DetectionQuery())
    assert str(db) in str(err.value)
    assert not db.exists()
    assert not db.parent.exists()


def test_query_of_database_without_tables_says_so(sql_db_url: str) -> None:
    engine = create_engine(sql_db_url)  # creates the empty SQLite file / uses the empty schema
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    with pytest.raises(QueryError, match="has no detections table yet"):
        query_detections(sql_db_url, DetectionQuery())


def test_query_of_unreachable_database_raises_query_error_with_password_masked() -> None:
    with pytest.raises(QueryError) as err:
        query_detections("postgresql+psycopg://u:s3cret@127.0.0.1:1/x", DetectionQuery())
    assert "s3cret" not in str(err.value)
    assert "u:***@127.0.0.1:1/x" in str(err.value)
    assert isinstance(err.value, SinkError)


def test_sink_created_in_one_thread_writes_and_closes_from_another(sql_db_url: str) -> None:
    # The orchestrator builds sinks in the main thread and drives each from its own worker.
    sink = SqlSink(sql_db_url, LABELS, batch_size=1)
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1)]))
            sink.close()
        except BaseException as exc:  # handed to the main thread, which fails the test
            failures.append(exc)

    worker = threading.Thread(target=drive)
    worker.start()
    worker.join()
    assert failures == []
    assert count(sql_db_url, Detection) == 1
