"""A batch of rows is written as SQLAlchemy's own insert would write it, once, however
many statements it takes: on SQLite, and on PostgreSQL (the local server, skipped when it
cannot be reached)."""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, String, event, insert, text
from sqlalchemy.exc import StatementError

from sinks.sql.database import DatabaseUrl, make_engine
from sinks.sql.inserts import (
    MODELS,
    POSTGRESQL_PARAMETERS,
    SQLITE_PARAMETERS,
    BatchInserts,
    RowModel,
)
from sinks.sql.models import Base, Detection, Run
from sinks.sql.spool import RowBatch
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

T0 = 1.8e9

NewDatabase = Callable[[], Engine]
"""A new database with the tables, and run 1."""


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewDatabase]:
    """New SQLite files, or new schemas of the local PostgreSQL (dropped after)."""
    if request.param == "postgresql":
        skip_without_pg()
    files = itertools.count()
    with contextlib.ExitStack() as made:

        def new() -> Engine:
            if request.param == "sqlite":
                url = f"sqlite:///{tmp_path / f'{next(files)}.db'}"
            else:
                url = made.enter_context(pg_schema())
            engine = make_engine(DatabaseUrl(url))
            made.callback(engine.dispose)  # before its schema is dropped
            Base.metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(
                    insert(Run).values(id=1, started_at=datetime.now(timezone.utc),
                                       status="running", hostname="h")
                )  # fmt: skip
            return engine

        yield new


def _rows_a_statement(engine: Engine, model: RowModel) -> int:
    """The most rows one of the writer's statements takes on `engine`'s database."""
    values = len(model.__table__.columns) - 1
    if engine.dialect.name == "sqlite":
        return SQLITE_PARAMETERS // values
    return 1 << ((POSTGRESQL_PARAMETERS // values).bit_length() - 1)  # a power of two


def _rows(model: RowModel, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` JSON-ready rows for every column of `model` but its id: times as Unix seconds
    with microseconds, a few shared by several rows, odd floats, Unicode (as long as its column takes), NULL where allowed."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        row: dict[str, Any] = {}
        for column in model.__table__.columns:
            kind = column.type
            if column.primary_key:
                continue
            if column.nullable and rng.random() < 0.3:
                value: Any = None
            elif column.key == "run_id":
                value = 1
            elif isinstance(kind, DateTime) or hasattr(kind, "impl"):
                value = T0 + (n // 3) * 0.040001 + rng.choice((0.0, 1e-6, 0.5))
            elif isinstance(kind, Boolean):
                value = rng.random() < 0.5
            elif isinstance(kind, Integer):
                value = (
                    n if column.key in ("frame", "obj", "track_id") else rng.randrange(-5, 10**6)
                )
            elif isinstance(kind, Float):
                value = rng.choice((0.1, 1 / 3, -0.0, 1e300, 1919.99951171875, rng.random()))
            elif isinstance(kind, String):
                value = rng.choice(("person", "gabelstapler é ☃", "cam-1", ""))[: kind.length]
            else:
                raise AssertionError(f"a column type the test does not make: {kind!r}")
            row[column.key] = value
        rows.append(row)
    return rows


def _stored(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table` as stored, each value with its SQLite storage class, or on
    PostgreSQL its text (every digit of a float, its sign, a time's microseconds)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = [r[1] for r in conn.execute(text(f"PRAGMA table_info({table})"))]
            typed = ", ".join(f"{n}, typeof({n})" for n in names)
        else:
            names = list(
                conn.scalars(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_name = "
                        ":table AND table_schema = current_schema() ORDER BY ordinal_position"
                    ),
                    {"table": table},
                )
            )
            typed = ", ".join(f"{n}, {n}::text AS {n}_text" for n in names)
        return [tuple(r) for r in conn.execute(text(f"SELECT {typed} FROM {table} ORDER BY id"))]


@pytest.mark.parametrize("table", sorted(MODELS))
def test_a_batch_is_stored_as_sqlalchemys_own_insert_stores_it(
    new_database: NewDatabase, table: str
) -> None:
    model = MODELS[table]
    ours, theirs = new_database(), new_database()
    # rows for several statements of many rows, and some left (SQLite: for the statement of
    # one; PostgreSQL: for one statement of each power of two it holds, 2**8 + 2**2 + 1)
    per_statement = _rows_a_statement(ours, model)
    left = 5 if ours.dialect.name == "sqlite" else 261
    rows = _rows(model, 3 * per_statement + left, seed=len(table))
    written = BatchInserts(ours).write(RowBatch(table, [dict(r) for r in rows]))  # type: ignore[arg-type]
    assert written == len(rows)
    time_columns = {c.key for c in model.__table__.columns if hasattr(c.type, "impl")}
    with theirs.begin() as conn:
        conn.execute(
            insert(model),
            [
                {k: (datetime.fromtimestamp(v, timezone.utc) if k in time_columns and v is not None
                     else v) for k, v in r.items()}
                for r in rows
            ],
        )  # fmt: skip
    assert _stored(ours, table) == _stored(theirs, table)


def test_a_detection_batch_written_again_adds_no_row_and_counts_only_the_new_ones(
    new_database: NewDatabase,
) -> None:
    inserts = BatchInserts(new_database())
    rows = _rows(MODELS["detections"], 300, seed=1)
    for n, row in enumerate(rows):
        row["obj"] = n  # NULL only in rows of older versions, and no key then
    assert inserts.write(RowBatch("detections", rows[100:200])) == 100
    assert inserts.write(RowBatch("detections", rows)) == 200
    assert inserts.write(RowBatch("detections", rows[:3])) == 0
    assert len(_stored(inserts.engine, "detections")) == 300


@pytest.mark.parametrize(
    "damage",
    [{"x1": "abc"}, {"time": "yesterday"}],
    ids=["a float that is text", "a time that is text"],
)
def test_a_row_with_a_value_its_column_cannot_take_is_refused_as_a_database_error(
    new_database: NewDatabase, damage: dict[str, Any]
) -> None:
    inserts = BatchInserts(new_database())
    rows = _rows(MODELS["detections"], 200, seed=2)
    rows[150].update(damage)
    with pytest.raises(StatementError):
        inserts.write(RowBatch("detections", rows))
    assert _stored(inserts.engine, "detections") == []


def test_a_batch_goes_to_the_database_in_a_few_statements_not_one_a_row(
    new_database: NewDatabase,
) -> None:
    engine = new_database()
    executed: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: executed.append(a[2]))
    rows = _rows(MODELS["detections"], 500, seed=3)
    assert BatchInserts(engine).write(RowBatch("detections", rows)) == 500
    inserts = [s for s in executed if s.startswith("INSERT")]
    if engine.dialect.name == "sqlite":  # 7 statements of 71 rows, and one of a row for 3
        assert len(inserts) == 500 // _rows_a_statement(engine, MODELS["detections"]) + 1
    else:  # 256 + 128 + 64 + 32 + 16 + 4
        assert len(inserts) == 6


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_with_a_psycopg_older_than_3_2_a_batch_on_postgresql_goes_through_sqlalchemys_insert(
    new_database: NewDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = new_database()
    monkeypatch.delattr(engine.dialect.dbapi, "RawCursor")
    inserts = BatchInserts(engine)
    rows = _rows(MODELS["detections"], 300, seed=4)
    for n, row in enumerate(rows):
        row["obj"] = n  # a key to each row
    assert inserts.write(RowBatch("detections", rows[100:])) == 200
    assert inserts.write(RowBatch("detections", rows)) == 100
    assert len(_stored(engine, "detections")) == 300


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_on_postgresql_batches_of_small_and_large_ints_share_one_prepared_statement(
    new_database: NewDatabase,
) -> None:
    """psycopg sends an int as int2, int4 or int8 by its size, and has the server prepare a
    statement only once its text and parameter types repeat: the writer's ints are all
    int8, so batches whose ints differ in size still repeat one statement."""
    engine = new_database()
    inserts = BatchInserts(engine)
    for n in range(12):  # psycopg prepares a statement at its 5th execution
        (row,) = _rows(MODELS["detections"], 1, seed=n)
        big = n % 2 == 1
        row.update(frame=n + (100_000 if big else 0), label_id=40_000 if big else 1,
                   track_id=2_000_000_000 if big else 2, obj=n)  # fmt: skip
        assert inserts.write(RowBatch("detections", [row])) == 1
    with engine.connect() as conn:
        prepared = conn.exec_driver_sql(
            "SELECT parameter_types::text FROM pg_prepared_statements "
            "WHERE starts_with(statement, 'INSERT INTO detections')"
        ).all()
    assert len(prepared) == 1
    (types,) = prepared[0]
    assert "smallint" not in types and "integer" not in types and "bigint" in types
    assert len(_stored(engine, "detections")) == 12


@pytest.mark.parametrize("new_database", ["postgresql"], indirect=True)
def test_on_postgresql_an_int_beyond_int8_is_written_as_sqlalchemys_own_insert_writes_it(
    new_database: NewDatabase,
) -> None:
    """Refused by the server in an integer column, stored as a float in a float column."""
    ours, theirs = new_database(), new_database()
    rows = _rows(MODELS["detections"], 3, seed=5)
    rows[1]["x1"] = 10**30
    BatchInserts(ours).write(RowBatch("detections", [dict(r) for r in rows]))
    with theirs.begin() as conn:
        conn.execute(
            insert(Detection),
            [{**r, "time": datetime.fromtimestamp(r["time"], timezone.utc)} for r in rows],
        )
    assert _stored(ours, "detections") == _stored(theirs, "detections")
    rows[2]["frame"] = -(10**20)
    with pytest.raises(StatementError):
        BatchInserts(ours).write(RowBatch("detections", rows))
