"""When SqlSink hands its rows to the writer and they are committed: `batch_size` at a
time, once the oldest has waited `flush_interval_s` (at the next frame, or at a tick when
none comes), held ended tracks at once, the rest at the end; in frame order. Against
SQLite in tmp_path and the local PostgreSQL (see conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.types import HeldTrackEvents, StreamEnd, TrackEvent
from sinks.sql.models import Detection, Track
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch
from sinks.sql.writer import RowWriter
from tests.clock import Clock
from tests.sinks.sql.builders import (
    LABELS,
    T0,
    Box,
    count,
    frame_result,
    read_all,
    summary,
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


def test_rows_that_waited_flush_interval_are_stored_at_a_tick_when_no_other_frame_comes(
    sql_db_url: str,
) -> None:
    # the camera's frames stopped (reconnecting, blocked): only the worker's ticks come
    clock = Clock()
    sink = SqlSink(sql_db_url, LABELS, batch_size=100, flush_interval_s=1.0, clock=clock)
    sink.write(frame_result("cam", 0, T0, [Box(0, 0, 1, 1, 0.5, 1), Box(0, 0, 2, 2, 0.5, 2)]))
    clock.advance(0.9)
    sink.tick()
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 0  # not due yet
    clock.advance(0.1)
    sink.tick()
    assert sink.outbox.wait_empty(10)
    assert count(sql_db_url, Detection) == 2
    sink.close()
    assert count(sql_db_url, Detection) == 2


def test_rows_are_committed_in_frame_order_whether_a_frame_or_a_tick_hands_them_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a camera's last stored frame says every earlier frame is stored (cluster resume)
    committed: list[int] = []
    write = RowWriter.write

    def record(self: RowWriter, batch: RowBatch) -> None:
        write(self, batch)
        committed.extend(r["frame"] for r in batch.rows if batch.table == "detections")

    monkeypatch.setattr(RowWriter, "write", record)
    url = f"sqlite:///{tmp_path / 'order.db'}"
    clock = Clock()
    sink = SqlSink(url, LABELS, batch_size=1000, flush_interval_s=0.01, clock=clock)
    for i in range(100):
        sink.write(frame_result("cam", i, T0 + i, [Box(0, 0, 1, 1, 0.5, 1)]))
        clock.advance(0.004)
        if i % 2:
            sink.tick()  # due now and then between frames, at a frame other times
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
