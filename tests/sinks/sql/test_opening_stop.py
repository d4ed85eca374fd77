"""The run's stop and the sql sink's opening of its database."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from sinks.base import SinkStopped
from sinks.sql.database import SQLITE_BUSY_TIMEOUT_MS, DatabaseUrl, make_engine
from sinks.sql.opening import OPENING_THREAD, _forget_run, open_run
from tests.sinks.sql.silent_postgres import SilentPostgres


def test_a_stop_set_before_the_database_opens_raises_sink_stopped_without_connecting() -> None:
    silent = SilentPostgres()
    stop = threading.Event()
    stop.set()  # during an earlier sink's opening (an mqtt broker that did not answer)
    before = _opening_threads()  # other tests' may still be ending
    try:
        with pytest.raises(SinkStopped, match="sql sink: the run stopped while opening"):
            open_run(DatabaseUrl(silent.url), SQLITE_BUSY_TIMEOUT_MS, "", stop)
        assert _opening_threads() <= before
        assert not silent.connected.is_set()
    finally:
        silent.close()


def _opening_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == OPENING_THREAD}


def test_a_stopped_run_s_row_that_cannot_be_deleted_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = DatabaseUrl(f"sqlite:///{tmp_path / 'blank.db'}")
    engine = make_engine(db)  # no tables: deleting the row fails
    _forget_run(engine, 5, db)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("sql sink: the row of run 5, stopped while its database opened")
    assert "stays 'running'" in warning and "\n" not in warning
