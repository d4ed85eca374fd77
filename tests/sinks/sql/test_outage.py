"""The SQL sink loses nothing when its database goes away, and writes nothing twice.

Outages are made for real: a TCP proxy in front of PostgreSQL whose connections are cut and
whose port stops answering; a SQLite database locked by another connection; and, once,
a PostgreSQL server of the test's own stopped and started again (the shared one never is).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from pipeline.types import StreamEnd, TrackEvent
from sinks.base import SinkError
from sinks.sql.database import DatabaseUrl
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch, SpoolFile, spool_prefix
from sinks.sql.writer import RowWriter
from tests.clock import Clock
from tests.sinks.scrape import scrape_sink
from tests.sinks.sql.builders import (
    FAST_RETRY,
    LABELS,
    T0,
    expected,
    frame_result,
    run_status,
    spooled_detection,
    stored,
    summary,
    wait_for,
    write_frames,
    write_locked,
)
from tests.sinks.sql.conftest import PG_URL, pg_schema, skip_without_pg
from tests.sinks.sql.private_postgres import PrivatePostgres


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; `cut()` kills every connection and stops
    accepting (connections are refused), `restore()` accepts again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        listener, self._listener = self._listener, None
        with self._lock:
            doomed, self._sockets = {*self._sockets, listener}, set()
        for sock in doomed:
            # shutdown() wakes a thread blocked in accept()/recv() on it; close() alone would not
            with contextlib.suppress(OSError):  # already closed by its other end
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        if self._listener is not None:
            self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):  # no Nagle delay on each small query and reply
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the other side, or cut(), closed the connection
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):  # pass the end on to the other side
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def pg_proxy() -> Iterator[tuple[TcpProxy, str, str]]:
    """(proxy, URL through the proxy, direct URL) of a fresh PostgreSQL schema."""
    skip_without_pg()
    pg = make_url(PG_URL)
    proxy = TcpProxy((pg.host or "127.0.0.1", pg.port or 5432))
    try:
        with pg_schema() as direct:
            through = make_url(direct).set(host="127.0.0.1", port=proxy.port)
            yield proxy, through.render_as_string(hide_password=False), direct
    finally:
        proxy.close()


def test_postgresql_connection_cut_mid_run_loses_nothing_and_duplicates_nothing(
    pg_proxy: tuple[TcpProxy, str, str], tmp_path: Path
) -> None:
    proxy, url, direct = pg_proxy
    sink = SqlSink(
        url, LABELS, batch_size=10, flush_interval_s=0.02, spool_dir=tmp_path, **FAST_RETRY
    )
    write_frames(sink, range(0, 30))
    assert sink.flush(20)

    proxy.cut()
    write_frames(sink, range(30, 90))  # never waits for the database
    wait_for(lambda: sink.outages == 1, "the writer to notice the outage")
    assert sink.outbox.pending_rows > 0
    assert stored(direct) == expected(sink.run_id, range(0, 30))

    proxy.restore()
    write_frames(sink, range(90, 100))
    ended = TrackEvent("ended", summary("cam", 2, 0, 99))
    sink.write(frame_result("cam", 100, T0 + 4, [], events=(ended,)))
    sink.close()

    assert stored(direct) == expected(sink.run_id, range(0, 100))
    assert run_status(direct, sink.run_id) == "finished"
    engine = create_engine(direct)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM tracks")) == 1
    engine.dispose()
    assert sink.kept_in is None and list(tmp_path.iterdir()) == []


def test_a_close_on_a_database_that_refuses_connections_says_unreachable_and_keeps_the_rows(
    pg_proxy: tuple[TcpProxy, str, str], tmp_path: Path
) -> None:
    proxy, url, direct = pg_proxy
    sink = SqlSink(url, LABELS, batch_size=3, close_timeout_s=0.3, spool_dir=tmp_path, **FAST_RETRY)
    write_frames(sink, range(0, 2))
    assert sink.flush(20)
    proxy.cut()  # connections refused from now on
    write_frames(sink, range(2, 6))
    with pytest.raises(SinkError) as closed:
        sink.close()
    assert sink.kept_in is not None
    assert str(closed.value) == (
        f"sql sink: database {DatabaseUrl(url)} still unreachable after 0.3 s; 12 rows kept "
        f"in {sink.kept_in} are written by the next run to this database"
    )
    metrics = scrape_sink(sink)
    assert (metrics["ssd_sink_sql_rows_written_total"], metrics["ssd_sink_sql_rows_kept"]) == (
        6,
        12,
    )
    assert stored(direct) == expected(sink.run_id, range(0, 2))


def test_outage_longer_than_the_memory_buffer_spills_to_the_spool_file_and_drains_it(
    pg_proxy: tuple[TcpProxy, str, str], tmp_path: Path
) -> None:
    proxy, url, direct = pg_proxy
    sink = SqlSink(
        url,
        LABELS,
        batch_size=6,
        buffer_rows=12,
        flush_interval_s=0.02,
        spool_dir=tmp_path,
        **FAST_RETRY,
    )
    proxy.cut()
    memory_high = 0
    for i in range(100):
        write_frames(sink, range(i, i + 1))
        memory_high = max(memory_high, sink.outbox.memory_rows)
    wait_for(lambda: sink.outages == 1, "the writer to notice the outage")
    assert memory_high <= 12
    assert sink.outbox.spooled_rows >= 300 - 12 - 6
    (spool,) = tmp_path.iterdir()
    assert spool.stat().st_size > 0
    during = scrape_sink(sink)
    assert during["ssd_sink_sql_rows_spooled"] == sink.outbox.spooled_rows
    assert during["ssd_sink_sql_rows_buffered"] == sink.outbox.memory_rows
    assert during["ssd_sink_sql_outages_total"] == 1

    proxy.restore()
    assert sink.flush(30)
    assert sink.outbox.spooled_rows == 0
    sink.close()
    assert stored(direct) == expected(sink.run_id, range(0, 100))
    assert list(tmp_path.iterdir()) == []  # the spool is deleted once drained
    after = scrape_sink(sink)
    assert "1 outage(s) ridden out" in sink.describe()
    assert after["ssd_sink_sql_rows_written_total"] == sum(sink.rows_written.values()) == 300
    assert after["ssd_sink_sql_rows_spooled"] == after["ssd_sink_sql_rows_lost_total"] == 0


def test_a_retry_after_a_commit_whose_answer_was_lost_adds_no_duplicates(
    sql_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = RowWriter.write
    lost: list[str] = []

    def commit_then_lose_the_answer(self: RowWriter, batch: RowBatch) -> None:
        real_write(self, batch)
        if batch.table != "run_end" and len(lost) < 3:
            lost.append(batch.table)
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset"))

    monkeypatch.setattr(RowWriter, "write", commit_then_lose_the_answer)
    sink = SqlSink(sql_db_url, LABELS, batch_size=9, **FAST_RETRY)
    write_frames(sink, range(0, 12))
    sink.end(StreamEnd("cam", 12, (TrackEvent("ended", summary("cam", 2, 0, 11)),)))
    sink.close()

    assert lost == ["detections", "detections", "detections"]
    assert stored(sql_db_url) == expected(sink.run_id, range(0, 12))
    assert run_status(sql_db_url, sink.run_id) == "finished"


def test_locked_sqlite_database_is_waited_for_without_blocking_the_pipeline(
    tmp_path: Path,
) -> None:
    db = tmp_path / "locked.db"
    url = f"sqlite:///{db}"
    sink = SqlSink(
        url,
        LABELS,
        batch_size=5,
        flush_interval_s=0.02,
        sqlite_busy_timeout_ms=50,
        spool_dir=tmp_path / "spool",
        **FAST_RETRY,
    )
    with write_locked(db):
        write_frames(sink, range(0, 40))
        wait_for(lambda: sink.outages == 1, "the writer to hit the lock")
        assert sink.outbox.pending_rows > 0
    sink.close()
    assert stored(url) == expected(sink.run_id, range(0, 40))
    assert run_status(url, sink.run_id) == "finished"


def test_rows_of_frames_that_stopped_during_an_outage_are_written_once_it_ends_unprompted(
    tmp_path: Path,
) -> None:
    # the camera's frames stop while SQLite is locked: only ticks reach the sink, and its
    # rows still go to the database, once, when the lock is gone
    db = tmp_path / "locked.db"
    url = f"sqlite:///{db}"
    clock = Clock()
    sink = SqlSink(
        url,
        LABELS,
        batch_size=500,
        flush_interval_s=1.0,
        sqlite_busy_timeout_ms=50,
        spool_dir=tmp_path / "spool",
        clock=clock,
        **FAST_RETRY,
    )
    with write_locked(db):
        write_frames(sink, range(0, 10))
        clock.advance(1.0)
        sink.tick()
        wait_for(lambda: sink.outages == 1, "the writer to hit the lock")
    wait_for(lambda: stored(url) == expected(sink.run_id, range(0, 10)), "the rows, unprompted")
    sink.close()
    assert stored(url) == expected(sink.run_id, range(0, 10))
    assert "1 outage(s) ridden out" in sink.describe()


def test_rows_unwritten_at_the_end_are_kept_and_written_by_the_next_run(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    url = f"sqlite:///{db}"
    spool_dir = tmp_path / "spool"
    first = SqlSink(
        url,
        LABELS,
        batch_size=5,
        sqlite_busy_timeout_ms=50,
        close_timeout_s=0.3,
        spool_dir=spool_dir,
        **FAST_RETRY,
    )
    with write_locked(db):
        write_frames(first, range(0, 20))
        with pytest.raises(SinkError, match=r"still unreachable.*60 rows kept in .*next run"):
            first.close()
    assert first.kept_in is not None and first.kept_in.exists()
    assert stored(url) == []
    metrics = scrape_sink(first)  # what the summary says: 60 rows kept, none lost
    assert "60 rows not yet written kept in" in first.describe()
    assert metrics["ssd_sink_sql_rows_kept"] == 60
    assert (
        metrics["ssd_sink_sql_rows_lost_total"] == metrics["ssd_sink_sql_rows_written_total"] == 0
    )

    second = SqlSink(url, LABELS, spool_dir=spool_dir)
    assert list(spool_dir.iterdir()) == []
    write_frames(second, range(0, 5), camera="cam2")
    second.close()
    assert stored(url) == sorted(
        expected(first.run_id, range(0, 20)) + expected(second.run_id, range(0, 5), "cam2")
    )
    # "written" is the run's own rows; those the first run left are counted apart
    metrics = scrape_sink(second)
    assert metrics["ssd_sink_sql_rows_written_total"] == 15
    assert metrics["ssd_sink_sql_rows_replayed_total"] == 60
    assert second.describe() == (
        f"sql {url}: 15 detections, 0 tracks written (left by an earlier run: 60 written)"
    )
    # the first run's end was spooled too: its row says how it ended
    assert run_status(url, first.run_id) == "finished"


def test_rows_spooled_by_a_run_marked_lost_are_not_written_by_the_next_run(
    tmp_path: Path,
) -> None:
    # A cluster shard that died with rows in its spool: the coordinator marked its run
    # lost and the runs that took its cameras over stored those frames anew.
    db = tmp_path / "later.db"
    url = f"sqlite:///{db}"
    spool_dir = tmp_path / "spool"

    def spooling() -> SqlSink:
        return SqlSink(
            url,
            LABELS,
            batch_size=5,
            sqlite_busy_timeout_ms=50,
            close_timeout_s=0.3,
            spool_dir=spool_dir,
            **FAST_RETRY,
        )

    lost, kept = spooling(), spooling()
    with write_locked(db):
        for sink, camera in ((lost, "gate"), (kept, "hall")):
            write_frames(sink, range(0, 4), camera=camera)
            with pytest.raises(SinkError, match="kept in"):
                sink.close()
    assert len(list(spool_dir.iterdir())) == 2 and stored(url) == []
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'lost' WHERE id = ?", (lost.run_id,))

    SqlSink(url, LABELS, spool_dir=spool_dir).close()
    assert list(spool_dir.iterdir()) == []  # both handled: one written, one set aside
    assert stored(url) == expected(kept.run_id, range(0, 4), "hall")
    assert run_status(url, kept.run_id) == "finished"
    assert run_status(url, lost.run_id) == "lost"  # its spooled end changes nothing either


def test_spool_of_a_running_pipeline_is_not_taken_by_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    spool_dir = tmp_path / "spool"
    first = SqlSink(url, LABELS, spool_dir=spool_dir)
    first.close()
    row = spooled_detection(first.run_id, 0)
    # another pipeline, still running, holds (locks) its spool file for this database
    held = SpoolFile(spool_dir / f"{spool_prefix(DatabaseUrl(url))}run99-1.jsonl")
    held.append(RowBatch("detections", [row]))

    SqlSink(url, LABELS, spool_dir=spool_dir).close()
    assert held.path.exists() and stored(url) == []

    held.close(delete=False)  # that pipeline died: its spool is free to take
    SqlSink(url, LABELS, spool_dir=spool_dir).close()
    assert not held.path.exists()
    assert stored(url) == [(first.run_id, "cam", 0, 0, 1.0, None)]


def test_postgresql_server_stopped_and_started_mid_run_loses_nothing(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    url = private_postgres.url
    sink = SqlSink(
        url, LABELS, batch_size=10, flush_interval_s=0.02, spool_dir=tmp_path, **FAST_RETRY
    )
    write_frames(sink, range(0, 20))
    assert sink.flush(20)
    private_postgres.stop()
    try:
        write_frames(sink, range(20, 60))
        wait_for(lambda: sink.outages == 1, "the writer to notice the stopped server")
    finally:
        private_postgres.start()
    write_frames(sink, range(60, 70))
    sink.close()
    assert stored(url) == expected(sink.run_id, range(0, 70))
    assert run_status(url, sink.run_id) == "finished"
