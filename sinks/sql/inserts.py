"""One batch of rows (or a run's end) written as one transaction: the inserts skip rows
whose unique key is already there (SQLite, PostgreSQL), so a batch written twice adds
nothing twice, and say how many rows were new.

On SQLite a batch goes to the driver as plain tuples (`_SqliteInsert`): SQLAlchemy's own
executemany converts each value of each row on its own, and that Python work, holding the
interpreter lock, was a quarter of a fast pipeline's (docs/performance.md, "The SQL sink's
inserts on SQLite").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import CursorResult, Dialect, Engine, Insert, insert, update
from sqlalchemy.exc import StatementError

from sinks.sql.models import Detection, LineCrossingRow, Run, Track, ZoneVisit
from sinks.sql.schema import COLUMNS_ADDED
from sinks.sql.spool import RowBatch

RowModel = type[Detection] | type[Track] | type[ZoneVisit] | type[LineCrossingRow]
MODELS: dict[str, RowModel] = {
    "detections": Detection,
    "tracks": Track,
    "zone_visits": ZoneVisit,
    "line_crossings": LineCrossingRow,
}
_TIME_COLUMNS = {
    "detections": ("time",),
    "tracks": ("first_time", "last_time"),
    "zone_visits": ("entered_at", "left_at", "last_time"),
    "line_crossings": ("time",),
}
ROW_TABLES = tuple(MODELS)
"""The tables a batch of rows goes to (a run's end is the `run_end` batch)."""


def insert_batch(engine: Engine, batch: RowBatch) -> int:
    """Writes `batch` as one transaction: the rows inserted, less those whose key was
    already there (a run's end: 0). Raises SQLAlchemyError."""
    if batch.table == "run_end":
        (row,) = batch.rows
        with engine.begin() as conn:
            conn.execute(
                update(Run)
                .where(Run.id == row["run_id"])
                .values(ended_at=_utc(row["ended_at"]), status=row["status"])
            )
        return 0
    # a row an older version spooled lacks the columns added since: NULL, as in its table
    added = dict.fromkeys(COLUMNS_ADDED.get(batch.table, ()))
    rows = [{**added, **r} for r in batch.rows]
    if not rows:
        return 0
    model = MODELS[batch.table]
    if engine.dialect.name == "sqlite":
        return _SqliteInsert(engine.dialect, model, tuple(rows[0])).write(engine, rows)
    for column in _TIME_COLUMNS[batch.table]:
        for r in rows:
            r[column] = None if r[column] is None else _utc(r[column])
    insert_rows = _insert_skipping_existing(engine.dialect, model)
    with engine.begin() as conn:
        # the driver's count of an executemany is kept only when asked for
        result = conn.execute(insert_rows.execution_options(preserve_rowcount=True), rows)
    return _new_rows(result, rows)


def _new_rows(result: CursorResult[Any], rows: list[dict[str, Any]]) -> int:
    """The rows an executemany inserted: the driver's count, all of them where it has none."""
    return len(rows) if result.rowcount < 0 else result.rowcount


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class _SqliteInsert:
    """`_insert_skipping_existing` of one table and its columns, compiled for SQLite's
    driver (about 0.2 ms: a third of a microsecond a row of a full batch). Values go through
    the same conversions as in SQLAlchemy's own insert (its bind processors), a column at a
    time, so that what is stored is the same."""

    def __init__(self, dialect: Dialect, model: RowModel, keys: tuple[str, ...]) -> None:
        compiled = _insert_skipping_existing(dialect, model).compile(
            dialect=dialect, column_keys=list(keys)
        )
        self.sql = str(compiled)
        self.keys: Sequence[str] = compiled.positiontup or ()
        columns = model.__table__.columns
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for key in self.keys:
            process = columns[key].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.processors[key] = process
        self.times = frozenset(_TIME_COLUMNS[model.__tablename__])

    def write(self, engine: Engine, rows: list[dict[str, Any]]) -> int:
        """Inserts `rows` (JSON-ready, times as Unix seconds) in one transaction: the rows
        that were new."""
        try:
            columns = [self._column(key, [r[key] for r in rows]) for key in self.keys]
        except (KeyError, TypeError, ValueError) as exc:
            # as SQLAlchemy's own insert says of a value it cannot take: the batch is refused
            raise StatementError(
                f"a value the row cannot take: {exc!r}", self.sql, None, exc
            ) from exc
        with engine.begin() as conn:
            result = conn.exec_driver_sql(
                self.sql,
                list(zip(*columns, strict=True)),
                execution_options={"preserve_rowcount": True},
            )
        return _new_rows(result, rows)

    def _column(self, key: str, values: list[Any]) -> list[Any]:
        process = self.processors.get(key)
        if key in self.times and process is not None:
            # the rows of one frame share its time: each distinct one is converted once
            stored = {v: None if v is None else process(_utc(v)) for v in set(values)}
            return [stored[v] for v in values]
        if process is None:
            return values
        return [None if v is None else process(v) for v in values]


def _insert_skipping_existing(dialect: Dialect, model: RowModel) -> Insert:
    """INSERT that skips rows whose unique key is already there (SQLite, PostgreSQL)."""
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    if dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model).on_conflict_do_nothing()
    # other backends: no duplicate protection on retry; a row already there breaks its
    # unique key, and the batch is refused (set aside), though its rows are stored
    return insert(model)
