"""Deleting old records: what the `retention` command does, while a pipeline may write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select

from sinks.sql.database import DatabaseUrl
from sinks.sql.models import Detection, Run, Track
from sinks.sql.query import existing_database


@dataclass(frozen=True)
class RetentionResult:
    """What `delete_older_than` deleted (or, with dry_run, would delete)."""

    cutoff: datetime
    detections: int
    tracks: int
    runs: int
    vacuumed: bool


RETENTION_CHUNK = 10_000
"""Rows deleted per transaction, so that a running pipeline's writes wait only briefly."""


def delete_older_than(
    url: str, cutoff: datetime, *, dry_run: bool = False, vacuum: bool = True
) -> RetentionResult:
    """Delete detections from before `cutoff`, tracks that ended before it, and runs that
    ended before it and have no rows left; then VACUUM a SQLite database.

    Deletes in transactions of `RETENTION_CHUNK` rows, so it can run while the pipeline
    writes. `dry_run` only counts. A naive `cutoff` is taken as UTC.
    """
    with existing_database(DatabaseUrl(url)) as engine:
        counts = [
            _delete_chunked(engine, model, where, dry_run)
            for model, where in (
                (Detection, Detection.time < cutoff),
                (Track, Track.last_time < cutoff),
            )
        ]
        orphan_runs = (
            Run.ended_at.is_not(None)
            & (Run.ended_at < cutoff)
            & ~select(Detection.id).where(Detection.run_id == Run.id).exists()
            & ~select(Track.id).where(Track.run_id == Run.id).exists()
        )
        runs = _delete_chunked(engine, Run, orphan_runs, dry_run)
        vacuumed = False
        if vacuum and not dry_run and engine.dialect.name == "sqlite":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            vacuumed = True
    return RetentionResult(cutoff, counts[0], counts[1], runs, vacuumed)


def _delete_chunked(
    engine: Engine, model: type[Detection] | type[Track] | type[Run], where: Any, dry_run: bool
) -> int:
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
