"""The rows earlier runs left in spool files: written by the next run, each counted once
(written, already stored, refused), each line done with never coming back, and a file
another run took meanwhile left alone without a word."""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path

import pytest

from sinks.sql.database import DatabaseUrl
from sinks.sql.outbox import Outbox
from sinks.sql.replay import replay_spools
from sinks.sql.sink import SqlSink
from sinks.sql.spool import UNREADABLE_FOLDER, RowBatch, spool_prefix
from tests.sinks.scrape import scrape_sink
from tests.sinks.sql.builders import (
    LABELS,
    T0,
    Box,
    frame_result,
    refuse_frame,
    spooled_detection,
    stored,
)


def _spool(url: str, spool_dir: Path, *lines: str) -> Path:
    """A spool file an earlier run left for `url`, holding `lines`."""
    path = spool_dir / f"{spool_prefix(DatabaseUrl(url))}run1-1.jsonl"
    spool_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    return path


def batch(n: int, rows: int = 2) -> RowBatch:
    return RowBatch("detections", [{"run_id": 1, "n": n, "k": k} for k in range(rows)])


def _frames(path: Path) -> list[int]:
    return [r["frame"] for line in path.read_text().splitlines() for r in json.loads(line)["rows"]]


def test_rows_committed_late_and_replayed_count_once_as_already_stored_not_as_written(
    sql_db_url: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    earlier = SqlSink(sql_db_url, LABELS, spool_dir=spool_dir)
    for frame in range(2):  # committed after that run had kept them in its spool file
        earlier.write(frame_result("cam", frame, T0 + frame, [Box(1, 2, 3, 4, 0.5, 1)]))
    earlier.close()
    rows = [spooled_detection(earlier.run_id, frame) for frame in range(5)]
    _spool(sql_db_url, spool_dir, RowBatch("detections", rows).to_line())

    later = SqlSink(sql_db_url, LABELS, spool_dir=spool_dir)
    later.close()
    assert [row[2] for row in stored(sql_db_url)] == [0, 1, 2, 3, 4]
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 3
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 2
    assert metrics["ssd_sink_sql_rows_written_total"] == 0  # the run's own
    assert later.describe().endswith("(left by an earlier run: 3 written, 2 already stored)")
    assert list(spool_dir.glob("*.jsonl")) == []


def test_a_spool_file_kept_for_a_line_it_could_not_set_aside_gives_no_line_twice(
    tmp_path: Path,
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # run 1
    refuse_frame(url, 1)
    spool = _spool(
        url,
        spool_dir,
        RowBatch("detections", [spooled_detection(1, 0)]).to_line(),
        RowBatch("detections", [spooled_detection(1, 1)]).to_line(),
        '{"table": "detections", "rows": [{"cut sho\n',
    )
    blocker = spool_dir / "unreadable"
    blocker.write_text("")  # a file where the folder of unreadable lines goes: no room

    first = SqlSink(url, LABELS, spool_dir=spool_dir)
    first.close()
    assert spool.exists()  # kept: its unreadable line is nowhere else
    (refused,) = (spool_dir / "refused").iterdir()
    assert _frames(refused) == [1]
    assert first.describe().endswith(
        f"(left by an earlier run: 1 written, 1 refused, set aside in {refused})"
    )

    blocker.unlink()
    second = SqlSink(url, LABELS, spool_dir=spool_dir)
    second.close()
    assert list((spool_dir / "refused").iterdir()) == [refused]  # frame 1 not set aside again
    assert scrape_sink(second)["ssd_sink_sql_rows_already_stored_total"] == 0  # frame 0 done
    assert second.describe() == f"sql {url}: 0 detections, 0 tracks written"
    assert not spool.exists()
    assert (spool_dir / "unreadable" / spool.name).read_text().startswith('{"table"')
    assert [row[2] for row in stored(url)] == [0]


def test_persisted_batches_are_replayed_and_a_line_cut_by_a_crash_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "sql-x-run1.jsonl", max_memory_rows=4, max_spool_bytes=1 << 20)
    for n in range(4):
        outbox.put(batch(n))
    kept = outbox.persist()
    assert kept is not None
    cut = '{"table": "detections", "rows": [{"n": 9'  # the process died here
    with kept.open("a") as f:
        f.write(cut)
    replayed: list[int] = []
    rows, files = replay_spools(tmp_path, "sql-x-", lambda b: replayed.append(b.rows[0]["n"]))
    assert replayed == [0, 1, 2, 3] and rows == 8
    assert files == [kept] and not kept.exists()
    aside = tmp_path / UNREADABLE_FOLDER / kept.name
    assert aside.read_text() == cut + "\n"
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"sql sink: line 5 of {kept} unreadable (")
    assert said.endswith(f"); kept as it was in {aside}")


@pytest.mark.parametrize(
    "damaged",
    [
        b"[1, 2]",
        b'{"table": "detections", "rows": "ab"}',
        b'{"table": "cats", "rows": []}',
        b'{"table": "detections", "rows": [1]}',
        b'{"table": "detections", "rows": [{"frame": 1}]}',
        b"\xff\xfe",
    ],
    ids=[
        "a list",
        "rows not a list",
        "unknown table",
        "a row not an object",
        "a row without its run",
        "not UTF-8",
    ],
)
def test_a_leftover_spool_line_of_the_wrong_shape_is_set_aside_as_it_was_and_the_rest_written(
    tmp_path: Path, damaged: bytes
) -> None:
    spool = tmp_path / "sql-x-run1.jsonl"
    spool.write_bytes(batch(0).to_line().encode() + damaged + b"\n" + batch(1).to_line().encode())
    replayed: list[int] = []
    rows, _ = replay_spools(tmp_path, "sql-x-", lambda b: replayed.append(b.rows[0]["n"]))
    assert replayed == [0, 1] and rows == 4 and not spool.exists()
    assert (tmp_path / UNREADABLE_FOLDER / spool.name).read_bytes() == damaged + b"\n"


def test_a_spool_file_another_run_took_meanwhile_is_skipped_without_a_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gone, left = tmp_path / "sql-x-a.jsonl", tmp_path / "sql-x-b.jsonl"
    left.write_text(RowBatch("detections", [{"run_id": 1, "n": 0}]).to_line())
    monkeypatch.setattr("sinks.sql.replay.leftover_spools", lambda *_: [gone, left])
    written: list[RowBatch] = []
    with caplog.at_level(logging.DEBUG, logger="sinks.sql"):
        rows, files = replay_spools(tmp_path, "sql-x-", written.append)
    assert (rows, files) == (1, [left]) and len(written) == 1
    assert caplog.records == []
    assert not left.exists()


def test_a_spool_file_another_run_deleted_while_this_one_waited_for_it_is_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "sql-x-a.jsonl"
    spool.write_text(RowBatch("detections", [{"run_id": 1, "n": 0}]).to_line())
    lock = fcntl.flock

    def taken_first(fd: int, operation: int) -> None:
        spool.unlink()  # the other run wrote it, deleted it, and let go of it
        lock(fd, operation)

    monkeypatch.setattr("sinks.sql.replay.fcntl.flock", taken_first)
    written: list[RowBatch] = []
    with caplog.at_level(logging.DEBUG, logger="sinks.sql"):
        assert replay_spools(tmp_path, "sql-x-", written.append) == (0, [])
    assert written == [] and caplog.records == []
