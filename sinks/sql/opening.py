"""What stops the SQL sink opening its database, said in one line each: checked at once
before any work (`check_database`), and raised as the sink opens (`cannot_open`,
`cannot_write`)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from pipeline.folders import folder_problem
from sinks.base import SinkError
from sinks.sql.database import DatabaseUrl, open_failure, sqlite_write_refused
from sinks.sql.schema import foreign_database


def check_database(url: str) -> None:
    """Raises the `SinkError` `SqlSink` would raise opening `url` where that is known at
    once: a SQLite file in a folder that cannot be made, a file of another program's, or
    one it may not write (the file or its folder read-only); nothing is changed. A database
    server is not asked (`validate` asks it): it may answer by the time the sink opens."""
    db = DatabaseUrl(url)
    if db.sqlite_file is None:
        return
    if (problem := folder_problem(db.sqlite_file.parent)) is not None:
        raise SinkError(f"sql sink: cannot open database {db}: {problem}")
    try:
        foreign = foreign_database(db)  # read-only: the file stays as it is
    except (SQLAlchemyError, ImportError, OSError, ValueError) as exc:
        raise cannot_open(db, exc) from exc
    if foreign is not None:
        raise cannot_write(db, foreign)
    if (refused := sqlite_write_refused(db)) is not None:
        raise cannot_open(db, refused)


def cannot_open(db: DatabaseUrl, exc: BaseException) -> SinkError:
    """The sink's one line for a database it cannot open, and why (`open_failure`)."""
    return SinkError(f"sql sink: cannot open database {db}: {open_failure(exc, db)}")


def cannot_write(db: DatabaseUrl, foreign: str) -> SinkError:
    """The sink's one line for another program's database (`foreign_database`)."""
    return SinkError(f"sql sink: cannot write to {db}: {foreign}")
