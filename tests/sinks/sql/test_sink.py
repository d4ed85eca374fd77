"""SqlSink writes every detection, ended track and run as rows, against SQLite in tmp_path
and the local PostgreSQL.

The PostgreSQL cases run in a schema of their own (dropped afterwards, see conftest.py)
and are skipped only when the server cannot be reached.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import sqlite3
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError

from pipeline.types import (
    LineCrossing,
    Snapshot,
    StreamEnd,
    TrackEvent,
    ZoneEvent,
    ZoneOccupancy,
)
from sinks.base import SinkError
from sinks.sql.models import Detection, LineCrossingRow, Run, Track, ZoneVisit
from sinks.sql.outbox import Outbox
from sinks.sql.query import list_tracks, query_detections
from sinks.sql.reading import DetectionQuery
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch
from sinks.sql.writer import RowWriter
from tests.sinks.sql.builders import (
    FAST_RETRY,
    LABELS,
    T0,
    Box,
    count,
    detection_key,
    frame_result,
    read_all,
    record_key,
    refuse_frame,
    summary,
    utc,
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


def test_finished_zone_visits_and_line_crossings_become_rows(sql_db_url: str) -> None:
    visit = partial(ZoneEvent, camera_id="cam", zone_id="door", track_id=5, label=1)
    entered = visit(
        "entered", frame=3, time=T0 + 3, entered_frame=1, entered_time=T0 + 1, dwell_s=0.08
    )
    left = visit("left", frame=9, time=T0 + 9, entered_frame=1, entered_time=T0 + 1, dwell_s=0.2)
    crossed = LineCrossing("cam", "gate", 5, 1, "in", "right", "left", 4, T0 + 4)
    occupancy = ZoneOccupancy("cam", "door", ((1, 1),), 3, T0 + 3)
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(replace(frame_result("cam", 3, T0 + 3, []), analytics=(entered, occupancy)))
    sink.write(replace(frame_result("cam", 4, T0 + 4, []), analytics=(crossed,)))
    sink.write(replace(frame_result("cam", 9, T0 + 9, []), analytics=(left,)))
    still_in = ZoneEvent(
        "left",
        "cam",
        "door",
        6,
        1,
        frame=9,
        time=T0 + 9,
        entered_frame=7,
        entered_time=T0 + 7,
        dwell_s=0.08,
        at_stream_end=True,
    )
    sink.end(StreamEnd("cam", frames=10, analytics=(still_in,)))
    sink.close()

    visits = read_all(sql_db_url, ZoneVisit)
    assert [
        (
            v["zone"],
            v["track_id"],
            v["label"],
            v["entered_frame"],
            v["entered_at"],
            v["left_frame"],
            v["left_at"],
            v["dwell_s"],
            v["at_stream_end"],
        )
        for v in visits
    ] == [
        ("door", 5, "person", 1, utc(T0 + 1), 9, utc(T0 + 9), 0.2, False),
        ("door", 6, "person", 7, utc(T0 + 7), 9, utc(T0 + 9), 0.08, True),
    ]
    (crossing,) = read_all(sql_db_url, LineCrossingRow)
    assert {
        k: crossing[k]
        for k in (
            "run_id",
            "camera",
            "line",
            "track_id",
            "label",
            "direction",
            "from_side",
            "to_side",
            "frame",
            "time",
        )
    } == {
        "run_id": sink.run_id,
        "camera": "cam",
        "line": "gate",
        "track_id": 5,
        "label": "person",
        "direction": "in",
        "from_side": "right",
        "to_side": "left",
        "frame": 4,
        "time": utc(T0 + 4),
    }
    assert "2 zone visits, 1 line crossings written" in sink.describe()


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


def test_a_sink_pointed_at_another_programs_database_refuses_it_and_changes_nothing(
    sql_db_url: str,
) -> None:
    theirs = create_engine(sql_db_url)
    with theirs.begin() as conn:
        conn.execute(text("CREATE TABLE detections (body TEXT)"))
        conn.execute(text("INSERT INTO detections VALUES ('their row')"))
    with pytest.raises(SinkError, match="its detections table is not this pipeline's"):
        SqlSink(sql_db_url, LABELS)  # it added a column, four tables, then failed
    try:
        assert inspect(theirs).get_table_names() == ["detections"]
        assert [c["name"] for c in inspect(theirs).get_columns("detections")] == ["body"]
        with theirs.connect() as conn:
            assert conn.execute(text("SELECT body FROM detections")).all() == [("their row",)]
            if theirs.dialect.name == "sqlite":  # not switched to WAL
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "delete"
    finally:
        theirs.dispose()


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


def test_rows_the_database_refuses_fail_the_sink_and_are_set_aside_in_a_file_of_their_own(
    sql_db_url: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    sink = SqlSink(sql_db_url, LABELS, batch_size=1, spool_dir=spool_dir)
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
    (refused,) = (spool_dir / "refused").iterdir()
    assert str(err.value).endswith(f"; its rows set aside in {refused}")
    assert "\n" not in str(err.value)
    with pytest.raises(SinkError, match=f"set aside in {re.escape(str(refused))}$"):
        sink.close()
    assert sink.kept_in is None  # the rest was written
    kept = [json.loads(line) for line in refused.read_text().splitlines()]
    assert [(b["table"], [r["frame"] for r in b["rows"]]) for b in kept] == [("detections", [1])]


def test_refused_rows_are_not_written_again_by_the_next_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # written again they would be refused again, run after run, and stop the replay of the
    # spool files after theirs
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    sink = SqlSink(url, LABELS, batch_size=1, spool_dir=spool_dir)
    refuse_frame(url, 1)  # a rule of the database's own
    for index in range(2):
        sink.write(frame_result("cam", index, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
        sink.flush(10)
    with pytest.raises(SinkError, match="frame 1 refused; its rows set aside in"):
        sink.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sinks.sql"):
        SqlSink(url, LABELS, spool_dir=spool_dir).close()
    assert [r.getMessage() for r in caplog.records] == []
    assert [r["frame"] for r in read_all(url, Detection)] == [0]


def test_refused_rows_beyond_the_size_of_their_file_are_lost_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(url, LABELS, batch_size=1, spool_dir=tmp_path / "spool", spool_max_bytes=1)

    def refuse(self: RowWriter, batch: RowBatch) -> None:
        if batch.table == "detections":
            raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("CHECK constraint failed"))

    monkeypatch.setattr(RowWriter, "write", refuse)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    assert sink.flush(10)
    with pytest.raises(SinkError) as err:
        sink.close()
    refused = tmp_path / "spool" / "refused"
    assert str(err.value).startswith(
        f"sql sink: 1 detections lost: the file of refused rows {refused}/"
    )
    assert "its size limit (1 bytes)" in str(err.value)
    assert "CHECK constraint failed; its rows lost: the file of refused rows" in str(err.value)
    assert {m.name: m.value for m in sink.metrics()}["sql_rows_lost"] == 1


def test_refused_rows_moved_into_the_spool_folder_are_written_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    sink = SqlSink(url, LABELS, spool_dir=spool_dir)

    def refuse(self: RowWriter, batch: RowBatch) -> None:
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("CHECK constraint failed"))

    with monkeypatch.context() as patch:  # the cause, fixed once the run is over
        patch.setattr(RowWriter, "write", refuse)
        sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
        with pytest.raises(SinkError, match="set aside in"):
            sink.close()
    (refused,) = (spool_dir / "refused").iterdir()
    refused.rename(spool_dir / refused.name)
    SqlSink(url, LABELS, spool_dir=spool_dir).close()
    assert [(r["run_id"], r["frame"]) for r in read_all(url, Detection)] == [(sink.run_id, 0)]
    assert list(spool_dir.glob("*.jsonl")) == []


def test_rows_after_the_sqlite_folder_vanishes_fail_the_sink_and_are_kept_in_the_spool(
    tmp_path: Path,
) -> None:
    database = tmp_path / "db" / "det.db"
    sink = SqlSink(f"sqlite:///{database}", LABELS, batch_size=1, spool_dir=tmp_path / "spool")
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    assert sink.flush(10)
    shutil.rmtree(database.parent)  # the open file took rows on, deleted: a silent loss
    sink.write(frame_result("cam", 1, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    sink.flush(10)
    with pytest.raises(SinkError, match="was deleted or replaced while the run wrote") as err:
        sink.write(frame_result("cam", 2, T0, []))
    assert str(database) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SinkError, match="rows kept in"):
        sink.close()
    assert sink.kept_in is not None
    kept = [json.loads(line) for line in sink.kept_in.read_text().splitlines()]
    assert [(b["table"], [r.get("frame") for r in b["rows"]]) for b in kept] == [
        ("detections", [1]),
        ("run_end", [None]),
    ]


def test_rows_waiting_when_the_sqlite_file_is_deleted_stay_within_the_memory_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "db" / "det.db"
    sink = SqlSink(
        f"sqlite:///{database}",
        LABELS,
        batch_size=1,
        buffer_rows=4,
        spool_dir=tmp_path / "spool",
        **FAST_RETRY,
    )
    box = Box(0, 0, 1, 1, 0.5, 1, 3)
    sink.write(frame_result("cam", 0, T0, [box]))
    assert sink.flush(10)

    def locked(self: RowWriter, batch: RowBatch) -> None:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    with monkeypatch.context() as patch:  # a backlog: 4 rows in memory, the rest spooled
        patch.setattr(RowWriter, "write", locked)
        for index in range(1, 201):
            sink.write(frame_result("cam", index, T0, [box]))
        assert not sink.flush(0.0)
        shutil.rmtree(database.parent)
    assert not sink.flush(30)  # at once: the writer found the file gone, and keeps the rows
    assert sink.outbox.memory_rows <= 4 and sink.outbox.pending_rows == 200
    with pytest.raises(SinkError, match="was deleted or replaced while the run wrote"):
        sink.close()
    assert sink.kept_in is not None
    kept = [json.loads(line) for line in sink.kept_in.read_text().splitlines()]
    frames = [r["frame"] for b in kept if b["table"] == "detections" for r in b["rows"]]
    assert sorted(frames) == list(range(1, 201))


def _kept_frames(sink: SqlSink) -> list[tuple[str, list[Any]]]:
    """(table, frames) of each batch the closed sink kept in its spool file."""
    assert sink.kept_in is not None
    kept = [json.loads(line) for line in sink.kept_in.read_text().splitlines()]
    return [(b["table"], [r.get("frame") for r in b["rows"]]) for b in kept]


def test_an_error_of_the_writer_not_the_databases_fails_the_sink_in_one_line_and_keeps_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(url, LABELS, batch_size=10, spool_dir=tmp_path / "spool")
    for index in range(3):
        sink.write(frame_result("cam", index, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))

    def broken(self: RowWriter, batch: RowBatch) -> None:
        raise TypeError("float() argument must be a string or a real number,\n not 'NoneType'")

    monkeypatch.setattr(RowWriter, "write", broken)
    assert not sink.flush(30)  # at once: the writer stopped, and keeps the rows
    with pytest.raises(SinkError) as err:
        sink.tick()  # the camera's frames may have stopped: a tick says it all the same
    assert str(err.value) == (
        f"sql sink: cannot insert 3 rows into table detections of {url}: TypeError: "
        "float() argument must be a string or a real number, not 'NoneType'"
    )
    with pytest.raises(SinkError, match=r"TypeError: .*; 3 rows kept in") as closed:
        sink.close()
    assert "\n" not in str(closed.value)
    assert _kept_frames(sink) == [("detections", [0, 1, 2]), ("run_end", [None])]


def test_an_error_of_the_writer_between_inserts_fails_the_sink_and_keeps_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    armed = threading.Event()
    peek = Outbox.peek

    def unreadable(self: Outbox, timeout_s: float) -> RowBatch | None:
        batch = peek(self, timeout_s)
        if batch is not None and armed.is_set():  # a spooled batch the disk fails to give
            raise OSError(errno.EIO, "Input/output error", str(self.spool_path))
        return batch

    monkeypatch.setattr(Outbox, "peek", unreadable)
    url = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(url, LABELS, batch_size=10, spool_dir=spool)
    for index in range(3):
        sink.write(frame_result("cam", index, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    armed.set()
    assert not sink.flush(30)
    with pytest.raises(SinkError) as err:
        sink.write(frame_result("cam", 3, T0, []))
    assert str(err.value).startswith(f"sql sink: writing to {url} stopped: OSError: [Errno 5]")
    assert "\n" not in str(err.value)
    with pytest.raises(SinkError, match="rows kept in"):
        sink.close()
    assert _kept_frames(sink) == [("detections", [0, 1, 2]), ("run_end", [None])]


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


def test_a_spool_folder_that_cannot_be_made_stops_the_sink_as_it_opens(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    db = tmp_path / "det.db"
    with pytest.raises(SinkError) as err:
        SqlSink(f"sqlite:///{db}", LABELS, spool_dir=blocker / "spool")

    assert str(err.value) == (
        f"sql sink: cannot make the folder {blocker / 'spool'}: {blocker} is not a folder"
    )
    assert not db.exists()  # stopped before the database was opened


def test_unreachable_url_error_names_host_port_and_masks_password() -> None:
    with pytest.raises(SinkError) as err:
        SqlSink("postgresql+psycopg://u:s3cret@127.0.0.1:1/x", LABELS)
    assert "postgresql+psycopg://u:***@127.0.0.1:1/x" in str(err.value)


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


def test_an_ended_track_row_holds_its_snapshot_paths(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'snap.db'}"
    sink = SqlSink(url, LABELS)
    crop = np.zeros((4, 4, 3), np.uint8)
    name = "cam/20270115-080000-000_1.jpg"
    with_frame = Snapshot(0, (0, 0, 1, 1), crop, "out/snaps", name, crop, "cam/x-frame.jpg")
    sink.end(
        StreamEnd(
            "cam",
            2,
            (
                TrackEvent("ended", summary("cam", 1, 0, 1), with_frame),
                TrackEvent("ended", summary("cam", 2, 0, 1)),
            ),
        )
    )
    sink.close()
    rows = {t.track_id: t for t in read_all(url, Track)}
    assert rows[1].snapshot_path == f"out/snaps/{name}"
    assert rows[1].snapshot_frame_path == "out/snaps/cam/x-frame.jpg"
    assert rows[2].snapshot_path is None and rows[2].snapshot_frame_path is None
    listed = {t.track_id: t.snapshot_path for t in list_tracks(url, DetectionQuery()).rows}
    assert listed == {1: f"out/snaps/{name}", 2: None}


def test_a_batch_committed_while_its_sqlite_file_is_deleted_is_kept_not_counted_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "db" / "det.db"
    sink = SqlSink(
        f"sqlite:///{database}", LABELS, batch_size=1, spool_dir=tmp_path / "spool", **FAST_RETRY
    )
    box = Box(0, 0, 1, 1, 0.5, 1, 3)
    sink.write(frame_result("cam", 0, T0, [box]))
    assert sink.flush(10)
    real_write = RowWriter.write

    def deleted_during(self: RowWriter, batch: RowBatch) -> None:
        if database.parent.exists():  # gone between the writer's look and its commit
            shutil.rmtree(database.parent)
        real_write(self, batch)

    monkeypatch.setattr(RowWriter, "write", deleted_during)
    for index in range(1, 4):
        sink.write(frame_result("cam", index, T0, [box]))
    assert not sink.flush(30)
    with pytest.raises(SinkError, match="was deleted or replaced while the run wrote"):
        sink.close()
    assert sink.kept_in is not None
    kept = [json.loads(line) for line in sink.kept_in.read_text().splitlines()]
    frames = [r["frame"] for b in kept if b["table"] == "detections" for r in b["rows"]]
    assert sorted(frames) == [1, 2, 3]
