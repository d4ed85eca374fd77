"""Where a camera taken over from a dead shard resumes: after the last frame whose rows
are in the database, with its events continuing the `seq` its subscribers last saw.

The new shard processes the file again from its start (the tracker then finds the same
tracks), and hands the database and the event bus only the frames they do not have yet,
and the database only the ended tracks it does not have yet (a track's row is written
apart from its frames' rows, so the frame a track ended at says nothing about its row).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipeline.types import (
    CameraStatus,
    Detections,
    FrameResult,
    RunOutcome,
    StreamEnd,
    StreamInfo,
    TrackEvent,
)
from sinks.base import Sink, SinkError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    """A file camera's state when its shard died: the last frame whose rows are stored
    and the last one whose events were published (-1: none), its next event's `seq`, and
    the ids of its tracks whose rows are stored."""

    stored_through: int = -1
    published_through: int = -1
    next_seq: int = 0
    stored_tracks: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Stored:
    """What the database holds of a camera: its last frame with rows (-1: none) and the
    ids of its tracks with a row."""

    through: int = -1
    tracks: frozenset[int] = field(default_factory=frozenset)


class ResumeSink(Sink):
    """Passes `inner` only the frames it lacks: those after each camera's last frame it
    has (`through`); everything else (stream start and end, camera status) as it comes.

    With `tracks` (the database: each camera's tracks it has), the ended tracks it lacks
    are passed whatever frame they ended at (in a frame of no boxes when it has that
    frame), and those it has are not passed again.
    """

    def __init__(
        self,
        inner: Sink,
        through: dict[str, int],
        tracks: dict[str, frozenset[int]] | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.wants_every_frame = inner.wants_every_frame  # type: ignore[misc]
        self._through = dict(through)
        self._tracks = tracks

    def start(self, info: StreamInfo) -> None:
        self.inner.start(info)

    def write(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        events = self._lacking(camera, result.track_events)
        if result.frame.index > self._through.get(camera, -1):
            same = events is result.track_events
            self.inner.write(result if same else dataclasses.replace(result, track_events=events))
        elif self._tracks is not None and any(e.kind == "ended" for e in events):
            ended = tuple(e for e in events if e.kind == "ended")
            self.inner.write(
                dataclasses.replace(
                    result, detections=Detections.empty(), track_events=ended, analytics=()
                )
            )

    def end(self, stream_end: StreamEnd) -> None:
        events = self._lacking(stream_end.camera_id, stream_end.track_events)
        same = events is stream_end.track_events
        self.inner.end(stream_end if same else dataclasses.replace(stream_end, track_events=events))

    def _lacking(self, camera: str, events: tuple[TrackEvent, ...]) -> tuple[TrackEvent, ...]:
        """`events` less the ended tracks whose rows `inner` has."""
        stored = self._tracks.get(camera, frozenset()) if self._tracks is not None else None
        if not stored:
            return events
        return tuple(e for e in events if not (e.kind == "ended" and e.track.track_id in stored))

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


def stored_rows(url: str, run_configs_like: str, cameras: Sequence[str]) -> dict[str, Stored]:
    """What the database at `url` holds of each camera (`Stored`), among the runs whose
    `config` matches `run_configs_like` (the shards of one cluster run).
    A frame without detections has no rows: resuming after the last one with rows stores
    nothing twice and loses nothing. Raises SinkError when the database cannot be read
    (resuming blind would store the camera's frames twice)."""
    from sqlalchemy import bindparam, text
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.sql.database import DatabaseUrl, make_engine, reason

    frames = text(
        "SELECT d.camera, max(d.frame) FROM detections d JOIN runs r ON r.id = d.run_id "
        "WHERE r.config LIKE :runs AND d.camera IN :cameras GROUP BY d.camera"
    ).bindparams(bindparam("cameras", expanding=True))
    tracks = text(
        "SELECT t.camera, t.track_id FROM tracks t JOIN runs r ON r.id = t.run_id "
        "WHERE r.config LIKE :runs AND t.camera IN :cameras"
    ).bindparams(bindparam("cameras", expanding=True))
    where = {"runs": run_configs_like, "cameras": list(cameras)}
    db = DatabaseUrl(url)
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            through = {str(c): int(f) for c, f in conn.execute(frames, where)}
            stored: dict[str, set[int]] = {}
            for camera, track_id in conn.execute(tracks, where):
                stored.setdefault(str(camera), set()).add(int(track_id))
    except SQLAlchemyError as exc:
        raise SinkError(
            f"sql sink: cannot read what {db} holds of cameras {', '.join(cameras)} to "
            f"resume them on another shard: {reason(exc, db)}"
        ) from exc
    finally:
        engine.dispose()
    return {c: Stored(through.get(c, -1), frozenset(stored.get(c, ()))) for c in cameras}


def mark_lost(url: str, run_config: str, why: str) -> None:
    """Records in the database at `url` that the run of `run_config` (a dead shard's) is
    over: status `lost`, ended now, `why` as its reason. A database it cannot reach is
    logged, not raised: the cameras move on all the same."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.sql.database import DatabaseUrl, make_engine, reason

    db = DatabaseUrl(url)
    engine = make_engine(db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE runs SET status = 'lost', ended_at = :now, reason = :why "
                    "WHERE config = :config AND status = 'running'"
                ),
                {"now": datetime.now(timezone.utc), "why": why, "config": run_config},
            )
    except SQLAlchemyError as exc:
        log.warning("cannot mark the run of %s lost in %s: %s", run_config, db, reason(exc, db))
    finally:
        engine.dispose()
