"""The SQL writer's outbox: bounded memory, a spool file beyond it, first in first out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sinks.sql.outbox import Outbox
from sinks.sql.spool import UNREADABLE_FOLDER, RowBatch
from tests.sinks.small_disk import small_disk


def batch(n: int, rows: int = 2) -> RowBatch:
    return RowBatch("detections", [{"run_id": 1, "n": n, "k": k} for k in range(rows)])


def drain(outbox: Outbox, stop_at: int | None = None) -> list[int]:
    """The batches written, in order, up to (not with) the one numbered `stop_at`."""
    taken = []
    while (b := outbox.peek(0)) is not None and b.rows[0]["n"] != stop_at:
        taken.append(b.rows[0]["n"])
        outbox.done(b)
    return taken


def test_batches_beyond_the_memory_bound_are_spooled_and_all_come_back_in_order(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "spool.jsonl", max_memory_rows=6, max_spool_bytes=1 << 20)
    for n in range(3):
        outbox.put(batch(n))
    assert (outbox.memory_rows, outbox.spooled_rows) == (6, 0)
    for n in range(3, 8):
        outbox.put(batch(n))
    assert (outbox.memory_rows, outbox.spooled_rows) == (6, 10)

    first = outbox.peek(0)
    assert first is not None
    outbox.done(first)
    outbox.put(batch(8))  # memory has room again, but older batches wait in the spool
    assert outbox.spooled_rows == 12
    assert [first.rows[0]["n"], *drain(outbox)] == list(range(9))
    assert outbox.is_empty() and outbox.pending_rows == 0
    assert outbox.persist() is None and not (tmp_path / "spool.jsonl").exists()


def test_a_spool_whose_folder_vanished_mid_run_is_written_anew_whole_at_the_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool" / "spool.jsonl"
    outbox = Outbox(path, max_memory_rows=2, max_spool_bytes=1 << 20)
    for n in range(4):
        outbox.put(batch(n))
    shutil.rmtree(path.parent)  # the open file took the rows on, deleted
    outbox.put(batch(4))
    assert outbox.persist() == path
    assert [RowBatch.from_line(line).rows[0]["n"] for line in path.read_text().splitlines()] == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_a_full_spool_drops_and_counts_rows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "spool.jsonl", max_memory_rows=2, max_spool_bytes=100)
    for n in range(10):
        outbox.put(batch(n))
    assert outbox.lost["detections"] > 0
    assert outbox.pending_rows + outbox.lost["detections"] == 20


def test_a_spool_line_damaged_during_the_run_is_set_aside_and_counted_once_not_as_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "spool.jsonl", max_memory_rows=2, max_spool_bytes=1 << 20)
    for n in range(4):
        outbox.put(batch(n))  # 0 in memory, 1-3 in the spool file
    lines = outbox.spool_path.read_bytes().splitlines(keepends=True)
    damaged = b"#" + lines[1][1:]
    with outbox.spool_path.open("r+b") as f:  # the file the outbox holds open
        f.seek(len(lines[0]))
        f.write(damaged)
    assert drain(outbox, stop_at=3) == [0, 1]  # batch 3 read, not yet written
    assert (outbox.spooled_rows, outbox.unreadable_rows) == (2, 2)
    aside = tmp_path / UNREADABLE_FOLDER / "spool.jsonl"
    assert outbox.unreadable_in == aside and aside.read_bytes() == damaged
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"sql sink: line 2 of {outbox.spool_path} unreadable (")
    assert said.endswith(f"); set aside as it was in {aside}")
    assert outbox.persist() == outbox.spool_path
    assert outbox.kept_rows == 2  # batch 3: each row in one count
    [kept] = outbox.spool_path.read_text().splitlines()
    assert RowBatch.from_line(kept).rows[0]["n"] == 3


def test_a_spool_write_cut_short_by_a_full_disk_leaves_no_partial_line_and_is_counted(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        outbox = Outbox(disk.path / "spool.jsonl", max_memory_rows=2, max_spool_bytes=1 << 20)
        outbox.put(batch(0))
        outbox.put(batch(1, rows=100))  # memory is full: spooled
        size = outbox.spool_path.stat().st_size
        disk.fill(leave=8192)
        outbox.put(batch(2, rows=1000))  # a line longer than the room left
        assert outbox.spool_path.stat().st_size == size  # nothing of it is left
        assert (outbox.lost["detections"], outbox.pending_rows) == (1000, 102)
        outbox.put(batch(3))  # fits in the room left

        disk.free()
        outbox.put(batch(4))
        assert drain(outbox) == [0, 1, 3, 4]
        assert outbox.lost["detections"] == 1000


def test_a_batch_the_spool_cannot_take_waits_in_memory_where_there_is_room(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        outbox = Outbox(disk.path / "spool.jsonl", max_memory_rows=800, max_spool_bytes=1 << 20)
        for n in range(4):
            outbox.put(batch(n, rows=400))  # memory holds 0 and 1, the spool 2 and 3
        first = outbox.peek(0)
        assert first is not None
        outbox.done(first)  # memory has room again, but the spool goes first...
        disk.fill()
        outbox.put(batch(4, rows=400))  # ...unless it cannot be written
        assert outbox.lost["detections"] == 0
        assert [first.rows[0]["n"], *drain(outbox)] == [0, 1, 4, 2, 3]
