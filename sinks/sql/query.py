"""Reading the SQL output back: filtered detections, counts, and deleting old records.

Used by the `query` and `retention` commands; all functions open and close their own
engine and raise `QueryError` (one line, password masked) when the database cannot be used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import Engine, Select, delete, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sinks.base import SinkError
from sinks.sql.database import DatabaseUrl, make_engine, open_failure, reason
from sinks.sql.models import Detection, Run, Track

ID_MAX = 2**31 - 1
"""The largest run and track id: the columns are INTEGER, 32 bits in PostgreSQL (a bigger
value makes it fail the query, and the SQLite driver crashes past 64 bits)."""
LIMIT_MAX = 2**63 - 1
"""The largest row limit: what SQLite and PostgreSQL take as a LIMIT."""

CountBy = Literal["label", "camera", "run"]
COUNT_BY: tuple[CountBy, ...] = ("label", "camera", "run")


class QueryError(SinkError):
    """The database cannot be read (missing file, no tables yet, unreachable server)."""


@dataclass(frozen=True)
class DetectionQuery:
    """Filters for `query_detections`; None means "any".

    `since` is inclusive and `until` exclusive; naive datetimes are taken as UTC.
    `label` is the class name (as in the `label` column), `track` a track id,
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
class DetectionRecord:
    """One row of the `detections` table; `time` is timezone-aware UTC."""

    id: int
    run_id: int
    camera: str
    frame: int
    pts: float
    time: datetime
    label: str
    label_id: int
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    track_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values; `time` as ISO-8601 UTC ending in 'Z'."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "camera": self.camera,
            "frame": self.frame,
            "pts": self.pts,
            "time": iso_z(self.time),
            "label": self.label,
            "label_id": self.label_id,
            "score": self.score,
            "x1": self.x1,
            "y1": self.y1,
            "x2": self.x2,
            "y2": self.y2,
            "track_id": self.track_id,
        }


@dataclass(frozen=True)
class CountRow:
    """Detections and distinct tracks of one group of `count_detections`."""

    key: str
    detections: int
    tracks: int

    def as_dict(self, by: str) -> dict[str, Any]:
        return {by: self.key, "detections": self.detections, "tracks": self.tracks}


@dataclass(frozen=True)
class RetentionResult:
    """What `delete_older_than` deleted (or, with dry_run, would delete)."""

    cutoff: datetime
    detections: int
    tracks: int
    runs: int
    vacuumed: bool


def iso_z(moment: datetime) -> str:
    """An aware datetime as ISO-8601 UTC with microseconds and a 'Z'."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


# ---------------------------------------------------------------------------- opening


@contextmanager
def _existing_database(db: DatabaseUrl) -> Iterator[Engine]:
    """An engine for a database the pipeline wrote to; QueryError otherwise. Disposed after."""
    try:
        if db.sqlite_file is not None and not db.sqlite_file.is_file():
            raise QueryError(
                f"cannot query {db}: database file {db.sqlite_file} does not exist "
                "(run the pipeline with an sql output first, or check the path)"
            )
        engine = make_engine(db)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise QueryError(f"cannot open database {db}: {open_failure(exc, db)}") from exc
    try:
        if not inspect(engine).has_table(Detection.__tablename__):
            raise QueryError(
                f"database {db} has no detections table yet "
                "(run the pipeline with an sql output writing to it first)"
            )
        yield engine
    except SQLAlchemyError as exc:
        raise QueryError(f"cannot read database {db}: {reason(exc, db)}") from exc
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- queries


def query_detections(url: str, q: DetectionQuery) -> list[DetectionRecord]:
    """Detections matching `q`, ordered by time then id.

    Raises QueryError when the database cannot be opened or has no detections table;
    a SQLite file that does not exist is reported, not created.
    """
    with _existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        stmt = _filtered(select(Detection), q).order_by(Detection.time, Detection.id)
        rows = session.scalars(stmt.limit(q.limit)).all()
        return [_record(d) for d in rows]


def count_detections(url: str, q: DetectionQuery, by: CountBy) -> list[CountRow]:
    """Detections matching `q` (its `limit` ignored) counted per label, camera or run.

    `tracks` counts the distinct confirmed tracks among them. Ordered by detections, most
    first, then by key.
    """
    if by not in COUNT_BY:
        raise ValueError(f"cannot count by {by!r}; choose from {', '.join(COUNT_BY)}")
    column: Any = {
        "label": Detection.label, "camera": Detection.camera, "run": Detection.run_id
    }[by]
    detections_stmt = _filtered(select(column, func.count()), q).group_by(column)
    distinct_tracks = (
        _filtered(
            select(column.label("key"), Detection.run_id, Detection.camera, Detection.track_id),
            q,
        )
        .where(Detection.track_id.is_not(None))
        .distinct()
        .subquery()
    )
    tracks_stmt = select(distinct_tracks.c.key, func.count()).group_by(distinct_tracks.c.key)
    with _existing_database(DatabaseUrl(url)) as engine, engine.connect() as conn:
        detections = {str(k): int(n) for k, n in conn.execute(detections_stmt)}
        tracks = {str(k): int(n) for k, n in conn.execute(tracks_stmt)}
    rows = [CountRow(k, n, tracks.get(k, 0)) for k, n in detections.items()]
    return sorted(rows, key=lambda r: (-r.detections, r.key))


def _filtered(stmt: Select[Any], q: DetectionQuery) -> Select[Any]:
    if q.camera is not None:
        stmt = stmt.where(Detection.camera == q.camera)
    if q.label is not None:
        stmt = stmt.where(Detection.label == q.label)
    if q.track is not None:
        stmt = stmt.where(Detection.track_id == q.track)
    if q.since is not None:
        stmt = stmt.where(Detection.time >= q.since)
    if q.until is not None:
        stmt = stmt.where(Detection.time < q.until)
    if q.min_score is not None:
        stmt = stmt.where(Detection.score >= q.min_score)
    if q.run is not None:
        stmt = stmt.where(Detection.run_id == q.run)
    return stmt


def _record(d: Detection) -> DetectionRecord:
    return DetectionRecord(
        id=d.id,
        run_id=d.run_id,
        camera=d.camera,
        frame=d.frame,
        pts=d.pts,
        time=d.time,
        label=d.label,
        label_id=d.label_id,
        score=d.score,
        x1=d.x1,
        y1=d.y1,
        x2=d.x2,
        y2=d.y2,
        track_id=d.track_id,
    )


# ---------------------------------------------------------------------------- retention

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
    with _existing_database(DatabaseUrl(url)) as engine:
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
