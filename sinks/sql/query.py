"""Reading the SQL output back: filtered detections, pages of runs and tracks, counts.

Used by the `query` command (pages of the newest detections, runs and tracks; counts);
all functions open and close their own
engine and raise `QueryError` (one line, password masked) when the database cannot be used.
What every query shares (opening, filters, pages) is in `sinks.sql.reading`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, Select, func, inspect, null, select
from sqlalchemy.orm import Session, load_only

from sinks.sql.database import DatabaseUrl
from sinks.sql.models import Detection, Run, Track
from sinks.sql.reading import (
    DetectionQuery,
    JsonRow,
    Page,
    Streamed,
    existing_database,
    iso_z,
    label_is,
)

CountBy = Literal["label", "camera", "run"]
COUNT_BY: tuple[CountBy, ...] = ("label", "camera", "run")


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
class RunRecord(JsonRow):
    """One row of the `runs` table, with its detections and finished tracks counted."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    status: str
    config: str
    hostname: str
    detections: int
    tracks: int
    reason: str | None = None  # why a run was lost (status `lost`)


@dataclass(frozen=True)
class TrackRecord(JsonRow):
    """One row of the `tracks` table (a finished track) and the box of its best detection."""

    run_id: int
    camera: str
    track_id: int
    label: str
    first_time: datetime
    last_time: datetime
    frames: int
    best_score: float
    best_x1: float
    best_y1: float
    best_x2: float
    best_y2: float
    snapshot_path: str | None = None


# ---------------------------------------------------------------------------- queries

FETCH_ROWS = 10_000
"""Rows fetched from the database at a time. The driver fetches a whole result in one call,
which Ctrl-C cannot interrupt: millions of rows (`query --all`) took many seconds to stop."""


def query_detections(url: str, q: DetectionQuery) -> list[DetectionRecord]:
    """Detections matching `q`, ordered by time then id.

    Raises QueryError when the database cannot be opened or has no detections table;
    a SQLite file that does not exist is reported, not created.
    """
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        stmt = _filtered(select(Detection), q).order_by(Detection.time, Detection.id)
        rows = session.scalars(_chunked(stmt.limit(q.limit))).all()
        return [_record(d) for d in rows]


def latest_detections(url: str, q: DetectionQuery) -> Page[DetectionRecord]:
    """The newest `q.limit` detections matching `q` (all without a limit), newest first,
    and how many match in all."""
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        total = session.scalar(_count_matching(q)) or 0
        rows = [_record(d) for d in session.scalars(_newest_first(q))]
        return Page(rows, int(total))


def stream_latest_detections(url: str, q: DetectionQuery) -> Streamed[DetectionRecord]:
    """The rows of `latest_detections`, read as they are iterated: for `query --all`, whose
    millions of rows would not fit in memory. Counted first, so that a database that cannot
    be read raises QueryError here, before any row is printed."""
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        total = session.scalar(_count_matching(q)) or 0
    return Streamed(_stream_newest_first(url, q), int(total))


def _stream_newest_first(url: str, q: DetectionQuery) -> Iterator[DetectionRecord]:
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        for d in session.scalars(_newest_first(q)):
            yield _record(d)


def _count_matching(q: DetectionQuery) -> Select[Any]:
    return _filtered(select(func.count(Detection.id)), q)


def _newest_first(q: DetectionQuery) -> Select[Any]:
    stmt = _filtered(select(Detection), q).order_by(Detection.time.desc(), Detection.id.desc())
    return _chunked(stmt.limit(q.limit))


def latest_run(url: str) -> int | None:
    """The id of the run that started last; None when no run is stored."""
    with existing_database(DatabaseUrl(url)) as engine, engine.connect() as conn:
        found = conn.scalar(select(Run.id).order_by(Run.started_at.desc(), Run.id.desc()).limit(1))
    return None if found is None else int(found)


def run_is_stored(url: str, run: int) -> bool:
    """Whether the database holds the run with id `run`."""
    with existing_database(DatabaseUrl(url)) as engine, engine.connect() as conn:
        return conn.scalar(select(Run.id).where(Run.id == run)) is not None


@dataclass(frozen=True)
class StoredRuns:
    """How many runs a database holds, and their lowest and highest ids (None without runs)."""

    count: int
    lowest: int | None
    highest: int | None


def stored_runs(url: str) -> StoredRuns:
    """How many runs the database holds, and the span of their ids."""
    with existing_database(DatabaseUrl(url)) as engine, engine.connect() as conn:
        count, lowest, highest = conn.execute(
            select(func.count(Run.id), func.min(Run.id), func.max(Run.id))
        ).one()
    return StoredRuns(int(count), lowest, highest)


def list_runs(url: str, limit: int | None = None) -> Page[RunRecord]:
    """The last `limit` runs (all without one), newest first, with their detections and
    tracks counted, and how many runs are stored."""
    detections = _count_per_run(Detection)
    tracks = _count_per_run(Track)
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        # an older runs table lacks the reason: read as NULL
        columns = {c["name"] for c in inspect(engine).get_columns(Run.__tablename__)}
        reason = Run.reason if "reason" in columns else null().label("reason")
        stmt = (
            select(Run.id, Run.started_at, Run.ended_at, Run.status, Run.config, Run.hostname,
                   detections.c.n, tracks.c.n, reason)
            .outerjoin(detections, detections.c.run_id == Run.id)
            .outerjoin(tracks, tracks.c.run_id == Run.id)
            .order_by(Run.started_at.desc(), Run.id.desc())
            .limit(limit)
        )  # fmt: skip
        total = session.scalar(select(func.count(Run.id))) or 0
        rows = [
            RunRecord(i, started, ended, status, config, host, d or 0, t or 0, why)
            for i, started, ended, status, config, host, d, t, why in session.execute(stmt)
        ]
    return Page(rows, int(total))


def list_tracks(url: str, q: DetectionQuery) -> Page[TrackRecord]:
    """The finished tracks of run `q.run` (of every run when None) matching `q.camera`,
    `q.label` and `q.min_score` (their best score); the last `q.limit` to end (all without a
    limit), newest first, and how many match in all."""
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        tracks = _TrackSelect(engine, q)
        total = session.scalar(tracks.count) or 0
        rows = [_track_record(t, tracks.snapshots) for t in session.scalars(tracks.rows)]
    return Page(rows, int(total))


def stream_tracks(url: str, q: DetectionQuery) -> Streamed[TrackRecord]:
    """The rows of `list_tracks`, read as they are iterated (see `stream_latest_detections`)."""
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        total = session.scalar(_TrackSelect(engine, q).count) or 0
    return Streamed(_stream_tracks(url, q), int(total))


def _stream_tracks(url: str, q: DetectionQuery) -> Iterator[TrackRecord]:
    with existing_database(DatabaseUrl(url)) as engine, Session(engine) as session:
        tracks = _TrackSelect(engine, q)
        for t in session.scalars(tracks.rows):
            yield _track_record(t, tracks.snapshots)


class _TrackSelect:
    """The statements of `list_tracks`: its rows (only the columns shown, of those the
    table has: an older one lacks the snapshots'), and their count."""

    def __init__(self, engine: Engine, q: DetectionQuery) -> None:
        conditions = [
            column == value
            for column, value in ((Track.run_id, q.run), (Track.camera, q.camera))
            if value is not None
        ]
        if q.label is not None:
            conditions.append(label_is(Track.label, q.label))
        if q.min_score is not None:
            conditions.append(Track.best_score >= q.min_score)
        self.snapshots = "snapshot_path" in {
            c["name"] for c in inspect(engine).get_columns(Track.__tablename__)
        }
        shown = [
            Track.run_id, Track.camera, Track.track_id, Track.label, Track.first_time,
            Track.last_time, Track.frames, Track.best_score, Track.best_x1, Track.best_y1,
            Track.best_x2, Track.best_y2,
        ]  # fmt: skip
        if self.snapshots:
            shown.append(Track.snapshot_path)
        stmt = (
            select(Track)
            .options(load_only(*shown))
            .where(*conditions)
            .order_by(Track.last_time.desc(), Track.id.desc())
        )
        self.rows = _chunked(stmt.limit(q.limit))
        self.count = select(func.count(Track.id)).where(*conditions)


def _count_per_run(model: type[Detection] | type[Track]) -> Any:
    return select(model.run_id, func.count().label("n")).group_by(model.run_id).subquery()


def count_detections(url: str, q: DetectionQuery, by: CountBy) -> list[CountRow]:
    """Detections matching `q` (its `limit` ignored) counted per label, camera or run.

    `tracks` counts the distinct confirmed tracks among them. Ordered by detections, most
    first, then by key.
    """
    if by not in COUNT_BY:
        raise ValueError(f"cannot count by {by!r}; choose from {', '.join(COUNT_BY)}")
    column: Any = {"label": Detection.label, "camera": Detection.camera, "run": Detection.run_id}[
        by
    ]
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
    with existing_database(DatabaseUrl(url)) as engine, engine.connect() as conn:
        detections = {str(k): int(n) for k, n in conn.execute(detections_stmt)}
        tracks = {str(k): int(n) for k, n in conn.execute(tracks_stmt)}
    rows = [CountRow(k, n, tracks.get(k, 0)) for k, n in detections.items()]
    return sorted(rows, key=lambda r: (-r.detections, r.key))


def _filtered(stmt: Select[Any], q: DetectionQuery) -> Select[Any]:
    if q.camera is not None:
        stmt = stmt.where(Detection.camera == q.camera)
    if q.label is not None:
        stmt = stmt.where(label_is(Detection.label, q.label))
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


def _track_record(t: Track, snapshots: bool) -> TrackRecord:
    """`t` as a record; `snapshots`: whether its table has the snapshot columns."""
    return TrackRecord(
        t.run_id,
        t.camera,
        t.track_id,
        t.label,
        t.first_time,
        t.last_time,
        t.frames,
        t.best_score,
        t.best_x1,
        t.best_y1,
        t.best_x2,
        t.best_y2,
        t.snapshot_path if snapshots else None,
    )


def _chunked(stmt: Select[Any]) -> Select[Any]:
    """`stmt` fetched `FETCH_ROWS` at a time, so that Ctrl-C stops it between two fetches."""
    return stmt.execution_options(yield_per=FETCH_ROWS)
