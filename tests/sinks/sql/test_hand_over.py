"""When SqlSink hands its rows to the writer and they are committed: `batch_size` at a
time, once the oldest has waited `flush_interval_s` (whether or not another frame comes),
held ended tracks at once, the rest at the end; in frame order. Against SQLite in tmp_path
and the local PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.types import HeldTrackEvents, StreamEnd, TrackEvent
from sinks.sql.models import Detection, Track
from sinks.sql.outbox import Outbox
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch
from sinks.sql.writer import RowWriter
from tests.sinks.sql.builders import (
    LABELS,
    T0,
    Box,
    count,
    frame_result,
    read_all,
    summary,
    wait_for,
)


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


def test_rows_older_than_flush_interval_are_stored_when_no_other_frame_comes(
    sql_db_url: str,
) -> None:
    # the camera's frames stopped (reconnecting, blocked): nothing more reaches the sink
    sink = SqlSink(sql_db_url, LABELS, batch_size=100, flush_interval_s=0.05)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1), Box(0, 0, 2, 2, 0.5, 2)]))
    wait_for(lambda: count(sql_db_url, Detection) == 2, "the rows without a later frame")
    sink.close()
    assert count(sql_db_url, Detection) == 2


def test_rows_are_committed_in_frame_order_whether_a_frame_or_the_clock_hands_them_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a camera's last stored frame says every earlier frame is stored (cluster resume);
    # the writer's clock, slow to hand its rows over, meets the frames that follow them
    put = Outbox.put

    def slow_put(self: Outbox, batch: RowBatch) -> None:
        if threading.current_thread().name == "sql-writer":
            time.sleep(0.01)
        put(self, batch)

    monkeypatch.setattr(Outbox, "put", slow_put)
    committed: list[int] = []
    write = RowWriter.write

    def record(self: RowWriter, batch: RowBatch) -> None:
        write(self, batch)
        committed.extend(r["frame"] for r in batch.rows if batch.table == "detections")

    monkeypatch.setattr(RowWriter, "write", record)
    url = f"sqlite:///{tmp_path / 'order.db'}"
    sink = SqlSink(url, LABELS, batch_size=1000, flush_interval_s=0.001)
    for i in range(100):
        sink.write(frame_result("cam", i, T0 + i, [Box(0, 0, 1, 1, 0.5, 1)]))
        time.sleep(0.002)  # the clock's due in between
    sink.close()
    assert committed == list(range(100))


def test_close_inserts_the_rows_left_in_the_buffer(sql_db_url: str) -> None:
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1), Box(0, 0, 2, 2, 0.5, 2)]))
    assert count(sql_db_url, Detection) == 0
    sink.close()
    assert count(sql_db_url, Detection) == 2


def test_held_ended_tracks_are_stored_at_once_without_waiting_for_another_frame(
    sql_db_url: str,
) -> None:
    # their camera's frames may have stopped: no later write would make the rows due
    sink = SqlSink(sql_db_url, LABELS, batch_size=100, flush_interval_s=3600)
    sink.write(frame_result("cam", 3, T0, [Box(0, 0, 1, 1, 0.5, 1)]))
    sink.held_events(HeldTrackEvents("cam", (TrackEvent("ended", summary("cam", 2, 0, 3)),)))
    assert sink.outbox.wait_empty(10)
    assert [r["track_id"] for r in read_all(sql_db_url, Track)] == [2]
    assert count(sql_db_url, Detection) == 1  # the frame's rows waiting went with them
    sink.close()
