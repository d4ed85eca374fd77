"""The SQL schema written by `SqlSink`: one `runs` row per pipeline run, one `detections`
row per box, one `tracks` row per finished track, one `zone_visits` row per finished visit
of a zone and one `line_crossings` row per crossing of a line. See docs/sql.md for the
column meanings.

Times are stored as UTC and read back as timezone-aware UTC datetimes on every backend
(SQLite has no time zones, so `UtcDateTime` converts on the way in and out).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from pipeline.types import CLASS_NAME_MAX, SCENE_NAME_MAX
from sinks.sql.bounds import CAMERA_MAX

RunStatus = Literal["running", "finished", "failed", "interrupted", "lost"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
"""`lost`: the run's process or node died and another run took its cameras over (a cluster
shard, docs/cluster.md); set by the coordinator, never by the run itself."""

# SQLite only auto-increments a column declared exactly "INTEGER PRIMARY KEY".
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A DateTime stored as UTC and always returned timezone-aware (UTC).

    Naive datetimes given to it (inserts or query bounds) are taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = (
            value.replace(tzinfo=timezone.utc)
            if value.tzinfo is None
            else value.astimezone(timezone.utc)
        )
        # SQLite's DATETIME text has no offset: store the UTC wall clock.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Run(Base):
    """One invocation of the pipeline."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in RUN_STATUSES) + ")", name="status"
        ),
        # SQLite otherwise hands the id of the newest run, once deleted (`retention`), to
        # the next run, and rows of the deleted run still in a spool would join that one.
        # (A runs table made before this keeps SQLite's reuse: SQLite cannot alter it.)
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[str] = mapped_column(Text, default="")
    hostname: Mapped[str] = mapped_column(String(255))
    # NULL unless the run was lost (why), and in rows of older versions
    reason: Mapped[str | None] = mapped_column(Text)


class Detection(Base):
    """One detected box in one frame (tracked or not)."""

    __tablename__ = "detections"
    __table_args__ = (
        # One row per box: a retried insert cannot add a row twice.
        UniqueConstraint("run_id", "camera", "frame", "obj"),
        Index(None, "camera", "time"),
        Index(None, "label", "time"),
        Index(None, "time"),
        Index(None, "run_id", "camera", "track_id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    camera: Mapped[str] = mapped_column(String(CAMERA_MAX))
    frame: Mapped[int] = mapped_column(Integer)
    obj: Mapped[int | None] = mapped_column(Integer)  # NULL only in rows of older versions
    pts: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    label: Mapped[str] = mapped_column(String(CLASS_NAME_MAX))
    label_id: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)


class Track(Base):
    """One confirmed track, written when it ended (expired or its stream ended)."""

    __tablename__ = "tracks"
    __table_args__ = (
        UniqueConstraint("run_id", "camera", "track_id"),
        Index(None, "camera", "first_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    camera: Mapped[str] = mapped_column(String(CAMERA_MAX))
    track_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(CLASS_NAME_MAX))
    label_id: Mapped[int] = mapped_column(Integer)
    first_frame: Mapped[int] = mapped_column(Integer)
    last_frame: Mapped[int] = mapped_column(Integer)
    first_time: Mapped[datetime] = mapped_column(UtcDateTime())
    last_time: Mapped[datetime] = mapped_column(UtcDateTime())
    frames: Mapped[int] = mapped_column(Integer)
    best_score: Mapped[float] = mapped_column(Float)
    best_x1: Mapped[float] = mapped_column(Float)
    best_y1: Mapped[float] = mapped_column(Float)
    best_x2: Mapped[float] = mapped_column(Float)
    best_y2: Mapped[float] = mapped_column(Float)
    last_x1: Mapped[float] = mapped_column(Float)
    last_y1: Mapped[float] = mapped_column(Float)
    last_x2: Mapped[float] = mapped_column(Float)
    last_y2: Mapped[float] = mapped_column(Float)
    # NULL without a snapshots sink, and in rows of older versions (docs/snapshots.md)
    snapshot_path: Mapped[str | None] = mapped_column(String(1024))
    snapshot_frame_path: Mapped[str | None] = mapped_column(String(1024))


class ZoneVisit(Base):
    """One visit of a track to a zone, written when it ended (`zone.left`): the track left,
    its track ended, or the stream ended with it inside (`at_stream_end`)."""

    __tablename__ = "zone_visits"
    __table_args__ = (
        UniqueConstraint("run_id", "camera", "zone", "track_id", "entered_frame"),
        Index(None, "camera", "zone", "entered_at"),
        Index(None, "entered_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    camera: Mapped[str] = mapped_column(String(CAMERA_MAX))
    zone: Mapped[str] = mapped_column(String(SCENE_NAME_MAX))
    track_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(CLASS_NAME_MAX))
    label_id: Mapped[int] = mapped_column(Integer)
    entered_frame: Mapped[int] = mapped_column(Integer)
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    left_frame: Mapped[int] = mapped_column(Integer)
    left_at: Mapped[datetime] = mapped_column(UtcDateTime())
    dwell_s: Mapped[float] = mapped_column(Float)
    at_stream_end: Mapped[bool] = mapped_column(Boolean)
    # the last frame the track was seen inside; NULL in rows of older versions
    last_frame: Mapped[int | None] = mapped_column(Integer)
    last_time: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LineCrossingRow(Base):
    """One crossing of a line by a track, in a named direction."""

    __tablename__ = "line_crossings"
    __table_args__ = (
        UniqueConstraint("run_id", "camera", "line", "track_id", "frame"),
        Index(None, "camera", "line", "time"),
        Index(None, "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    camera: Mapped[str] = mapped_column(String(CAMERA_MAX))
    line: Mapped[str] = mapped_column(String(SCENE_NAME_MAX))
    track_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(CLASS_NAME_MAX))
    label_id: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(SCENE_NAME_MAX))
    from_side: Mapped[str] = mapped_column(String(5))
    to_side: Mapped[str] = mapped_column(String(5))
    frame: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UtcDateTime())
