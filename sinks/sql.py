"""SQL output: detections, finished tracks and the run itself, in SQLite or PostgreSQL.

`SqlSink` writes while the pipeline runs; `query_detections` reads the rows back for the
`query` command. The schema lives in `sinks.sql_models` and is described in docs/sql.md.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, insert, inspect, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from pipeline.types import FrameResult, LabelMap, StreamEnd, TrackEvent
from sinks.base import Sink, SinkError
from sinks.sql_models import RUN_STATUSES, Base, Detection, Run, RunStatus, Track

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer or reader waits for another process's lock before failing."""


class QueryError(SinkError):
    """The database cannot be read (missing file, no tables yet, unreachable server)."""


# ---------------------------------------------------------------------------- engines


def mask_url(url: str) -> str:
    """`url` with its password replaced by '***', also when it is not a valid URL."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError, TypeError):
        return _mask_unparsable(url)


def _mask_unparsable(url: str) -> str:
    """Hide everything between the first ':' after "//" and the last '@'."""
    at = url.rfind("@")
    slashes = url.find("//")
    start = 0 if slashes < 0 else slashes + 2
    colon = url.find(":", start, at) if at >= 0 else -1
    return url if colon < 0 else f"{url[: colon + 1]}***{url[at:]}"


def _reason(exc: BaseException, url: str) -> str:
    """A one-line reason for `exc`, without the SQL statement or the password."""
    orig = getattr(exc, "orig", None)  # DBAPIError: the driver's own message is the useful one
    text = str(orig if orig is not None else exc) or type(exc).__name__
    text = text.replace(url, mask_url(url))
    try:
        password = make_url(url).password
    except (SQLAlchemyError, ValueError, TypeError):
        password = None
    if password:
        text = text.replace(str(password), "***")
    return " ".join(text.split())


def _open_failure(exc: BaseException, url: str) -> str:
    """Why `url` cannot be opened, with a hint on how to fix it."""
    reason = _reason(exc, url)
    if isinstance(exc, ImportError):
        return (
            f"database driver not installed ({reason}); install it, e.g. "
            "pip install 'psycopg[binary]' and use postgresql+psycopg://user@host/db"
        )
    if isinstance(exc, (NoSuchModuleError, ArgumentError, ValueError)):
        return f"{reason} ({_URL_FORMS})"
    return reason


_URL_FORMS = "expected e.g. sqlite:///out/detections.db or postgresql+psycopg://user@host/db"


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL points at; None for other backends and in-memory databases."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def _enable_sqlite_wal(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            # WAL lets `query` read while the pipeline writes; the timeout rides out the
            # short write locks instead of failing with "database is locked".
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()


def _make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL mode. Raises SQLAlchemyError / ImportError."""
    parsed = make_url(url)
    engine = create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    if parsed.get_backend_name() == "sqlite":
        _enable_sqlite_wal(engine)
    return engine


# ---------------------------------------------------------------------------- the sink


class SqlSink(Sink):
    """Writes every detection, every ended track and the run's own row to a SQL database.

    Detections are buffered and inserted `batch_size` rows at a time, each batch in its own
    transaction, so rows already written stay written if a later batch fails.
    """

    name = "sql"

    def __init__(
        self, url: str, labels: LabelMap, *, batch_size: int = 500, run_config: str = ""
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"SqlSink batch_size must be >= 1, got {batch_size}")
        self._url = mask_url(url)
        self._raw_url = url  # kept only to scrub the password out of driver messages
        self._labels = labels
        self._batch_size = batch_size
        self._detections: list[dict[str, Any]] = []
        self._tracks: list[dict[str, Any]] = []
        self._status: RunStatus = "finished"
        self._closed = False
        try:
            parsed = make_url(url)
            db_file = _sqlite_file(parsed)
            if db_file is not None:
                db_file.parent.mkdir(parents=True, exist_ok=True)
            self._engine = _make_engine(url)
        except (SQLAlchemyError, ImportError, OSError, ValueError) as exc:
            raise SinkError(
                f"sql sink: cannot open database {self._url}: {_open_failure(exc, url)}"
            ) from exc
        try:
            Base.metadata.create_all(self._engine)
            with Session(self._engine) as session, session.begin():
                run = Run(
                    started_at=datetime.now(timezone.utc),
                    status="running",
                    config=run_config,
                    hostname=socket.gethostname(),
                )
                session.add(run)
                session.flush()
                self.run_id: int = run.id
        except (SQLAlchemyError, ImportError) as exc:
            self._engine.dispose()
            raise SinkError(
                f"sql sink: cannot open database {self._url}: {_open_failure(exc, url)}"
            ) from exc

    def write(self, result: FrameResult) -> None:
        """Buffer one row per detection; insert when `batch_size` rows are waiting."""
        frame, dets = result.frame, result.detections
        time = datetime.fromtimestamp(frame.wall_time, tz=timezone.utc)
        boxes = dets.xyxy.tolist()
        for (x1, y1, x2, y2), score, label, track_id in zip(
            boxes, dets.score.tolist(), dets.label.tolist(), dets.track_id.tolist(), strict=True
        ):
            self._detections.append(
                {
                    "run_id": self.run_id,
                    "camera": frame.camera_id,
                    "frame": int(frame.index),
                    "pts": float(frame.pts),
                    "time": time,
                    "label": self._labels.name(label),
                    "label_id": label,
                    "score": score,
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                    "track_id": None if track_id < 0 else track_id,
                }
            )
        self._add_tracks(result.track_events)
        if len(self._detections) >= self._batch_size:
            self.flush()

    def end(self, stream_end: StreamEnd) -> None:
        """Record the tracks the stream's end closed, and write everything buffered."""
        self._add_tracks(stream_end.track_events)
        self.flush()

    def mark_status(self, status: RunStatus) -> None:
        """The status `close()` records: "finished" (default), "failed" or "interrupted"."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(
                f"run status must be one of finished, failed, interrupted; got {status!r}"
            )
        self._status = status

    def flush(self) -> None:
        """Insert all buffered detections and tracks (one transaction per batch).

        Raises SinkError naming the table when an insert fails; that batch is dropped.
        """
        while self._detections:
            batch = self._detections[: self._batch_size]
            del self._detections[: self._batch_size]
            self._insert(Detection, batch)
        if self._tracks:
            batch, self._tracks = self._tracks, []
            self._insert(Track, batch)

    def close(self, status: RunStatus | None = None) -> None:
        """Flush, record the run's end and status, and release the database. Idempotent.

        `status` overrides `mark_status`; a failed insert makes the default "failed".
        """
        if self._closed:
            return
        self._closed = True
        if status is not None:
            self.mark_status(status)
        try:
            try:
                self.flush()
            finally:
                self._finish_run()
        finally:
            self._engine.dispose()

    # -------------------------------------------------------------------- internals

    def _add_tracks(self, events: tuple[TrackEvent, ...]) -> None:
        for ev in events:
            if ev.kind != "ended":
                continue
            t = ev.track
            bx1, by1, bx2, by2 = t.best_box
            lx1, ly1, lx2, ly2 = t.last_box
            self._tracks.append(
                {
                    "run_id": self.run_id,
                    "camera": t.camera_id,
                    "track_id": t.track_id,
                    "label": self._labels.name(t.label),
                    "label_id": t.label,
                    "first_frame": t.first_frame,
                    "last_frame": t.last_frame,
                    "first_time": datetime.fromtimestamp(t.first_time, tz=timezone.utc),
                    "last_time": datetime.fromtimestamp(t.last_time, tz=timezone.utc),
                    "frames": t.frames,
                    "best_score": float(t.best_score),
                    "best_x1": float(bx1),
                    "best_y1": float(by1),
                    "best_x2": float(bx2),
                    "best_y2": float(by2),
                    "last_x1": float(lx1),
                    "last_y1": float(ly1),
                    "last_x2": float(lx2),
                    "last_y2": float(ly2),
                }
            )

    def _insert(self, model: type[Detection] | type[Track], rows: list[dict[str, Any]]) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(model), rows)
        except SQLAlchemyError as exc:
            self._status = "failed"
            raise SinkError(
                f"sql sink: cannot insert {len(rows)} rows into table {model.__tablename__} "
                f"of {self._url}: {_reason(exc, self._raw_url)}"
            ) from exc

    def _finish_run(self) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    update(Run)
                    .where(Run.id == self.run_id)
                    .values(ended_at=datetime.now(timezone.utc), status=self._status)
                )
        except SQLAlchemyError as exc:
            raise SinkError(
                f"sql sink: cannot record the end of run {self.run_id} in table runs "
                f"of {self._url}: {_reason(exc, self._raw_url)}"
            ) from exc


# ---------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class DetectionQuery:
    """Filters for `query_detections`; None means "any".

    `since` is inclusive and `until` exclusive; naive datetimes are taken as UTC.
    `label` is the class name (as in the `label` column), `track` a track id,
    `run` a `runs.id`, `limit` the number of rows to return (earliest first).
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
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"query limit must be >= 1, got {self.limit}")


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
        iso = (
            self.time.astimezone(timezone.utc)
            .replace(tzinfo=None)
            .isoformat(timespec="microseconds")
        )
        return {
            "id": self.id,
            "run_id": self.run_id,
            "camera": self.camera,
            "frame": self.frame,
            "pts": self.pts,
            "time": iso + "Z",
            "label": self.label,
            "label_id": self.label_id,
            "score": self.score,
            "x1": self.x1,
            "y1": self.y1,
            "x2": self.x2,
            "y2": self.y2,
            "track_id": self.track_id,
        }


def query_detections(url: str, q: DetectionQuery) -> list[DetectionRecord]:
    """Detections matching `q`, ordered by time then id.

    Raises QueryError when the database cannot be opened or has no detections table;
    a SQLite file that does not exist is reported, not created.
    """
    masked = mask_url(url)
    try:
        db_file = _sqlite_file(make_url(url))
        if db_file is not None and not db_file.is_file():
            raise QueryError(
                f"cannot query {masked}: database file {db_file} does not exist "
                "(run the pipeline with an sql output first, or check the path)"
            )
        engine = _make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise QueryError(f"cannot open database {masked}: {_open_failure(exc, url)}") from exc
    try:
        if not inspect(engine).has_table(Detection.__tablename__):
            raise QueryError(
                f"database {masked} has no detections table yet "
                "(run the pipeline with an sql output writing to it first)"
            )
        with Session(engine) as session:
            rows = session.scalars(_select_detections(q)).all()
            return [_record(d) for d in rows]
    except SQLAlchemyError as exc:
        raise QueryError(f"cannot read database {masked}: {_reason(exc, url)}") from exc
    finally:
        engine.dispose()


def _select_detections(q: DetectionQuery) -> Select[Any]:
    stmt = select(Detection)
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
    stmt = stmt.order_by(Detection.time, Detection.id)
    if q.limit is not None:
        stmt = stmt.limit(q.limit)
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
