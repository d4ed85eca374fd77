"""A full disk is not an outage: the SQL sink says so once, keeps what its memory buffer
holds, counts exactly what it loses, and writes what it kept once there is room again.

Disks are filled for real: a small tmpfs holding the database, the spool and nothing else
(skipped where mounting is not allowed); for PostgreSQL, a server of the test's own whose
tables live in a tablespace on such a tmpfs (skipped where initdb is missing). One case,
that runs everywhere, makes SQLite full with a page limit instead.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import pytest
from sqlalchemy import create_engine, text

import sinks.sql.writer
from pipeline.types import StreamEnd, TrackEvent
from sinks.base import SinkError
from sinks.disk import mount_point
from sinks.sql.models import Track
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch
from sinks.sql.writer import RowWriter
from tests.sinks.small_disk import SmallDisk, small_disk
from tests.sinks.sql.builders import (
    FAST_RETRY,
    LABELS,
    count,
    expected,
    run_status,
    sqlite_full_error,
    stored,
    summary,
    wait_for,
    write_frames,
)
from tests.sinks.sql.private_postgres import PrivatePostgres

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", "2m") as mounted:
        yield mounted


def database_on(disk: SmallDisk) -> str:
    return f"sqlite:///{disk.path / 'det.db'}"


class Timings(TypedDict, total=False):
    """The `SqlSink` keywords a test of a full disk sets."""

    flush_interval_s: float
    close_timeout_s: float


def open_then_fill(disk: SmallDisk, spool_dir: Path, **settings: Unpack[Timings]) -> SqlSink:
    """A sink (batches of 30 rows, 60 in memory) writing to a database on `disk`, which is
    then filled."""
    sink = SqlSink(
        database_on(disk),
        LABELS,
        batch_size=30,
        buffer_rows=60,
        spool_dir=spool_dir,
        **FAST_RETRY,
        **settings,
    )
    disk.fill()
    return sink


def sql_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("sinks.sql")]


def test_a_full_disk_is_reported_once_not_as_an_outage_and_nothing_waiting_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = RowWriter.write
    refusals: list[str] = []
    full = sqlite_full_error(tmp_path)

    def full_for_a_while(self: RowWriter, batch: RowBatch) -> None:
        if len(refusals) < 6:
            refusals.append(batch.table)
            raise full
        real_write(self, batch)

    url = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(url, LABELS, batch_size=10, spool_dir=tmp_path / "spool", **FAST_RETRY)
    monkeypatch.setattr(RowWriter, "write", full_for_a_while)
    with caplog.at_level(logging.WARNING):
        write_frames(sink, range(0, 20))
        sink.close()

    assert len(refusals) == 6
    assert (sink.disk_full, sink.outages) == (1, 0)
    assert stored(url) == expected(sink.run_id, range(0, 20))
    assert run_status(url, sink.run_id) == "finished"
    (said_full, said_back) = sql_records(caplog)
    assert said_full.startswith(f"sql sink: cannot write to {url}: disk full: ")
    assert f"the file system at {mount_point(tmp_path)}" in said_full
    assert re.search(
        r"; keeping \d+ rows \(memory holds 20000, the spool file the rest\) and retrying$",
        said_full,
    )
    assert said_back.startswith(f"sql sink: room again for {url} after ")
    assert sink.describe() == f"sql {url}: 60 detections, 0 tracks written (disk full 1 time(s))"


def test_sqlite_on_a_full_disk_loses_only_what_it_counts_and_writes_the_rest_once_freed(
    disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    url = database_on(disk)
    # the spool is on the full disk too: what memory cannot hold is lost
    sink = open_then_fill(disk, disk.path / "spool", flush_interval_s=0.02)
    with caplog.at_level(logging.WARNING):
        write_frames(sink, range(0, 300))  # 900 rows; never waits, never raises
        wait_for(lambda: sink.disk_full == 1, "the writer to meet the full disk")
        assert sink.outbox.memory_rows <= 60
        lost = sink.outbox.lost["detections"]
        assert lost > 0

        disk.free()
        assert sink.flush(20)  # what memory kept is written once there is room
        now = stored(url)
        assert len(now) + lost == 900
        assert set(now) <= set(expected(sink.run_id, range(0, 300)))
        write_frames(sink, range(300, 310))
        with pytest.raises(SinkError) as info:
            sink.close()

    assert str(info.value) == (
        f"sql sink: {lost} detections lost: cannot write the spool file "
        f"{sink.outbox.spool_path}: disk full: the file system at {disk.path} "
        "(0.0 MB free of 2.1 MB)"
    )
    assert len(stored(url)) + lost == 930 and len(set(stored(url))) == 930 - lost
    assert run_status(url, sink.run_id) == "failed"
    assert sink.describe() == (
        f"sql {url}: {930 - lost} detections, 0 tracks written (disk full 1 time(s); "
        f"{lost} detections lost)"
    )
    said = sql_records(caplog)
    assert len(said) == 3, said  # the database's disk full, rows lost, room again
    assert (
        f"sql sink: cannot write the spool file {sink.outbox.spool_path}: disk full: the file "
        f"system at {disk.path} (0.0 MB free of 2.1 MB); rows beyond the 60 in memory are lost "
        "(counted)"
    ) in said
    (full,) = [m for m in said if m.startswith(f"sql sink: cannot write to {url}: disk full: ")]
    assert f"the file system at {disk.path}" in full and "(memory holds 60, " in full
    assert sum(m.startswith(f"sql sink: room again for {url}") for m in said) == 1
    assert list((disk.path / "spool").iterdir()) == []


def test_rows_unwritten_when_the_run_ends_on_a_full_disk_are_counted_as_lost(
    disk: SmallDisk,
) -> None:
    url = database_on(disk)
    spool_dir = disk.path / "spool"
    sink = open_then_fill(disk, spool_dir, close_timeout_s=0.2)
    write_frames(sink, range(0, 100))
    sink.end(StreamEnd("cam", 100, (TrackEvent("ended", summary("cam", 1, 0, 99)),)))
    with pytest.raises(SinkError) as info:
        sink.close()

    disk.free()  # reading a SQLite database in WAL mode needs a little room
    lost_detections = 300 - len(stored(url))
    lost_tracks = 1 - count(url, Track)
    assert lost_detections > 0 and lost_tracks == 1
    message = str(info.value)
    assert message.startswith(
        f"sql sink: {lost_detections} detections, 1 tracks and the run's end lost: "
    )
    assert "disk full" in message and "\n" not in message
    assert f"{lost_detections} detections, 1 tracks and the run's end lost" in sink.describe()
    assert "ridden out" not in sink.describe()
    # nothing was kept, and no line cut short by the full disk is left for a later run
    assert [p for p in spool_dir.iterdir() if p.stat().st_size] == []
    assert run_status(url, sink.run_id) == "running"


def test_opening_a_database_on_a_full_disk_says_the_disk_is_full(disk: SmallDisk) -> None:
    disk.fill()
    url = database_on(disk)
    with pytest.raises(SinkError) as info:
        SqlSink(url, LABELS, spool_dir=disk.path / "spool")
    assert str(info.value).startswith(f"sql sink: cannot open database {url}: ")
    assert f"disk full: the file system at {disk.path}" in str(info.value)


def test_rows_a_full_database_disk_leaves_are_kept_in_a_spool_elsewhere_for_the_next_run(
    disk: SmallDisk, tmp_path: Path
) -> None:
    url = database_on(disk)
    spool_dir = tmp_path / "spool"  # on a disk with room
    sink = open_then_fill(disk, spool_dir, close_timeout_s=0.2)
    write_frames(sink, range(0, 100))
    with pytest.raises(SinkError) as info:
        sink.close()

    disk.free()
    left = 300 - len(stored(url))
    assert sum(sink.outbox.lost.values()) == 0
    assert str(info.value) == (
        f"sql sink: the disk holding {url} still full after 0.2 s; {left} rows kept in "
        f"{sink.kept_in} are written by the next run to this database"
    )
    assert sink.describe().endswith(
        f"(disk full 1 time(s); {left} rows not yet written kept in {sink.kept_in})"
    )
    SqlSink(url, LABELS, spool_dir=spool_dir).close()
    assert stored(url) == expected(sink.run_id, range(0, 100))
    assert run_status(url, sink.run_id) == "finished"
    assert list(spool_dir.iterdir()) == []


CLOSE_TIMEOUT_S = 30.0  # the default: what a disk that stays full must not cost


def close_on_full_disk(sink: SqlSink) -> tuple[SinkError, float]:
    """Close `sink`, whose database disk is full; the error raised and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(SinkError) as info:
        sink.close()
    return info.value, time.monotonic() - started


def test_closing_while_the_disk_stays_full_gives_up_well_before_close_timeout_and_counts_the_loss(
    disk: SmallDisk,
) -> None:
    url = database_on(disk)
    sink = open_then_fill(disk, disk.path / "spool", close_timeout_s=CLOSE_TIMEOUT_S)
    write_frames(sink, range(0, 100))  # 300 detections
    sink.end(StreamEnd("cam", 100, (TrackEvent("ended", summary("cam", 1, 0, 99)),)))
    error, took = close_on_full_disk(sink)

    disk.free()
    assert took < CLOSE_TIMEOUT_S / 3
    lost = sink.outbox.lost
    assert lost["detections"] == 300 - len(stored(url)) > 0
    assert lost["tracks"] == 1 - count(url, Track) == 1
    assert sink.rows_written["detections"] == len(stored(url))
    assert str(error).startswith(
        f"sql sink: {lost['detections']} detections, 1 tracks and the run's end lost: "
        f"cannot write the spool file {sink.outbox.spool_path}: disk full: "
    )
    assert sink.kept_in is None


def test_closing_while_the_database_disk_stays_full_keeps_the_rest_in_a_spool_elsewhere_at_once(
    disk: SmallDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sinks.sql.writer, "FULL_DISK_CLOSE_S", 0.3)  # the test's time
    url = database_on(disk)
    sink = open_then_fill(disk, tmp_path / "spool", close_timeout_s=CLOSE_TIMEOUT_S)
    write_frames(sink, range(0, 100))
    error, took = close_on_full_disk(sink)

    disk.free()
    assert took < CLOSE_TIMEOUT_S / 3
    written = len(stored(url))
    SqlSink(url, LABELS, spool_dir=tmp_path / "spool").close()  # the next run writes them
    assert stored(url) == expected(sink.run_id, range(0, 100))
    assert sum(sink.outbox.lost.values()) == 0 and written < 300
    assert str(error) == (
        f"sql sink: the disk holding {url} still full after 0.3 s; {300 - written} "
        f"rows kept in {sink.kept_in} are written by the next run to this database"
    )


def tables_on_a_small_disk(server: PrivatePostgres, location: Path) -> None:
    """Make `location` (empty, on the small disk) the tablespace of every table created in
    the server's database from now on."""
    user = pwd.getpwnam("postgres")
    location.mkdir()
    os.chown(location, user.pw_uid, user.pw_gid)
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE TABLESPACE small LOCATION '{location}'"))
            conn.execute(text("ALTER DATABASE postgres SET default_tablespace = small"))
    finally:
        admin.dispose()


def test_postgresql_out_of_disk_is_a_full_disk_not_an_outage_and_its_rows_are_written_once_freed(
    private_postgres: PrivatePostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = private_postgres.url
    with small_disk(private_postgres.folder / "disk", "2m", owner="postgres") as disk:
        tables_on_a_small_disk(private_postgres, disk.path / "tablespace")
        sink = SqlSink(
            url, LABELS, batch_size=30, flush_interval_s=0.02, spool_dir=tmp_path, **FAST_RETRY
        )
        disk.fill()
        with caplog.at_level(logging.WARNING):
            write_frames(sink, range(0, 300))  # 900 rows: pages the tablespace has no room for
            wait_for(lambda: sink.disk_full == 1, "the writer to meet the full disk")
            assert sink.outbox.pending_rows > 0
            disk.free()
            sink.close()
        try:
            assert stored(url) == expected(sink.run_id, range(0, 300))
            assert run_status(url, sink.run_id) == "finished"
            engine = create_engine(url)
            with engine.connect() as conn:
                where = conn.scalar(
                    text("SELECT tablespace FROM pg_tables WHERE tablename = 'detections'")
                )
            engine.dispose()
        finally:
            private_postgres.stop()  # before its tablespace is unmounted

    assert where == "small"
    assert (sink.disk_full, sink.outages) == (1, 0)
    assert sink.describe() == f"sql {url}: 900 detections, 0 tracks written (disk full 1 time(s))"
    (full, back) = sql_records(caplog)
    assert full.startswith(f"sql sink: cannot write to {url}: the database server's disk is full (")
    assert "No space left on device" in full
    assert back.startswith(f"sql sink: room again for {url} after ")
