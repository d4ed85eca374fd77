"""Deleting old records: what the `retention` command does, while a pipeline may write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, inspect, select

from sinks.sql.database import DatabaseUrl
from sinks.sql.models import Detection, LineCrossingRow, Run, Track, ZoneVisit
from sinks.sql.reading import existing_database

Model = type[Detection] | type[Track] | type[ZoneVisit] | type[LineCrossingRow] | type[Run]


@dataclass(frozen=True)
class RetentionResult:
    """What `delete_older_than` deleted (or, with dry_run, would delete)."""

    cutoff: datetime
    detections: int
    tracks: int
    runs: int
    vacuumed: bool
    zone_visits: int = 0
    line_crossings: int = 0


RETENTION_CHUNK = 10_000
"""Rows deleted per transaction, so that a running pipeline's writes wait only briefly."""


def delete_older_than(
    url: str, cutoff: datetime, *, dry_run: bool = False, vacuum: bool = True
) -> RetentionResult:
    """Delete detections, zone visits and line crossings from before `cutoff`, tracks that
    ended before it, and runs that ended before it and have no rows left; then VACUUM a
    SQLite database (a database written before zones and lines has no such tables).

    Deletes in transactions of `RETENTION_CHUNK` rows, so it can run while the pipeline
    writes. `dry_run` only counts. A naive `cutoff` is taken as UTC.
    """
    with existing_database(DatabaseUrl(url)) as engine:
        tables = set(inspect(engine).get_table_names())
        old: list[tuple[Any, Any]] = [
            (Detection, Detection.time < cutoff),
            (Track, Track.last_time < cutoff),
            (ZoneVisit, ZoneVisit.left_at < cutoff),
            (LineCrossingRow, LineCrossingRow.time < cutoff),
        ]
        counts = [
            _delete_chunked(engine, model, where, dry_run) if model.__tablename__ in tables else 0
            for model, where in old
        ]
        orphan_runs = Run.ended_at.is_not(None) & (Run.ended_at < cutoff)
        for model, _ in old:
            if model.__tablename__ in tables:
                orphan_runs &= ~select(model.id).where(model.run_id == Run.id).exists()
        runs = _delete_chunked(engine, Run, orphan_runs, dry_run)
        vacuumed = False
        if vacuum and not dry_run and engine.dialect.name == "sqlite":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            vacuumed = True
    return RetentionResult(cutoff, counts[0], counts[1], runs, vacuumed, counts[2], counts[3])


def _delete_chunked(engine: Engine, model: Model, where: Any, dry_run: bool) -> int:
    if dry_run:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model).where(where)) or 0)
    total = 0
    while True:
        ids = select(model.id).where(where).limit(RETENTION_CHUNK).scalar_subquery()
        with engine.begin() as conn:
            deleted = conn.execute(delete(model).where(model.id.in_(ids))).rowcount
        total += deleted
        if deleted < RETENTION_CHUNK:
            return total
