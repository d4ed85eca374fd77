"""The file of refused rows: the batches the database refuses for good are set aside in it
and counted; once the run's close has closed it, a batch refused later (by a writer the
close gave up on) is lost and counted, and the file is not opened again."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

import sinks.sql.writer
from sinks.base import SinkError
from sinks.sql.refused import RefusedFile
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch
from sinks.sql.writer import RowWriter
from tests.sinks.sql.builders import LABELS, T0, Box, frame_result, wait_for

LET_GO_S = 30.0
"""A held write lets go by itself after this long, so that a test waiting for the wrong
thing fails instead of hanging."""


def _refusal() -> IntegrityError:
    return IntegrityError("INSERT", {}, sqlite3.IntegrityError("CHECK constraint failed"))


def _metrics(sink: SqlSink) -> dict[str, float]:
    return {m.name: m.value for m in sink.metrics()}


def test_a_closed_file_of_refused_rows_takes_nothing_more_and_creates_no_file(
    tmp_path: Path,
) -> None:
    refused = RefusedFile(tmp_path / "refused" / "run1.jsonl", max_bytes=1 << 20)
    refused.close()
    why = refused.add(RowBatch("detections", [{"run_id": 1, "frame": 0}]))
    assert why == f"the file of refused rows {refused.path} was closed: the run had ended"
    assert not refused.path.exists() and refused.rows == 0


def test_rows_the_database_refuses_are_counted_as_refused_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(url, LABELS, batch_size=10, spool_dir=tmp_path / "spool")
    written = RowWriter.write

    def refuse_frame_1(self: RowWriter, batch: RowBatch) -> None:
        if batch.table == "detections" and batch.rows[0]["frame"] == 1:
            raise _refusal()
        written(self, batch)

    monkeypatch.setattr(RowWriter, "write", refuse_frame_1)
    assert _metrics(sink)["sql_rows_refused"] == 0
    for index, boxes in enumerate((1, 2)):
        sink.write(frame_result("cam", index, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)] * boxes))
        sink.flush(10)
    with pytest.raises(SinkError, match="set aside in"):
        sink.close()
    metrics = _metrics(sink)
    assert metrics["sql_rows_refused"] == 2  # frame 1's two boxes
    assert metrics["sql_rows_lost"] == 0
    assert metrics["sql_rows_written"] == 1  # frame 0's box


def test_a_refusal_after_the_close_gave_up_on_a_busy_writer_is_lost_and_reopens_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    monkeypatch.setattr(sinks.sql.writer, "STOP_GRACE_S", 0.0)
    sink = SqlSink(url, LABELS, batch_size=1, spool_dir=spool_dir, close_timeout_s=0.0)
    busy, let_go = threading.Event(), threading.Event()
    written = RowWriter.write

    def refuse_late(self: RowWriter, batch: RowBatch) -> None:
        if batch.table != "detections":
            written(self, batch)
            return
        busy.set()
        let_go.wait(LET_GO_S)
        raise _refusal()

    monkeypatch.setattr(RowWriter, "write", refuse_late)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1, 3)]))
    assert busy.wait(LET_GO_S)
    with pytest.raises(SinkError, match="rows kept in"):
        sink.close()  # gives up on the writer, still busy, and closes the file of refused rows
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sinks.sql"):
        let_go.set()
        wait_for(lambda: caplog.records != [], "the late refusal to be reported")
    [error] = [r.getMessage() for r in caplog.records]
    assert not (spool_dir / "refused").exists()  # not reopened, so nothing left open
    assert _metrics(sink)["sql_rows_lost"] == 1
    assert _metrics(sink)["sql_rows_refused"] == 0
    assert error.startswith("sql sink: cannot insert 1 rows into table detections of ")
    assert error.endswith(
        "CHECK constraint failed; its rows lost: the file of refused rows "
        f"{spool_dir / 'refused' / sink.outbox.spool_path.name} was closed: the run had ended"
    )
    assert "\n" not in error
