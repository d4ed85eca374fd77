"""Builders and readers shared by the SQL tests: frames of boxes, track summaries, runs,
and the rows a database holds."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    TrackEvent,
    TrackSummary,
)
from sinks.sql.models import Detection, Run, Track
from sinks.sql.query import DetectionRecord
from sinks.sql.sink import SqlSink

LABELS = LabelMap(("background", "person", "car"))
PERSON, CAR = 1, 2
T0 = 1_700_000_000.0  # a Unix time; every offset below is exact in binary and in microseconds
DAY = 86_400.0


@contextmanager
def write_locked(database: Path) -> Iterator[None]:
    """The SQLite file write-locked by another connection, as a long-running writer in
    another program holds it: an insert waits (busy), then fails as locked."""
    locker = sqlite3.connect(database, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("COMMIT")
        locker.close()


class RetryDelays(TypedDict):
    """`SqlSink`'s retry keywords."""

    retry_initial_s: float
    retry_max_s: float


FAST_RETRY = RetryDelays(retry_initial_s=0.05, retry_max_s=0.2)


@dataclass(frozen=True)
class Box:
    """One detection as the test gives it."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: int
    track_id: int = -1


def frame_result(
    camera: str,
    index: int,
    wall_time: float,
    boxes: list[Box],
    events: tuple[TrackEvent, ...] = (),
) -> FrameResult:
    frame = Frame(
        camera_id=camera,
        index=index,
        pts=index / 25,
        wall_time=wall_time,
        image=np.zeros((4, 6, 3), np.uint8),
    )
    dets = Detections(
        xyxy=np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], np.float32).reshape(-1, 4),
        score=np.array([b.score for b in boxes], np.float32),
        label=np.array([b.label for b in boxes], np.int64),
        track_id=np.array([b.track_id for b in boxes], np.int64),
    )
    return FrameResult(frame=frame, detections=dets, track_events=events)


def summary(camera: str, track_id: int, first_frame: int, last_frame: int) -> TrackSummary:
    return TrackSummary(
        camera_id=camera,
        track_id=track_id,
        label=1,
        first_frame=first_frame,
        last_frame=last_frame,
        first_time=T0 + first_frame * 0.5,
        last_time=T0 + last_frame * 0.5,
        frames=last_frame - first_frame + 1,
        best_score=0.875,
        best_box=(1.0, 2.0, 30.5, 40.25),
        last_box=(5.0, 6.0, 35.5, 44.25),
    )


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def read_all(url: str, model: type[Any]) -> list[Any]:
    """Every row of `model`'s table, in id order, read through a separate engine."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(model.__table__).order_by(model.id)).mappings())
    finally:
        engine.dispose()


def count(url: str, model: type[Any]) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model.__table__)) or 0)
    finally:
        engine.dispose()


def detection_key(camera: str, index: int, wall_time: float, b: Box) -> tuple[Any, ...]:
    """What a `detections` row must hold for box `b` of frame `index`."""
    return (
        camera,
        index,
        index / 25,
        utc(wall_time),
        LABELS.name(b.label),
        b.label,
        float(np.float32(b.score)),
        float(np.float32(b.x1)),
        float(np.float32(b.y1)),
        float(np.float32(b.x2)),
        float(np.float32(b.y2)),
        None if b.track_id < 0 else b.track_id,
    )


def record_key(r: DetectionRecord) -> tuple[Any, ...]:
    return (
        r.camera,
        r.frame,
        r.pts,
        r.time,
        r.label,
        r.label_id,
        r.score,
        r.x1,
        r.y1,
        r.x2,
        r.y2,
        r.track_id,
    )


def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                m.__tablename__: int(conn.scalar(select(func.count()).select_from(m)) or 0)
                for m in (Detection, Track, Run)
            }
    finally:
        engine.dispose()


def write_run(url: str, start: float, frames: dict[str, list[list[Box]]]) -> int:
    """One run: per camera, frames of boxes 1 s apart from `start`; one ended track each."""
    sink = SqlSink(url, LABELS, batch_size=7)
    for camera, boxes_per_frame in frames.items():
        for i, boxes in enumerate(boxes_per_frame):
            sink.write(frame_result(camera, i, start + i, boxes))
        n = len(boxes_per_frame)
        track = TrackSummary(
            camera_id=camera,
            track_id=1,
            label=PERSON,
            first_frame=0,
            last_frame=n - 1,
            first_time=start,
            last_time=start + n - 1,
            frames=n,
            best_score=0.9,
            best_box=(0.0, 0.0, 1.0, 1.0),
            last_box=(0.0, 0.0, 1.0, 1.0),
        )
        sink.end(StreamEnd(camera, len(boxes_per_frame), (TrackEvent("ended", track),)))
    sink.close()
    return sink.run_id


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def boxes(frame: int) -> list[Box]:
    return [Box(frame, k, frame + 10, k + 20, 0.5 + 0.1 * k, 1 + k % 2, k) for k in range(3)]


def write_frames(sink: SqlSink, frames: range, camera: str = "cam") -> None:
    for i in frames:
        sink.write(frame_result(camera, i, T0 + i * 0.04, boxes(i)))


def stored(url: str) -> list[tuple[Any, ...]]:
    """(run, camera, frame, obj, x1, track) of every stored detection, sorted."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    Detection.run_id,
                    Detection.camera,
                    Detection.frame,
                    Detection.obj,
                    Detection.x1,
                    Detection.track_id,
                )
            ).all()
    finally:
        engine.dispose()
    return sorted(tuple(r) for r in rows)


def expected(run_id: int, frames: range, camera: str = "cam") -> list[tuple[Any, ...]]:
    return sorted(
        (run_id, camera, i, k, float(i), b.track_id) for i in frames for k, b in enumerate(boxes(i))
    )


def run_status(url: str, run_id: int) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(select(Run.status).where(Run.id == run_id)))
    finally:
        engine.dispose()


def sqlite_full_error(tmp_path: Path) -> OperationalError:
    """The error SQLite gives when its file cannot grow (SQLITE_FULL), made by a page limit."""
    engine = create_engine(f"sqlite:///{tmp_path / 'tiny.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x BLOB)"))
        with pytest.raises(OperationalError) as info, engine.begin() as conn:
            conn.execute(text("PRAGMA max_page_count = 2"))  # what it holds already
            conn.execute(text("INSERT INTO t VALUES (zeroblob(100000))"))
        return info.value
    finally:
        engine.dispose()


def refuse_frame(url: str, frame: int) -> None:
    """A rule of the database's own: a detection row of `frame` is refused for good."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TRIGGER no_frame_{frame} BEFORE INSERT ON detections "
                f"WHEN NEW.frame = {frame} BEGIN SELECT RAISE(ABORT, 'frame {frame} refused'); END"
            )
        )
    engine.dispose()


def spooled_detection(run_id: int, frame: int, camera: str = "cam") -> dict[str, Any]:
    """A detection row of `camera` at `frame` (one frame a second from T0), as a spool
    file holds it."""
    return {
        "run_id": run_id,
        "camera": camera,
        "frame": frame,
        "obj": 0,
        "pts": frame / 25,
        "time": T0 + frame,
        "label": "person",
        "label_id": 1,
        "score": 0.5,
        "x1": 1.0,
        "y1": 2.0,
        "x2": 3.0,
        "y2": 4.0,
        "track_id": None,
    }
