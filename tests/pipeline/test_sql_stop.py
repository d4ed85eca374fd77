"""The run's stop while the sql sink opens its database at the start."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.cli import main
from pipeline.cli.run import run_exit_status
from pipeline.config import parse_config
from pipeline.runner import Pipeline
from sinks.sql.database import DatabaseUrl, make_engine
from sinks.sql.opening import OPENING_THREAD
from sinks.sql.schema import create_schema
from tests.conftest import VideoFactory
from tests.pipeline.stopped_runs import stopped_run
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.sql.silent_postgres import SilentPostgres

WAIT_S = 4.0
"""Under the 5 s PostgreSQL connect timeout and the 10 s SQLite busy timeout."""


@pytest.fixture
def silent_server() -> Iterator[tuple[str, threading.Event]]:
    """A PostgreSQL URL whose server takes the connection and never answers, and an event
    set once it took one."""
    server = SilentPostgres()
    try:
        yield server.url, server.connected
    finally:
        server.close()  # the abandoned connect fails at once


def _opening_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == OPENING_THREAD}


def test_a_stop_while_a_silent_postgresql_server_is_connected_to_ends_the_run_stopped(
    synthetic_video: VideoFactory,
    silent_server: tuple[str, threading.Event],
    tmp_path: Path,
) -> None:
    url, connected = silent_server
    clip = synthetic_video("lobby.mp4", frames=4)
    spool = tmp_path / "spool"
    config = parse_config(
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        f"sinks:\n  - {{type: sql, url: '{url}', spool_dir: {spool}}}\n"
    )
    summary = stopped_run(
        Pipeline(config, detector=EagerDetector()), lambda: connected.wait(WAIT_S), WAIT_S
    )
    assert summary.interrupted and summary.ok
    assert run_exit_status(summary, signal.SIGTERM) == 143
    assert summary.cameras["lobby"].stopped_first
    assert not any(spool.rglob("*.jsonl"))


def test_a_stop_while_the_sqlite_database_is_locked_ends_the_run_stopped_with_no_run_row(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    db = tmp_path / "det.db"
    engine = make_engine(DatabaseUrl(f"sqlite:///{db}"))
    create_schema(engine)  # an earlier run's database
    engine.dispose()
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    clip = synthetic_video("lobby.mp4", frames=4)
    config = parse_config(
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        f"sinks:\n  - {{type: sql, url: 'sqlite:///{db}', spool_dir: {tmp_path / 'spool'}}}\n"
    )

    before = _opening_threads()  # other tests' may still be ending
    started: set[threading.Thread] = set()

    def opening() -> bool:
        for _ in range(int(WAIT_S / 0.01)):
            if ours := _opening_threads() - before:
                started.update(ours)
                return True
            threading.Event().wait(0.01)
        return False

    try:
        summary = stopped_run(Pipeline(config, detector=EagerDetector()), opening, WAIT_S)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    for thread in started:  # the lock let go of: the abandoned opening ends, recording nothing
        thread.join(WAIT_S)
    assert started and not any(t.is_alive() for t in started)
    assert summary.interrupted and summary.ok
    assert run_exit_status(summary, signal.SIGINT) == 130
    assert sqlite3.connect(db).execute("SELECT * FROM runs").fetchall() == []


def test_sigterm_while_the_sql_sink_connects_exits_143_without_an_error_line(
    synthetic_video: VideoFactory,
    silent_server: tuple[str, threading.Event],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # It used to wait out the connect timeout, then print "error: sql sink: ..." and exit 1.
    url, connected = silent_server
    monkeypatch.setattr(runner, "build_run_detector", lambda *_: EagerDetector())
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: lobby\n    source: {synthetic_video('lobby.mp4', frames=4)}\n"
        f"sinks:\n  - {{type: sql, url: '{url}', spool_dir: {tmp_path / 'spool'}}}\n"
    )

    def terminate_once_connected() -> None:
        if connected.wait(WAIT_S):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_connected, daemon=True).start()
    assert main(["run", str(config), "--no-progress"]) == 128 + signal.SIGTERM
    out, err = capfd.readouterr()
    assert "SIGTERM: stopping; ending the outputs' opening; no frame is read" in err
    assert "error" not in err and "Traceback" not in err
    assert "not started: stopped before it opened" in out
