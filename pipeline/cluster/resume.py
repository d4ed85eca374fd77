"""Where a camera taken over from a dead shard resumes: after the last frame whose rows
are in the database, with its events continuing the `seq` its subscribers last saw.

The new shard processes the file again from its start (the tracker then finds the same
tracks), and hands the database and the event bus only the frames they do not have yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.types import CameraStatus, FrameResult, RunOutcome, StreamEnd, StreamInfo
from sinks.base import Sink, SinkError


@dataclass(frozen=True)
class Resume:
    """A file camera's state when its shard died: the last frame whose rows are stored
    and the last one whose events were published (-1: none), and its next event's `seq`."""

    stored_through: int = -1
    published_through: int = -1
    next_seq: int = 0


class ResumeSink(Sink):
    """Passes `inner` only the frames it lacks: those after each camera's last frame it
    has (`through`); everything else (stream start and end, camera status) as it comes."""

    def __init__(self, inner: Sink, through: dict[str, int]) -> None:
        self.inner = inner
        self.name = inner.name
        self.wants_every_frame = inner.wants_every_frame  # type: ignore[misc]
        self._through = dict(through)

    def start(self, info: StreamInfo) -> None:
        self.inner.start(info)

    def write(self, result: FrameResult) -> None:
        if result.frame.index > self._through.get(result.frame.camera_id, -1):
            self.inner.write(result)

    def end(self, stream_end: StreamEnd) -> None:
        self.inner.end(stream_end)

    def status(self, status: CameraStatus) -> None:
        self.inner.status(status)

    def run_ended(self, outcome: RunOutcome) -> None:
        self.inner.run_ended(outcome)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()

    def start_line(self) -> str:
        return self.inner.start_line()


def prepare_database(url: str) -> None:
    """Creates the tables before the shards start (shards creating them at once collide);
    raises SinkError, as the SQL sink would, when the database cannot be opened."""
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.sql.database import DatabaseUrl, create_schema, make_engine, open_failure

    db = DatabaseUrl(url)
    try:
        engine = make_engine(db)
        try:
            create_schema(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SinkError(f"sql sink: cannot open database {db}: {open_failure(exc, db)}") from exc


def stored_through(url: str, run_configs_like: str, cameras: Sequence[str]) -> dict[str, int]:
    """Each camera's last frame with rows in the database at `url`, among the runs whose
    `config` matches `run_configs_like` (the shards of one cluster run); -1 for none.
    A frame without detections has no rows: resuming after the last one with rows stores
    nothing twice and loses nothing."""
    from sqlalchemy import bindparam, create_engine, text

    query = text(
        "SELECT d.camera, max(d.frame) FROM detections d JOIN runs r ON r.id = d.run_id "
        "WHERE r.config LIKE :runs AND d.camera IN :cameras GROUP BY d.camera"
    ).bindparams(bindparam("cameras", expanding=True))
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"runs": run_configs_like, "cameras": list(cameras)})
            found = {str(camera): int(frame) for camera, frame in rows}
    finally:
        engine.dispose()
    return {camera: found.get(camera, -1) for camera in cameras}
