"""Where a camera taken over from a dead shard resumes: after the last frame whose rows
are in the database, and after the last event its subscribers got, with its events
continuing the `seq` they last saw.

The new shard processes the file again from its start (the tracker then finds the same
tracks), and hands the database only the frames it does not have yet, and only the ended
tracks, zone visits and line crossings it does not have yet (their rows are written apart
from their frames' rows, so the frame one ended at says nothing about its row: each is
looked up by its key). The event bus gets only the events its subscribers lack, each known
by its own key (`sinks.event_bus.resumption`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pipeline.cluster.waits import unless_stopped
from pipeline.types import (
    AnalyticsEvent,
    Detections,
    FrameResult,
    HeldTrackEvents,
    StreamEnd,
    TrackEvent,
)
from sinks.base import ForwardingSink, Sink, SinkError
from sinks.event_bus.resumption import Published
from sinks.sql.scene_rows import SceneKey, scene_key

if TYPE_CHECKING:
    from sqlalchemy import TextClause

    from sinks.sql.database import DatabaseUrl

_Passed = TypeVar("_Passed", FrameResult, StreamEnd)
DATABASE_THREAD = "cluster-database"
"""The name of the thread that asks the database while the driver waits for it."""


@dataclass(frozen=True)
class Resume:
    """A camera's state when its shard died: the last frame whose rows are stored (-1:
    none), what its subscribers have of its events (a live camera's stream starts again:
    nothing), its next event's `seq`, the ids of its tracks whose rows are stored, and the
    keys of its stored zone visits and line crossings."""

    stored_through: int = -1
    published: Published = field(default_factory=Published)
    next_seq: int = 0
    stored_tracks: frozenset[int] = field(default_factory=frozenset)
    stored_scene: frozenset[SceneKey] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Stored:
    """What the database holds of a camera: its last frame with rows (-1: none), the ids
    of its tracks with a row, and the keys of its zone visits and line crossings."""

    through: int = -1
    tracks: frozenset[int] = field(default_factory=frozenset)
    scene: frozenset[SceneKey] = field(default_factory=frozenset)


class ResumeSink(ForwardingSink):
    """Passes `inner` only the frames it lacks: those after each camera's last frame it
    has (`through`); everything else (stream start and end, camera status) as it comes.

    With `tracks` and `scene` (the database: each camera's tracks, and the keys of its
    zone visits and line crossings, it has), the ended tracks, visits and crossings it
    lacks are passed whatever frame they happened at (in a frame of no boxes when it has
    that frame), and those it has are not passed again.
    """

    def __init__(
        self,
        inner: Sink,
        through: dict[str, int],
        tracks: dict[str, frozenset[int]] | None = None,
        scene: dict[str, frozenset[SceneKey]] | None = None,
    ) -> None:
        super().__init__(inner)
        self._through = dict(through)
        self._rows_apart = tracks is not None or scene is not None
        self._tracks = tracks or {}
        self._scene = scene or {}
        self._last: dict[str, int] = {}  # each camera's last frame given

    def write(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        self._last[camera] = result.frame.index
        lacking = self._lacking(camera, result.track_events, result.analytics)
        if result.frame.index > self._through.get(camera, -1):
            self.inner.write(_with(result, *lacking))
        elif self._rows_apart:
            events, analytics = lacking
            ended = tuple(e for e in events if e.kind == "ended")
            rows = tuple(a for a in analytics if scene_key(a) is not None)
            if ended or rows:
                self.inner.write(
                    dataclasses.replace(
                        result, detections=Detections.empty(), track_events=ended, analytics=rows
                    )
                )

    def held_events(self, held: HeldTrackEvents) -> None:
        """Held events go out between the camera's last frame and its next: passed as the
        next frame's would be (that frame is after `through` when the last one is not
        before it), or, with the rows apart, those whose rows `inner` lacks."""
        camera = held.camera_id
        if self._last.get(camera, -1) >= self._through.get(camera, -1) or self._rows_apart:
            events, _ = self._lacking(camera, held.track_events, ())
            if events:
                self.inner.held_events(dataclasses.replace(held, track_events=events))

    def end(self, stream_end: StreamEnd) -> None:
        lacking = self._lacking(stream_end.camera_id, stream_end.track_events, stream_end.analytics)
        self.inner.end(_with(stream_end, *lacking))

    def _lacking(
        self, camera: str, events: tuple[TrackEvent, ...], analytics: tuple[AnalyticsEvent, ...]
    ) -> tuple[tuple[TrackEvent, ...], tuple[AnalyticsEvent, ...]]:
        """`events` less the ended tracks whose rows `inner` has, and `analytics` less the
        zone visits and line crossings whose rows it has."""
        tracks = self._tracks.get(camera, frozenset())
        if tracks:
            events = tuple(
                e for e in events if not (e.kind == "ended" and e.track.track_id in tracks)
            )
        scene = self._scene.get(camera, frozenset())
        if scene:
            analytics = tuple(a for a in analytics if scene_key(a) not in scene)
        return events, analytics


def _with(
    item: _Passed, events: tuple[TrackEvent, ...], analytics: tuple[AnalyticsEvent, ...]
) -> _Passed:
    """`item` with `events` and `analytics`, which are its own or fewer (itself when none
    was left out)."""
    if len(events) == len(item.track_events) and len(analytics) == len(item.analytics):
        return item
    return dataclasses.replace(item, track_events=events, analytics=analytics)


def prepare_database(url: str, stop: threading.Event | None = None) -> None:
    """Creates the tables before the shards start (shards creating them at once collide);
    raises SinkError, as the SQL sink would, when the database cannot be opened. A set
    `stop` (the run's: Ctrl-C) ends the wait at once with SinkStopped, as it ends the SQL
    sink's opening (`open_unless_stopped`): a server that takes the connection and does not
    answer, or a SQLite file another program holds locked, is not waited out."""
    from sinks.sql.database import DatabaseUrl
    from sinks.sql.opening import open_unless_stopped

    db = DatabaseUrl(url)
    if stop is None:
        _make_tables(db)
    else:
        stopped = f"sql sink: the run stopped while preparing the database {db}"
        open_unless_stopped(lambda: _make_tables(db), stop, stopped)


def _make_tables(db: DatabaseUrl) -> None:
    """The pipeline's tables made in `db` where missing, as the SQL sink makes them
    (`open_database`); SinkError when it cannot be opened or is another program's."""
    from sinks.sql.database import SQLITE_BUSY_TIMEOUT_MS
    from sinks.sql.opening import open_database

    open_database(db, SQLITE_BUSY_TIMEOUT_MS).dispose()


def stored_rows(
    url: str,
    run_configs_like: str,
    cameras: Sequence[str],
    stop: threading.Event | None = None,
) -> dict[str, Stored]:
    """What the database at `url` holds of each camera (`Stored`: its last frame with
    rows, its tracks, zone visits and line crossings), among the runs whose
    `config` matches `run_configs_like` (the shards of one cluster run).
    A frame without detections has no rows: resuming after the last one with rows stores
    nothing twice and loses nothing. Raises SinkError when the database cannot be read
    (resuming blind would store the camera's frames twice), and StoppedWaiting when the
    run's `stop` ends the wait for a database that stopped answering (`unless_stopped`:
    no SQLAlchemy call cuts short a silent server, or a row another connection holds
    locked)."""
    return unless_stopped(
        lambda: _stored_rows(url, run_configs_like, cameras), stop, DATABASE_THREAD
    )


def _of_run_cameras(columns: str, table: str, tail: str = "") -> TextClause:
    """`columns` of the rows of `table` (as `x`) that the runs `:runs` matches stored for
    the cameras `:cameras` (a list)."""
    from sqlalchemy import bindparam, text

    return text(
        f"SELECT {columns} FROM {table} x JOIN runs r ON r.id = x.run_id "
        f"WHERE r.config LIKE :runs AND x.camera IN :cameras{tail}"
    ).bindparams(bindparam("cameras", expanding=True))


def _stored_rows(url: str, run_configs_like: str, cameras: Sequence[str]) -> dict[str, Stored]:
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.sql.database import DatabaseUrl, make_engine, reason

    frames = _of_run_cameras("x.camera, max(x.frame)", "detections", " GROUP BY x.camera")
    tracks = _of_run_cameras("x.camera, x.track_id", "tracks")
    visits = _of_run_cameras("x.camera, x.zone, x.track_id, x.entered_frame", "zone_visits")
    crossings = _of_run_cameras("x.camera, x.line, x.track_id, x.frame", "line_crossings")
    where = {"runs": run_configs_like, "cameras": list(cameras)}
    db = DatabaseUrl(url)
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            through = {str(c): int(f) for c, f in conn.execute(frames, where)}
            stored: dict[str, set[int]] = {}
            for camera, track_id in conn.execute(tracks, where):
                stored.setdefault(str(camera), set()).add(int(track_id))
            scene: dict[str, set[SceneKey]] = {}
            for kind, query in (("zone", visits), ("line", crossings)):
                for camera, shape, track_id, frame in conn.execute(query, where):
                    key = (kind, str(shape), int(track_id), int(frame))
                    scene.setdefault(str(camera), set()).add(key)
    except SQLAlchemyError as exc:
        raise SinkError(
            f"sql sink: cannot read what {db} holds of cameras {', '.join(cameras)} to "
            f"resume them on another shard: {reason(exc, db)}"
        ) from exc
    finally:
        engine.dispose()
    return {
        c: Stored(through.get(c, -1), frozenset(stored.get(c, ())), frozenset(scene.get(c, ())))
        for c in cameras
    }
