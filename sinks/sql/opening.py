"""Opening the SQL sink's database: the engine, the tables made where missing, the run's own
row; and the one-line errors when that cannot be done (another program's database, a file
or folder it may not write, a server that does not answer); and the run's stop ending that
opening (`open_run`, and `open_unless_stopped` for any opening of the database)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from pipeline.folders import folder_problem
from pipeline.stoppable import Abandoned, unless_stopped
from sinks.base import SinkError, SinkStopped
from sinks.sql.database import (
    DatabaseUrl,
    make_engine,
    not_a_database,
    open_failure,
    reason,
    sqlite_write_refused,
)
from sinks.sql.models import Run
from sinks.sql.schema import create_schema, foreign_database

log = logging.getLogger(__name__)

OPENING_THREAD = "sql-sink-opening"
"""The name of the thread that opens the database for a run that can be stopped."""

_Opened = TypeVar("_Opened")


def open_run(
    db: DatabaseUrl, busy_timeout_ms: int, run_config: str, stop: threading.Event | None
) -> tuple[Engine, int]:
    """`open_database` and `start_run`: the engine and the run's id. A set `stop` (the
    run's: Ctrl-C) ends the wait at once with SinkStopped (`open_unless_stopped`); what the
    abandoned opening opens is closed again and its run row deleted."""
    if stop is None:
        engine = open_database(db, busy_timeout_ms)
        return engine, start_run(engine, db, run_config)
    stopped = f"sql sink: the run stopped while opening the database {db}"

    def open_and_start() -> tuple[Engine, int]:
        engine = open_database(db, busy_timeout_ms)
        if stop.is_set():  # no run row for a run that stopped meanwhile
            engine.dispose()
            raise SinkStopped(stopped)
        return engine, start_run(engine, db, run_config)

    return open_unless_stopped(open_and_start, stop, stopped, lambda run: _forget_run(*run, db))


def open_unless_stopped(
    opening: Callable[[], _Opened],
    stop: threading.Event,
    stopped: str,
    discard: Callable[[_Opened], None] | None = None,
) -> _Opened:
    """What `opening` returns; SinkStopped (`stopped` its line) at once when `stop` is set
    before or while it runs. A connect in progress and SQLite's busy wait cannot be cut
    short, so `opening` runs in a daemon thread (`pipeline.stoppable.unless_stopped`); what
    it returns after the stop goes to `discard`, and what it returned by the time the stop
    is seen is returned all the same (the run goes on to its stop)."""
    if stop.is_set():  # during an earlier opening (an mqtt broker that did not answer)
        raise SinkStopped(stopped)
    try:
        return unless_stopped(opening, stop, OPENING_THREAD, discard)
    except Abandoned:
        raise SinkStopped(stopped) from None


def _forget_run(engine: Engine, run_id: int, db: DatabaseUrl) -> None:
    """Deletes the row of a run stopped while its database opened, and closes `engine`."""
    try:
        with Session(engine) as session, session.begin():
            session.execute(delete(Run).where(Run.id == run_id))
    except (SQLAlchemyError, ImportError) as exc:
        log.warning(
            "sql sink: the row of run %d, stopped while its database opened, stays 'running': %s",
            run_id,
            reason(exc, db),
        )
    finally:
        engine.dispose()


def open_database(db: DatabaseUrl, busy_timeout_ms: int) -> Engine:
    """An engine for `db`, its tables made where missing; SinkError, in one line, when the
    database cannot be opened or is another program's."""
    try:
        if db.sqlite_file is not None:
            db.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        foreign = foreign_database(db)  # before a table is made or a column added
        engine = make_engine(db, sqlite_busy_timeout_ms=busy_timeout_ms)
    except (SQLAlchemyError, ImportError, OSError, ValueError) as exc:
        raise cannot_open(db, exc) from exc
    if foreign is not None:
        engine.dispose()
        raise cannot_write(db, foreign)
    try:
        create_schema(engine)
    except (SQLAlchemyError, ImportError) as exc:
        engine.dispose()
        raise cannot_open(db, exc) from exc
    return engine


def start_run(engine: Engine, db: DatabaseUrl, run_config: str) -> int:
    """The id of the run's new row ("running"); SinkError (the engine disposed of) when it
    cannot be added."""
    try:
        with Session(engine) as session, session.begin():
            run = Run(
                started_at=datetime.now(timezone.utc),
                status="running",
                config=run_config,
                hostname=socket.gethostname(),
            )
            session.add(run)
            session.flush()
            return run.id
    except (SQLAlchemyError, ImportError) as exc:
        engine.dispose()
        raise cannot_open(db, exc) from exc


def check_database(url: str) -> None:
    """Raises the `SinkError` `SqlSink` would raise opening `url` where that is known at
    once: a new SQLite file it could not make (its folder read-only, or not makeable), a
    path that holds a folder or a file that is no database, an existing one of another
    program's, or one it may not write (SQLite's own words, the
    file or its folder read-only); nothing is changed. A database
    server is not asked (`validate` asks it): it may answer by the time the sink opens."""
    db = DatabaseUrl(url)
    if db.sqlite_file is None:
        return
    if not db.sqlite_file.exists() and (problem := folder_problem(db.sqlite_file.parent)):
        raise SinkError(f"sql sink: cannot open database {db}: {problem}")  # cannot make it
    if _holds_something(db.sqlite_file) and (other := not_a_database(db)) is not None:
        raise SinkError(f"sql sink: cannot open database {db}: {other}")
    try:
        foreign = foreign_database(db)  # read-only: the file stays as it is
    except (SQLAlchemyError, ImportError, OSError, ValueError) as exc:
        raise cannot_open(db, exc) from exc
    if foreign is not None:
        raise cannot_write(db, foreign)
    if (refused := sqlite_write_refused(db)) is not None:
        raise cannot_open(db, refused)


def _holds_something(path: Path) -> bool:
    """Whether `path` is more than a file SQLite would make a database of (missing, empty)."""
    try:
        return path.is_dir() or (path.exists() and path.stat().st_size > 0)
    except OSError:
        return False  # opening it says why


def cannot_open(db: DatabaseUrl, exc: BaseException) -> SinkError:
    """The sink's one line for a database it cannot open, and why (`open_failure`)."""
    return SinkError(f"sql sink: cannot open database {db}: {open_failure(exc, db)}")


def cannot_write(db: DatabaseUrl, foreign: str) -> SinkError:
    """The sink's one line for another program's database (`foreign_database`)."""
    return SinkError(f"sql sink: cannot write to {db}: {foreign}")
