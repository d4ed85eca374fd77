"""One batch of rows (or a run's end) written as one transaction: the inserts skip rows
whose unique key is already there (SQLite, PostgreSQL), so a batch written twice adds
nothing twice, and say how many rows were new.

On SQLite and on PostgreSQL through psycopg 3 a batch goes to the driver as plain values,
many rows a statement (`_SqliteInsert`, `_PsycopgInsert`). SQLAlchemy's own executemany
converts each value of each row on its own, holding the interpreter lock, and the drivers
handle each row in Python too: on SQLite that Python work was a quarter of a busy
pipeline's time under the lock, and the writer, waiting for the lock at each row, fell
behind and sent most rows through the spool file; on PostgreSQL the process's CPU time per
row fell to a third (docs/performance.md, "The SQL sink's inserts on SQLite", "... on
PostgreSQL"). Other databases and drivers keep SQLAlchemy's insert.
"""

from __future__ import annotations

import copy
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from itertools import chain
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Dialect, Engine, Insert, insert, update
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
POSTGRESQL_PARAMETERS = 65_535
"""The most values one PostgreSQL statement takes (its protocol counts them in 16 bits)."""
_PARAMETER = re.compile(r"\?|\$\d+")
"""A value's mark in a statement (`?`, or numbered: `$1`)."""


class BatchInserts:
    """Writes batches to `engine`'s database, each as one transaction; on SQLite and on
    PostgreSQL through psycopg, each table's statements are made once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        psycopg = (dialect.name, dialect.driver) == ("postgresql", "psycopg")
        self._plain = (
            _SqliteInsert
            if dialect.name == "sqlite"
            else _PsycopgInsert
            if psycopg and hasattr(dialect.dbapi, "RawCursor")  # psycopg 3.2 and later
            else None
        )
        """How this database's batches go to the driver as plain values; None: SQLAlchemy's
        own insert (other databases and drivers)."""
        self._inserts: dict[tuple[str, tuple[str, ...]], _PlainInsert] = {}

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
        if self._plain is not None:
            rows = [{**added, **r} for r in batch.rows] if added else batch.rows
            keys = tuple(rows[0])
            insert_rows = self._inserts.get((batch.table, keys))
            if insert_rows is None:
                insert_rows = self._plain(self.engine.dialect, model, keys)
                self._inserts[batch.table, keys] = insert_rows
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


class _PlainInsert(ABC):
    """`_insert_skipping_existing` of one table and its columns, handed to the driver as
    plain values, many rows a statement. Values go through the same conversions as in
    SQLAlchemy's own insert (its bind processors), a column at a time, so that what is
    stored is the same. `dialect` compiles the statements: a positional paramstyle."""

    PARAMETERS = 0
    """The most values one statement takes."""

    def __init__(self, dialect: Dialect, model: RowModel, keys: tuple[str, ...]) -> None:
        self._sql = _RowsSql(dialect, model, keys)
        self.one_row = self._sql.one_row
        self.keys = self._sql.keys
        self.chunk = max(1, self.PARAMETERS // max(1, len(self.keys)))
        """The most rows one statement takes."""
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
        with engine.begin() as conn:
            return self._insert(conn, values)

    @abstractmethod
    def _insert(self, conn: Connection, values: list[tuple[Any, ...]]) -> int:
        """Inserts the rows' `values` (each row's in `keys`' order): the rows that were new."""

    def _column(self, key: str, values: list[Any]) -> list[Any]:
        process = self.processors.get(key)
        if key in self.times and process is not None:
            # the rows of one frame share its time: each distinct one is converted once
            stored = {v: None if v is None else process(_utc(v)) for v in set(values)}
            return [stored[v] for v in values]
        if process is None:
            return values
        return [None if v is None else process(v) for v in values]


class _SqliteInsert(_PlainInsert):
    """On SQLite: one statement for `chunk` rows at a time (999 values), and one for a row,
    run for each row left (the driver's executemany)."""

    PARAMETERS = SQLITE_PARAMETERS

    def _insert(self, conn: Connection, values: list[tuple[Any, ...]]) -> int:
        whole = len(values) - len(values) % self.chunk
        inserted = 0
        for start in range(0, whole, self.chunk):
            chunk = values[start : start + self.chunk]
            result = conn.exec_driver_sql(self._sql.rows(self.chunk), tuple(chain(*chunk)))
            inserted += _new_rows(result, len(chunk))
        if whole < len(values):
            result = conn.exec_driver_sql(
                self.one_row, values[whole:], execution_options={"preserve_rowcount": True}
            )
            inserted += _new_rows(result, len(values) - whole)
        return inserted


class _PsycopgInsert(_PlainInsert):
    """On PostgreSQL through psycopg 3: statements of a power of two rows, as many of the
    largest within `chunk` (65,535 values) as the rows fill, then one for each binary digit
    of what is left (500 rows: 256, 128, 64, 32, 16 and 4), so that a run repeats a few
    statements, which psycopg has the server prepare once they repeat.

    Their parameters are PostgreSQL's own ($1, $2, …), run by psycopg's `RawCursor`: its
    usual cursor turns %s into them, and does so anew at every execution of a statement
    over 4 KiB, which costs more than the rest of the insert. Python ints go as int8
    whatever their size: psycopg would send each as the smallest of int2, int4 and int8
    that holds it, and a statement whose parameter types change from batch to batch is
    never prepared. The server converts them to each column's type on insert, as it did
    the smaller ones; an int beyond int8 goes as psycopg sends it by default."""

    PARAMETERS = POSTGRESQL_PARAMETERS

    def __init__(self, dialect: Dialect, model: RowModel, keys: tuple[str, ...]) -> None:
        numbered = copy.copy(dialect)  # the engine's, compiling with numbered parameters
        numbered.paramstyle, numbered.positional = "numeric_dollar", True
        super().__init__(numbered, model, keys)
        self.chunk = 1 << (self.chunk.bit_length() - 1)

    def _insert(self, conn: Connection, values: list[tuple[Any, ...]]) -> int:
        import psycopg

        # SQLAlchemy runs them on a cursor of the connection's factory: its errors wrapped, a
        # lost connection dropped from the pool, as for its own statements
        driver = cast(psycopg.Connection[Any], conn.connection.dbapi_connection)
        usual = driver.cursor_factory
        try:
            inserted = start = 0
            while start < len(values):
                rows = min(self.chunk, 1 << ((len(values) - start).bit_length() - 1))
                part = tuple(chain(*values[start : start + rows]))
                driver.cursor_factory = _int8_raw_cursor()
                try:
                    result = conn.exec_driver_sql(self._sql.rows(rows), part)
                except OverflowError:  # an int beyond int8, refused before it was sent
                    driver.cursor_factory = psycopg.RawCursor
                    result = conn.exec_driver_sql(self._sql.rows(rows), part)
                inserted += _new_rows(result, rows)
                start += rows
        finally:
            driver.cursor_factory = usual
        return inserted


@functools.cache
def _int8_raw_cursor() -> Any:
    """A cursor factory of psycopg's `RawCursor` that sends every Python int as int8."""
    import psycopg
    from psycopg.types.numeric import Int8BinaryDumper

    def cursor(connection: Any, *, row_factory: Any = None) -> psycopg.RawCursor[Any]:
        made = psycopg.RawCursor(connection, row_factory=row_factory)
        # the cursor's own copy of the connection's adapters: other statements unchanged
        made.adapters.register_dumper(int, Int8BinaryDumper)
        return made

    return cursor


class _RowsSql:
    """The text of `_insert_skipping_existing` of one table and its columns for any number
    of rows, as SQLAlchemy compiles it for `dialect` (a positional paramstyle): its text for
    one row, that row's values repeated (renumbered where parameters are numbered).
    SQLAlchemy's own compiling takes a quarter of a second for 256 rows of 14 values,
    holding the interpreter lock; the text made here is checked against it for 3 rows."""

    def __init__(self, dialect: Dialect, model: RowModel, keys: tuple[str, ...]) -> None:
        self._dialect, self._model = dialect, model
        statement = _insert_skipping_existing(dialect, model)
        compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
        self.one_row = str(compiled)
        self.keys: Sequence[str] = compiled.positiontup or ()
        """The columns in the order of the statement's values."""
        start = self.one_row.index(" VALUES (") + len(" VALUES ")
        end = self.one_row.rindex(")") + 1
        self._head, self._tail = self.one_row[:start], self.one_row[end:]
        self._between = _PARAMETER.split(self.one_row[start:end])
        """A row's text around its values."""
        self._numbered = dialect.paramstyle == "numeric_dollar"
        self._texts: dict[int, str] = {}
        self._checked = False

    def rows(self, count: int) -> str:
        """The statement of `count` rows; its values are taken row after row, each row's in
        `keys`' order."""
        text = self._texts.get(count)
        if text is None:
            if not self._checked:
                self._check()
            text = self._texts[count] = self._render(count)
        return text

    def _render(self, count: int) -> str:
        width = len(self.keys)
        rows = []
        for row in range(count):
            marks = (
                [f"${row * width + n}" for n in range(1, width + 1)]
                if self._numbered
                else ["?"] * width
            )
            marks.append("")  # after the row's last value
            rows.append("".join(chain(*zip(self._between, marks, strict=True))))
        return self._head + ", ".join(rows) + self._tail

    def _check(self) -> None:
        """Raises RuntimeError unless SQLAlchemy's own statement of 3 rows is the one
        `_render` makes, its values in the same order."""
        if len(self._between) != len(self.keys) + 1:
            raise RuntimeError("SQLAlchemy's insert has other parameters than its columns")
        rows = [dict.fromkeys(self.keys)] * 3
        compiled = (
            _insert_skipping_existing(self._dialect, self._model)
            .values(rows)
            .compile(dialect=self._dialect)
        )
        expected = [f"{key}_m{i}" for i in range(3) for key in self.keys]
        if list(compiled.positiontup or ()) != expected or str(compiled) != self._render(3):
            raise RuntimeError("SQLAlchemy's multi-row insert is written otherwise")
        self._checked = True


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
