"""The SQL sink's close counts every row once: written, kept in the spool file, refused
(set aside in refused/) or lost; and says why it left rows unwritten: the database
unreachable, or the writer still busy with a slow batch.

The database refuses for real (a trigger of its own); a slow batch is a real SQLite write
lock held by another connection, waited for by the writer's busy timeout.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

import sinks.sql.writer
from sinks.base import SinkError
from sinks.sql.sink import SqlSink
from tests.clock import Clock
from tests.sinks.scrape import scrape_sink
from tests.sinks.sql.builders import (
    LABELS,
    T0,
    Box,
    frame_result,
    refuse_frame,
    run_status,
    stored,
    wait_for,
    write_locked,
)

BUSY_S = 30.0
"""How long the writer waits for a lock (its busy timeout): far longer than any test holds
one, so that it is busy, not failing, while the test holds it."""
GRACE_S = 1.0
"""The close's wait for a writer under way (STOP_GRACE_S), made short; long enough for the
writer to be in its insert, waiting on the lock, when the close gives up on it."""


def _frames(path: Path) -> list[tuple[str, list[Any]]]:
    """(table, frames) of each batch in a spool-format file, in file order."""
    batches = [json.loads(line) for line in path.read_text().splitlines()]
    return [(b["table"], [r.get("frame") for r in b["rows"]]) for b in batches]


def _accounts(sink: SqlSink) -> dict[str, float]:
    """What the closed sink says became of its rows, from its metrics."""
    m = scrape_sink(sink)
    return {
        "written": m["ssd_sink_sql_rows_written_total"],
        "kept": m["ssd_sink_sql_rows_kept"],
        "refused": m["ssd_sink_sql_rows_refused_total"],
        "lost": m["ssd_sink_sql_rows_lost_total"],
    }


def _replace_by_a_file(spool_dir: Path) -> None:
    """The spool folder gone for good, a file in its place: no spool file can be made."""
    shutil.rmtree(spool_dir)
    spool_dir.write_text("")


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The close waits `GRACE_S` for a writer under way."""
    monkeypatch.setattr(sinks.sql.writer, "STOP_GRACE_S", GRACE_S)


def _write_one_box_frames(sink: SqlSink, frames: range) -> None:
    for i in frames:
        sink.write(frame_result("cam", i, T0 + i, [Box(i, 0, i + 1, 1, 0.5, 1)]))


def _busy_writer_sink(url: str, spool_dir: Path) -> SqlSink:
    """A sink that writes each frame alone and gives up on a busy writer at once."""
    return SqlSink(
        url,
        LABELS,
        batch_size=1,
        spool_dir=spool_dir,
        close_timeout_s=0.0,
        sqlite_busy_timeout_ms=int(BUSY_S * 1000),
    )


def _spilling_sink(database: Path, spool_dir: Path) -> SqlSink:
    """A sink that holds 2 rows in memory, spools the rest while `database` is locked, and
    gives up on it soon at the close."""
    return SqlSink(
        f"sqlite:///{database}",
        LABELS,
        batch_size=1,
        buffer_rows=2,
        spool_dir=spool_dir,
        close_timeout_s=0.2,
        sqlite_busy_timeout_ms=20,
        retry_initial_s=0.05,
    )


def test_a_batch_refused_during_the_close_is_counted_refused_and_the_run_failed(
    tmp_path: Path,
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    sink = SqlSink(url, LABELS, batch_size=3, spool_dir=spool_dir, clock=Clock())
    refuse_frame(url, 4)
    _write_one_box_frames(sink, range(5))  # frames 0-2 handed over; 3 and 4 wait for the close
    with pytest.raises(SinkError) as closed:
        sink.close()
    (refused,) = (spool_dir / "refused").iterdir()
    assert str(closed.value) == (
        f"sql sink: cannot insert 2 rows into table detections of {url}: frame 4 refused; "
        f"its rows set aside in {refused}"
    )
    assert [row[2] for row in stored(url)] == [0, 1, 2]
    assert _frames(refused) == [("detections", [3, 4])]
    assert _accounts(sink) == {"written": 3, "kept": 0, "refused": 2, "lost": 0}
    assert sink.kept_in is None
    assert run_status(url, sink.run_id) == "failed"  # refused after the end was asked for
    assert sink.describe() == (
        f"sql {url}: 3 detections, 0 tracks written (2 refused, set aside in {refused})"
    )


@pytest.mark.usefixtures("short_grace")
def test_a_refusal_after_the_close_gave_up_on_a_busy_writer_leaves_the_rows_kept_not_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database, spool_dir = tmp_path / "det.db", tmp_path / "spool"
    url = f"sqlite:///{database}"
    sink = _busy_writer_sink(url, spool_dir)
    refuse_frame(url, 0)
    with write_locked(database):
        _write_one_box_frames(sink, range(2))  # the writer waits on the lock with frame 0
        with pytest.raises(SinkError) as closed:
            sink.close()
        caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sinks.sql"):  # the lock let go: refused
        wait_for(lambda: caplog.records != [], "the writer's late refusal")
    assert sink.kept_in is not None
    assert _frames(sink.kept_in) == [("detections", [0]), ("detections", [1]), ("run_end", [None])]
    assert not (spool_dir / "refused").exists()
    assert _accounts(sink) == {"written": 0, "kept": 2, "refused": 0, "lost": 0}
    assert str(closed.value) == (
        f"sql sink: writer still busy with {url} after {GRACE_S:g} s; 2 rows kept in "
        f"{sink.kept_in} are written by the next run to this database"
    )
    [late] = [r.getMessage() for r in caplog.records]
    assert late == (
        "sql sink: the 1 rows into table detections the writer was busy with when the run's "
        "close stopped waiting were not written (frame 0 refused); the close kept them in "
        f"the spool file {sink.kept_in}"
    )
    assert sink.describe() == f"sql {url}: 0 detections, 0 tracks written (2 rows not yet " + (
        f"written kept in {sink.kept_in})"
    )


@pytest.mark.usefixtures("short_grace")
def test_a_batch_the_database_refuses_in_a_spool_file_is_set_aside_and_the_rest_written(
    tmp_path: Path,
) -> None:
    database, spool_dir = tmp_path / "det.db", tmp_path / "spool"
    url = f"sqlite:///{database}"
    first = _busy_writer_sink(url, spool_dir)
    with write_locked(database):
        _write_one_box_frames(first, range(3))
        with pytest.raises(SinkError, match="3 rows kept in"):
            first.close()  # frames 0-2 and the run's end kept
    wait_for(lambda: stored(url) != [], "the late commit of frame 0")
    refuse_frame(url, 1)  # the database now refuses a kept row for good

    second = SqlSink(url, LABELS, spool_dir=spool_dir)
    second.close()
    assert [row[2] for row in stored(url)] == [0, 2]
    (refused,) = (spool_dir / "refused").iterdir()
    assert _frames(refused) == [("detections", [1])]
    assert run_status(url, first.run_id) == "finished"  # the rest of its file was written
    assert list(spool_dir.glob("*.jsonl")) == []


@pytest.mark.usefixtures("short_grace")
def test_a_batch_committed_after_the_close_gave_up_is_kept_then_counted_once_as_already_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database, spool_dir = tmp_path / "det.db", tmp_path / "spool"
    url = f"sqlite:///{database}"
    sink = _busy_writer_sink(url, spool_dir)
    with write_locked(database):
        _write_one_box_frames(sink, range(3))
        with pytest.raises(SinkError) as closed:
            sink.close()
        caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sinks.sql"):  # the lock let go: committed
        wait_for(lambda: stored(url) != [], "the writer's late commit")
        wait_for(lambda: caplog.records != [], "the late commit to be reported")
    assert [row[2] for row in stored(url)] == [0]
    assert _accounts(sink) == {"written": 0, "kept": 3, "refused": 0, "lost": 0}
    assert "were committed after all; the next run skips them" in caplog.records[0].getMessage()
    assert "writer still busy with" in str(closed.value)

    later = SqlSink(url, LABELS, spool_dir=spool_dir)
    later.close()  # the next run writes what was kept: frame 0 is there already
    assert [row[2] for row in stored(url)] == [0, 1, 2]  # frame 0 once
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 2
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 1
    assert "(left by an earlier run: 2 written, 1 already stored)" in later.describe()
    assert run_status(url, sink.run_id) == "finished"
    assert list(spool_dir.glob("*.jsonl")) == []


def test_the_runs_end_is_the_last_line_kept_after_rows_in_memory_and_in_the_spool_file(
    tmp_path: Path,
) -> None:
    database = tmp_path / "det.db"
    sink = _spilling_sink(database, tmp_path / "spool")
    with write_locked(database):
        _write_one_box_frames(sink, range(5))  # 2 rows in memory, 3 in the spool file
        with pytest.raises(SinkError, match="still unreachable"):
            sink.close()
    assert sink.kept_in is not None
    kept = _frames(sink.kept_in)
    assert kept[-1] == ("run_end", [None])  # replayed last, once the rows are in
    assert sorted(f for table, frames in kept[:-1] for f in frames) == [0, 1, 2, 3, 4]


def test_rows_of_a_spool_file_whose_folder_is_gone_for_good_are_counted_lost_at_the_close(
    tmp_path: Path,
) -> None:
    database, spool_dir = tmp_path / "det.db", tmp_path / "spool"
    sink = _spilling_sink(database, spool_dir)
    with write_locked(database):
        _write_one_box_frames(sink, range(5))  # 2 rows in memory, 3 in the spool file
        assert sink.outbox.spooled_rows == 3
        _replace_by_a_file(spool_dir)
        with pytest.raises(SinkError) as closed:
            sink.close()
    assert sink.kept_in is None
    assert str(closed.value) == (
        f"sql sink: 5 detections and the run's end lost: cannot write the spool file "
        f"{sink.outbox.spool_path}: {spool_dir} is a file, not a folder"
    )
    assert _accounts(sink) == {"written": 0, "kept": 0, "refused": 0, "lost": 5}


def test_a_damaged_spool_line_whose_folder_is_gone_for_good_is_counted_lost_not_a_traceback(
    tmp_path: Path,
) -> None:
    database, spool_dir = tmp_path / "det.db", tmp_path / "spool"
    sink = _spilling_sink(database, spool_dir)
    with write_locked(database):
        _write_one_box_frames(sink, range(5))  # 2 rows in memory, 3 in the spool file
        spool = sink.outbox.spool_path
        with spool.open("r+b") as f:  # its first line damaged on the disk
            f.write(b"#")
        _replace_by_a_file(spool_dir)
        with pytest.raises(SinkError) as closed:
            sink.close()
    assert str(closed.value) == (
        f"sql sink: 5 detections and the run's end lost: cannot write the spool file "
        f"{spool}: {spool_dir} is a file, not a folder"
    )
    assert _accounts(sink) == {"written": 0, "kept": 0, "refused": 0, "lost": 5}


def test_a_spool_line_damaged_during_the_run_is_counted_unreadable_not_kept_and_fails_the_run(
    tmp_path: Path,
) -> None:
    database, spool_dir = tmp_path / "det.db", tmp_path / "spool"
    url = f"sqlite:///{database}"
    sink = SqlSink(
        url,
        LABELS,
        batch_size=1,
        buffer_rows=1,
        spool_dir=spool_dir,
        sqlite_busy_timeout_ms=20,
        retry_initial_s=0.05,
    )
    with write_locked(database):
        _write_one_box_frames(sink, range(4))  # frame 0 in memory, 1-3 in the spool file
        spool = sink.outbox.spool_path
        line_1 = len(spool.read_bytes().splitlines(keepends=True)[0])
        with spool.open("r+b") as f:  # the line of frame 2 damaged on the disk
            f.seek(line_1)
            f.write(b"#")
    with pytest.raises(SinkError) as closed:
        sink.close()
    aside = spool_dir / "unreadable" / spool.name
    assert str(closed.value) == (
        f"sql sink: 1 rows unreadable in the spool file, set aside in {aside}"
    )
    assert [row[2] for row in stored(url)] == [0, 1, 3]
    assert aside.read_bytes().startswith(b"#")
    m = scrape_sink(sink)
    assert _accounts(sink) == {"written": 3, "kept": 0, "refused": 0, "lost": 0}
    assert m["ssd_sink_sql_rows_unreadable_total"] == 1
    assert run_status(url, sink.run_id) == "failed"
    assert sink.describe() == (
        f"sql {url}: 3 detections, 0 tracks written (1 rows unreadable in the spool file, "
        f"set aside in {aside})"
    )
