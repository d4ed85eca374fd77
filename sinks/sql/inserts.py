"""One batch of rows (or a run's end) written as one transaction: the inserts skip rows
whose unique key is already there (SQLite, PostgreSQL), so a batch written twice adds
nothing twice, and say how many rows were new.

On SQLite a batch goes to the driver as plain values, many rows a statement
(`_SqliteInsert`). SQLAlchemy's own executemany converts each value of each row on its own,
and the driver lets go of the interpreter lock and takes it back for every row: in a busy
pipeline that Python work was a quarter of the lock's time, and the writer, waiting for the
lock at each row, fell behind and sent most rows through the spool file
(docs/performance.md, "The SQL sink's inserts on SQLite").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from itertools import chain
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


SQLITE_PARAMETERS = 999
"""The most values one SQLite statement takes wherever it was built (SQLite before 3.32)."""


class BatchInserts:
    """Writes batches to `engine`'s database, each as one transaction; on SQLite, each
    table's statements are compiled once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite: dict[tuple[str, tuple[str, ...]], _SqliteInsert] = {}

    def write(self, batch: RowBatch) -> int:
        """Writes `batch`: the rows inserted, less those whose key was already there (a
        run's end: 0). Raises SQLAlchemyError."""
        if batch.table == "run_end":
            (row,) = batch.rows
            with self.engine.begin() as conn:
                conn.execute(
                    update(Run)
                    .where(Run.id == row["run_id"])
                    .values(ended_at=_utc(row["ended_at"]), status=row["status"])
                )
            return 0
        if not batch.rows:
            return 0
        # a row an older version spooled lacks the columns added since: NULL, as in its table
        added = dict.fromkeys(COLUMNS_ADDED.get(batch.table, ()))
        model = MODELS[batch.table]
        if self.engine.dialect.name == "sqlite":
            rows = [{**added, **r} for r in batch.rows] if added else batch.rows
            keys = tuple(rows[0])
            insert_rows = self._sqlite.get((batch.table, keys))
            if insert_rows is None:
                insert_rows = _SqliteInsert(self.engine.dialect, model, keys)
                self._sqlite[batch.table, keys] = insert_rows
            return insert_rows.write(self.engine, rows)
        rows = [{**added, **r} for r in batch.rows]  # copies: their times are converted
        for column in _TIME_COLUMNS[batch.table]:
            for r in rows:
                r[column] = None if r[column] is None else _utc(r[column])
        statement = _insert_skipping_existing(self.engine.dialect, model)
        with self.engine.begin() as conn:
            # the driver's count of an executemany is kept only when asked for
            result = conn.execute(statement.execution_options(preserve_rowcount=True), rows)
        return _new_rows(result, len(rows))


def _new_rows(result: CursorResult[Any], rows: int) -> int:
    """The rows a statement inserted of `rows`: the driver's count, all where it has none."""
    return rows if result.rowcount < 0 else result.rowcount


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class _SqliteInsert:
    """`_insert_skipping_existing` of one table and its columns for SQLite's driver: one
    statement for `chunk` rows at a time, one for a row. Values go through the same
    conversions as in SQLAlchemy's own insert (its bind processors), a column at a time, so
    that what is stored is the same."""

    def __init__(self, dialect: Dialect, model: RowModel, keys: tuple[str, ...]) -> None:
        self._dialect, self._model = dialect, model
        compiled = _insert_skipping_existing(dialect, model).compile(
            dialect=dialect, column_keys=list(keys)
        )
        self.one_row = str(compiled)
        self.keys: Sequence[str] = compiled.positiontup or ()
        self.chunk = max(1, SQLITE_PARAMETERS // max(1, len(self.keys)))
        self._chunk_sql: str | None = None
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
                f"a value the row cannot take: {exc!r}", self.one_row, None, exc
            ) from exc
        values = list(zip(*columns, strict=True))
        whole = len(values) - len(values) % self.chunk
        inserted = 0
        with engine.begin() as conn:
            for start in range(0, whole, self.chunk):
                chunk = values[start : start + self.chunk]
                result = conn.exec_driver_sql(self._chunk_statement(), tuple(chain(*chunk)))
                inserted += _new_rows(result, len(chunk))
            if whole < len(values):
                result = conn.exec_driver_sql(
                    self.one_row, values[whole:], execution_options={"preserve_rowcount": True}
                )
                inserted += _new_rows(result, len(values) - whole)
        return inserted

    def _chunk_statement(self) -> str:
        """The statement of `chunk` rows, compiled at its first use (tens of milliseconds)."""
        if self._chunk_sql is None:
            rows = [dict.fromkeys(self.keys)] * self.chunk
            compiled = (
                _insert_skipping_existing(self._dialect, self._model)
                .values(rows)
                .compile(dialect=self._dialect)
            )
            # its values are taken row after row, each row's in `keys`' order
            expected = [f"{key}_m{i}" for i in range(self.chunk) for key in self.keys]
            if list(compiled.positiontup or ()) != expected:
                raise RuntimeError("SQLAlchemy's multi-row insert orders its values otherwise")
            self._chunk_sql = str(compiled)
        return self._chunk_sql

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
