"""Reading a stored database, and what every query of it shares: opening it
(`existing_database`, `QueryError`), the filters (`DetectionQuery`), the one label rule in
SQL (`label_is`), pages of rows and rows as JSON (`Page`, `JsonRow`, `iso_z`).

Used by the queries over detections, runs and tracks (`sinks.sql.query`), over zones and
lines (`sinks.sql.scene_query`), by retention and by dataset export.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Engine, inspect
from sqlalchemy.exc import NoSuchTableError, OperationalError, SQLAlchemyError

from pipeline.types import LabelMap
from sinks.base import SinkError
from sinks.sql.bounds import ID_MAX, LIMIT_MAX
from sinks.sql.database import (
    DatabaseUrl,
    LabelKey,
    make_engine,
    not_a_database,
    open_failure,
    reason,
)
from sinks.sql.models import Detection
from sinks.sql.schema import foreign_tables


def label_is(column: Any, label: str) -> ColumnElement[bool]:
    """`column` holds class `label` by the one label rule (`LabelMap.key`: case and
    surrounding spaces aside); a server that lowers instead of folding case (`LabelKey`)
    also matches `label` lowered, so that a name such as "Straße" is found as spelled."""
    return label_in(column, (label,))


def label_in(column: Any, labels: Any) -> ColumnElement[bool]:
    """`column` holds one of `labels` by the one label rule (see `label_is`)."""
    keys = {LabelMap.key(x) for x in labels} | {x.strip().lower() for x in labels}
    return LabelKey(column).in_(sorted(keys))


T = TypeVar("T")


class QueryError(SinkError):
    """The database cannot be read (missing file, no tables yet, unreachable server)."""


@dataclass(frozen=True)
class DetectionQuery:
    """Filters of the stored rows a query reads (detections, tracks, zone visits and line
    crossings: each query says which it takes); None means "any".

    `since` is inclusive and `until` exclusive; naive datetimes are taken as UTC.
    `label` is a class name, matched by the one label rule (`label_is`), `track` a track id,
    `run` a `runs.id` (both from 1 to `ID_MAX`), `limit` the number of rows to return
    (earliest first; 1 to `LIMIT_MAX`), `min_score` from 0 to 1. Raises ValueError naming
    what is out of bounds.
    """

    camera: str | None = None
    label: str | None = None
    track: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    run: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        for name, most in (("track", ID_MAX), ("run", ID_MAX), ("limit", LIMIT_MAX)):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= most:
                raise ValueError(f"query {name} must be from 1 to {most}, got {value}")
        if self.min_score is not None and not 0 <= self.min_score <= 1:  # NaN too
            raise ValueError(f"query min_score must be from 0 to 1, got {self.min_score}")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Some of the rows that match a query, and how many match in all."""

    rows: list[T]
    total: int

    @property
    def more(self) -> int:
        """Matching rows not in `rows`."""
        return self.total - len(self.rows)


@dataclass(frozen=True)
class Streamed(Generic[T]):
    """The rows that match a query, read from the database as they are iterated (a bounded
    number at a time: memory stays bounded however many match), and how many match in all.
    The database stays open until `rows` is exhausted or closed."""

    rows: Iterator[T]
    total: int


class JsonRow:
    """A dataclass row whose `as_dict` is JSON-ready: its times ISO-8601 UTC ending in 'Z'."""

    def as_dict(self) -> dict[str, Any]:
        return {
            k: iso_z(v) if isinstance(v, datetime) else v
            for k, v in asdict(self).items()  # type: ignore[call-overload]
        }


def iso_z(moment: datetime) -> str:
    """An aware datetime as ISO-8601 UTC with microseconds and a 'Z'."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


# ---------------------------------------------------------------------------- opening


@contextmanager
def existing_database(db: DatabaseUrl) -> Iterator[Engine]:
    """An engine for a database the pipeline wrote to; QueryError otherwise. Disposed after.

    A SQLite file is first opened read-only, so that one of someone else's is left exactly
    as it was (its journal mode too); only once its detections table shows it is ours is it
    opened as the pipeline opens it (WAL mode, whose side files a read-only connection
    would leave behind).
    """
    problem = not_a_database(db)
    if problem is not None:
        raise QueryError(f"cannot query {db}: {problem}")
    engine = _engine(db, read_only=True)
    try:
        inspector = inspect(engine)
        if not inspector.has_table(Detection.__tablename__):
            raise QueryError(
                f"database {db} has no detections table yet "
                "(run the pipeline with an sql output writing to it first)"
            )
        if (foreign := foreign_tables(engine)) is not None:
            raise QueryError(f"cannot query {db}: {foreign}")
        if db.sqlite_file is not None:
            engine.dispose()
            engine = _engine(db, read_only=False)
        yield engine
    except SQLAlchemyError as exc:
        why = f"no table {exc}" if isinstance(exc, NoSuchTableError) else reason(exc, db)
        if _foreign_tables(exc):
            why += " (its tables are not laid out as this pipeline writes them: another program's?)"
        raise QueryError(f"cannot read database {db}: {why}") from exc
    finally:
        engine.dispose()


UNDEFINED_TABLE_OR_COLUMN = ("42P01", "42703")  # PostgreSQL's SQLSTATEs


def _foreign_tables(exc: SQLAlchemyError) -> bool:
    """Whether `exc` says a table or column the pipeline writes is missing."""
    if isinstance(exc, NoSuchTableError):
        return True
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in UNDEFINED_TABLE_OR_COLUMN:
        return True
    return isinstance(exc, OperationalError) and str(orig).startswith(
        ("no such table", "no such column")
    )


def _engine(db: DatabaseUrl, *, read_only: bool) -> Engine:
    try:
        return make_engine(db, read_only=read_only)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise QueryError(f"cannot open database {db}: {open_failure(exc, db)}") from exc
