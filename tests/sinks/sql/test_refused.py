"""The file of refused rows: the batches the database refuses for good are set aside in it
and counted; once the run's close has closed it, it takes nothing more and is not opened
again (a batch refused after the close gave up on the writer: tests/sinks/sql/test_close.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from sinks.base import SinkError
from sinks.sql.refused import RefusedFile
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch
from sinks.sql.writer import RowWriter
from tests.sinks.sql.builders import LABELS, T0, Box, frame_result

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
