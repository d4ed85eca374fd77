"""The run's stop and the sql sink's opening of its database."""

from __future__ import annotations

import threading

import pytest

from sinks.base import SinkStopped
from sinks.sql.database import SQLITE_BUSY_TIMEOUT_MS, DatabaseUrl
from sinks.sql.opening import OPENING_THREAD, open_run
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
