"""One batch of rows (or a run's end) written as one transaction: the inserts skip rows
whose unique key is already there (SQLite, PostgreSQL), so a batch written twice adds
nothing twice, and say how many rows were new."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, Insert, insert, update

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
    for column in _TIME_COLUMNS[batch.table]:
        for r in rows:
            r[column] = None if r[column] is None else _utc(r[column])
    insert_rows = _insert_skipping_existing(engine, MODELS[batch.table])
    with engine.begin() as conn:
        # the driver's count of an executemany is kept only when asked for
        result = conn.execute(insert_rows.execution_options(preserve_rowcount=True), rows)
    return len(rows) if result.rowcount < 0 else result.rowcount  # < 0: not known


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _insert_skipping_existing(engine: Engine, model: RowModel) -> Insert:
    """INSERT that skips rows whose unique key is already there (SQLite, PostgreSQL)."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model).on_conflict_do_nothing()
    # other backends: no duplicate protection on retry; a row already there breaks its
    # unique key, and the batch is refused (set aside), though its rows are stored
    return insert(model)
