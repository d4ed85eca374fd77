"""The rows earlier runs left in spool files: written by the next run, each counted once
(written, already stored, refused), each line done with never coming back (and, when a run
was killed before it could blank it, counted once and set aside once all the same), and a
file another run took meanwhile left alone without a word."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert

from sinks.sql.database import DatabaseUrl
from sinks.sql.outbox import Outbox
from sinks.sql.replay import replay_spools
from sinks.sql.sink import SqlSink
from sinks.sql.spool import UNREADABLE_FOLDER, RowBatch, UnreadableLine, spool_prefix
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

ROOT = Path(__file__).resolve().parents[3]


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


def test_rows_committed_late_are_refused_as_duplicates_where_inserts_are_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    earlier = SqlSink(url, LABELS, spool_dir=spool_dir)
    earlier.write(frame_result("cam", 0, T0, [Box(1, 2, 3, 4, 0.5, 1)]))
    earlier.close()
    line = RowBatch("detections", [spooled_detection(earlier.run_id, 0)]).to_line()
    _spool(url, spool_dir, line)
    # what a database other than SQLite and PostgreSQL gets: no rows skipped
    monkeypatch.setattr("sinks.sql.inserts._insert_skipping_existing", lambda _, m: insert(m))

    later = SqlSink(url, LABELS, spool_dir=spool_dir)
    later.close()
    assert [row[2] for row in stored(url)] == [0]  # not stored twice
    (refused,) = (spool_dir / "refused").iterdir()
    assert refused.read_text() == line
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 0
    assert metrics["ssd_sink_sql_rows_replayed_refused_total"] == 1
    assert later.describe().endswith(f"(left by an earlier run: 1 refused, set aside in {refused})")


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
    assert first.describe().endswith(  # the line not set aside is not counted yet
        f"(left by an earlier run: 1 written, 1 refused, set aside in {refused})"
    )
    assert scrape_sink(first)["ssd_sink_sql_lines_replayed_unreadable_total"] == 0

    blocker.unlink()
    second = SqlSink(url, LABELS, spool_dir=spool_dir)
    second.close()
    assert list((spool_dir / "refused").iterdir()) == [refused]  # frame 1 not set aside again
    metrics = scrape_sink(second)
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 0  # frame 0 done
    assert metrics["ssd_sink_sql_lines_replayed_unreadable_total"] == 1  # by the run that did
    aside = spool_dir / UNREADABLE_FOLDER / spool.name
    assert second.describe() == (
        f"sql {url}: 0 detections, 0 tracks written "
        f"(left by an earlier run: 1 lines unreadable, set aside in {aside})"
    )
    assert not spool.exists()
    assert aside.read_text().startswith('{"table"')
    assert [row[2] for row in stored(url)] == [0]


def test_an_earlier_runs_unreadable_lines_are_set_aside_counted_once_and_every_readable_row_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # run 1
    lines = [RowBatch("detections", [spooled_detection(1, f)]).to_line() for f in range(5)]
    damaged = lines[1].replace(",", ";", 1)  # a byte damaged on the disk
    cut = lines[4][:30]  # the run died while writing it: no newline
    spool = _spool(url, spool_dir, lines[0], damaged, lines[2], lines[3], cut)

    later = SqlSink(url, LABELS, spool_dir=spool_dir)
    later.close()  # no error: the lines are not this run's
    assert [row[2] for row in stored(url)] == [0, 2, 3]
    aside = spool_dir / UNREADABLE_FOLDER / spool.name
    assert aside.read_text() == damaged + cut + "\n"
    assert not spool.exists()
    said = [r for r in caplog.records if r.name == "sinks.sql.spool"]
    assert [r.getMessage().split(" unreadable (")[0] for r in said] == [
        f"sql sink: line 2 of {spool}",
        f"sql sink: line 5 of {spool}",
    ]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in said)
    assert later.describe() == (
        f"sql {url}: 0 detections, 0 tracks written (left by an earlier run: 3 written, "
        f"2 lines unreadable, set aside in {aside})"
    )
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 3
    assert metrics["ssd_sink_sql_lines_replayed_unreadable_total"] == 2
    assert metrics["ssd_sink_sql_rows_unreadable_total"] == 0  # none of the run's own

    caplog.clear()
    again = SqlSink(url, LABELS, spool_dir=spool_dir)
    again.close()
    assert again.describe() == f"sql {url}: 0 detections, 0 tracks written"
    assert scrape_sink(again)["ssd_sink_sql_lines_replayed_unreadable_total"] == 0
    assert aside.read_text() == damaged + cut + "\n"  # not set aside twice
    assert [r for r in caplog.records if r.name == "sinks.sql.spool"] == []


_KILLED_REPLAY = """
import os, signal, sys
from pathlib import Path
from sinks.sql import replay
from sinks.sql.sink import SqlSink
from tests.sinks.sql.builders import LABELS

url, spool_dir, done = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
blank = replay._Blanking.line
lines = []

def killed_before_blanking(self, line, *, finished):
    lines.append(line)
    if len(lines) == done:  # that line written or set aside, and not blanked
        os.kill(os.getpid(), signal.SIGKILL)
    blank(self, line, finished=finished)

replay._Blanking.line = killed_before_blanking
SqlSink(url, LABELS, spool_dir=spool_dir)
"""


def _killed_replay(url: str, spool_dir: Path, done: int) -> None:
    """A run killed (SIGKILL) while it wrote the spool files earlier runs left: once it
    was done with `done` lines, before it blanked the last of them."""
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_REPLAY, url, str(spool_dir), str(done)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_rows_a_killed_run_wrote_before_blanking_their_lines_count_once_as_already_stored(
    tmp_path: Path,
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # run 1
    lines = [RowBatch("detections", [spooled_detection(1, f)]).to_line() for f in range(3)]
    spool = _spool(url, spool_dir, *lines)
    _killed_replay(url, spool_dir, done=2)
    assert spool.read_text().splitlines()[1:] == [line.strip() for line in lines[1:]]

    later = SqlSink(url, LABELS, spool_dir=spool_dir)
    later.close()
    assert [row[2] for row in stored(url)] == [0, 1, 2]
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 1  # frame 2
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 1  # frame 1, written when killed
    assert metrics["ssd_sink_sql_rows_replayed_refused_total"] == 0
    assert later.describe().endswith("(left by an earlier run: 1 written, 1 already stored)")
    assert not spool.exists()


def test_a_batch_a_killed_run_set_aside_before_blanking_its_line_is_not_set_aside_again(
    tmp_path: Path,
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # run 1
    refuse_frame(url, 1)
    lines = [RowBatch("detections", [spooled_detection(1, f)]).to_line() for f in range(3)]
    spool = _spool(url, spool_dir, *lines)
    _killed_replay(url, spool_dir, done=2)
    (aside,) = (spool_dir / "refused").iterdir()  # the killed run's
    assert _frames(aside) == [1]
    assert spool.read_text().splitlines()[1] == lines[1].strip()  # not blanked

    later = SqlSink(url, LABELS, spool_dir=spool_dir)
    later.close()
    assert list((spool_dir / "refused").iterdir()) == [aside]
    assert _frames(aside) == [1]  # once
    assert [row[2] for row in stored(url)] == [0, 2]
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 1  # frame 2
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 0
    assert metrics["ssd_sink_sql_rows_replayed_refused_total"] == 1
    assert metrics["ssd_sink_sql_rows_refused_total"] == 0  # none of the run's own
    assert later.describe().endswith(
        f"(left by an earlier run: 1 written, 1 refused, already set aside in {aside})"
    )
    assert not spool.exists()


@pytest.mark.parametrize(
    ("unreadable", "done"),
    [(1, 2), (2, 3)],
    ids=["damaged mid-file", "cut short at the end"],
)
def test_an_unreadable_line_a_killed_run_set_aside_before_blanking_it_is_not_set_aside_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unreadable: int, done: int
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # run 1
    lines = [RowBatch("detections", [spooled_detection(1, f)]).to_line() for f in range(3)]
    cut = '{"table": "detections", "rows": [{"cut sho'  # no newline when last: a crash
    lines[unreadable] = cut if unreadable == len(lines) - 1 else cut + "\n"
    spool = _spool(url, spool_dir, *lines)
    _killed_replay(url, spool_dir, done=done)
    aside = spool_dir / UNREADABLE_FOLDER / spool.name  # the killed run's
    assert aside.read_text() == cut + "\n"
    assert spool.read_text().splitlines()[unreadable] == cut  # not blanked

    later = SqlSink(url, LABELS, spool_dir=spool_dir)
    later.close()
    assert list((spool_dir / UNREADABLE_FOLDER).iterdir()) == [aside]
    assert aside.read_text() == cut + "\n"  # once
    [said] = [r.getMessage() for r in caplog.records if r.name == "sinks.sql.spool"]
    assert said.startswith(f"sql sink: line {unreadable + 1} of {spool} unreadable (")
    assert said.endswith(f"); already set aside in {aside}")
    assert [row[2] for row in stored(url)] == [f for f in range(3) if f != unreadable]
    metrics = scrape_sink(later)
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 2 - unreadable  # the lines after it
    assert metrics["ssd_sink_sql_rows_already_stored_total"] == 0  # blanked when killed
    # counted by this run, as a refused batch found set aside is: the killed run summed up none
    assert metrics["ssd_sink_sql_lines_replayed_unreadable_total"] == 1
    assert later.describe().endswith(f"1 lines unreadable, set aside in {aside})")
    assert not spool.exists()


_KILLED_OUTBOX = """
import os, signal, sys
from pathlib import Path
from sinks.sql.outbox import Outbox
from sinks.sql.spool import RowBatch

spool = Path(sys.argv[1])
outbox = Outbox(spool, max_memory_rows=0, max_spool_bytes=1 << 20)
for n in range(3):
    outbox.put(RowBatch("detections", [{"run_id": 1, "n": n}]))
first = spool.read_bytes().splitlines(keepends=True)[0]
with spool.open("r+b") as f:  # the second line damaged on the disk
    f.seek(len(first))
    f.write(b"#")
outbox.done(outbox.peek(0))  # batch 0 written
outbox.peek(0)  # line 2 set aside; batch 2 read
os.kill(os.getpid(), signal.SIGKILL)  # before the run's end could keep what is left
"""


def test_a_line_of_its_own_spool_file_a_killed_run_set_aside_is_not_set_aside_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "sql-x-run1.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_OUTBOX, str(spool)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    damaged = spool.read_bytes().splitlines(keepends=True)[1]
    assert damaged.startswith(b"#")
    aside = tmp_path / UNREADABLE_FOLDER / spool.name
    assert aside.read_bytes() == damaged
    caplog.clear()

    replayed: list[int] = []
    aside_lines: list[UnreadableLine] = []
    replay_spools(tmp_path, "sql-x-", lambda b: replayed.append(b.rows[0]["n"]), aside_lines.append)
    assert replayed == [0, 2]  # batch 0 again: a database finds it stored
    assert [line.number for line in aside_lines] == [2]  # counted: the killed run summed up none
    assert aside.read_bytes() == damaged  # once
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"sql sink: line 2 of {spool} unreadable (")
    assert said.endswith(f"); already set aside in {aside}")
    assert not spool.exists()


def _syncs_and_blanks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The list to which each fsync adds its file's folder name, and each blanking of a
    spool line "blank", in the order they happen."""
    synced: list[str] = []
    sync, write = os.fsync, os.pwrite

    def recorded(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).parent.name)
        sync(fd)

    def blanking(fd: int, data: bytes, offset: int) -> int:
        if not data.strip():
            synced.append("blank")
        return write(fd, data, offset)

    monkeypatch.setattr("os.fsync", recorded)
    monkeypatch.setattr("sinks.sql.replay.os.pwrite", blanking)
    return synced


def test_an_unreadable_line_is_written_out_where_it_is_set_aside_before_it_is_blanked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "sql-x-run1.jsonl"
    spool.write_bytes(batch(0).to_line().encode() + b"#damaged\n" + batch(1).to_line().encode())
    synced = _syncs_and_blanks(monkeypatch)
    replay_spools(tmp_path, "sql-x-", lambda _: None, lambda _: None)
    # a power cut after the spool file is written out keeps the line: set aside first
    assert synced == ["blank", UNREADABLE_FOLDER, "blank", "blank", tmp_path.name]


def test_a_refused_batch_is_written_out_before_its_spool_line_is_blanked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'det.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # run 1
    refuse_frame(url, 0)
    _spool(url, spool_dir, RowBatch("detections", [spooled_detection(1, 0)]).to_line())
    synced = _syncs_and_blanks(monkeypatch)
    SqlSink(url, LABELS, spool_dir=spool_dir).close()
    # a power cut after the spool file is written out keeps the batch: set aside first
    assert synced[:3] == ["refused", "blank", "spool"]


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
    aside_lines: list[UnreadableLine] = []
    rows, files = replay_spools(
        tmp_path, "sql-x-", lambda b: replayed.append(b.rows[0]["n"]), aside_lines.append
    )
    assert replayed == [0, 1, 2, 3] and rows == 8
    assert [line.number for line in aside_lines] == [5]
    assert files == [kept] and not kept.exists()
    aside = tmp_path / UNREADABLE_FOLDER / kept.name
    assert aside.read_text() == cut + "\n"
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"sql sink: line 5 of {kept} unreadable (")
    assert said.endswith(f"); set aside as it was in {aside}")


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
    aside_lines: list[UnreadableLine] = []
    rows, _ = replay_spools(
        tmp_path, "sql-x-", lambda b: replayed.append(b.rows[0]["n"]), aside_lines.append
    )
    assert replayed == [0, 1] and rows == 4 and not spool.exists()
    assert [(line.number, line.text) for line in aside_lines] == [(2, damaged + b"\n")]
    assert (tmp_path / UNREADABLE_FOLDER / spool.name).read_bytes() == damaged + b"\n"


def test_a_spool_file_another_run_took_meanwhile_is_skipped_without_a_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gone, left = tmp_path / "sql-x-a.jsonl", tmp_path / "sql-x-b.jsonl"
    left.write_text(RowBatch("detections", [{"run_id": 1, "n": 0}]).to_line())
    monkeypatch.setattr("sinks.sql.replay.leftover_spools", lambda *_: [gone, left])
    written: list[RowBatch] = []
    with caplog.at_level(logging.DEBUG, logger="sinks.sql"):
        rows, files = replay_spools(tmp_path, "sql-x-", written.append, lambda _: None)
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
        assert replay_spools(tmp_path, "sql-x-", written.append, lambda _: None) == (0, [])
    assert written == [] and caplog.records == []
