"""Which cameras' streams have ended, as their shard told the coordinator: a camera whose
stream ended is not moved off a shard that dies (docs/cluster.md) — decoding it again
elsewhere would send nothing. Each shard tallies its cameras' streams itself
(`StreamTally`, a sink of its own beside the configured ones), whatever sinks the config
has. The sinks the driver can look into must have the end too: with an event bus, its
subscribers the `stream.ended`; with a database, a file camera every row its stream
announced (the dead shard may have ended it while its rows were still on their way).
Else the camera is moved and resumed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from pipeline.cluster.resume import Stored, stored_rows
from pipeline.summary import CameraStats
from pipeline.types import AnalyticsEvent, FrameResult, StreamEnd, TrackEvent
from sinks.base import Sink
from sinks.sql.scene_rows import scene_key


@dataclass(frozen=True)
class Ended:
    """A camera's stream as its shard had it once it ended (so far, while it runs): the
    frames it delivered (counted by its end), why it ended early (None: it did not), the
    last frame with boxes (-1: none), and how many tracks, zone visits and line crossings
    ended in it (the rows a database holds of it)."""

    frames: int = 0
    error: str | None = None
    last_boxed: int = -1
    tracks: int = 0
    scene: int = 0

    def stored_in(self, stored: Stored) -> bool:
        """Whether `stored` (what the database holds of the camera) has every row."""
        return (
            stored.through >= self.last_boxed
            and len(stored.tracks) >= self.tracks
            and len(stored.scene) >= self.scene
        )


class StreamTally(Sink):
    """Counts each camera's stream as a database stores it (its last frame with boxes,
    its ended tracks, zone visits and line crossings) and tells `on_ended` its `Ended`
    when it ends; a shard runs one beside its sinks, in a worker of its own."""

    name = "stream tally"

    def __init__(self, on_ended: Callable[[str, Ended], None]) -> None:
        self._on_ended = on_ended
        self._counts: dict[str, Ended] = {}
        """Each camera's counts so far, its end's frames and error not known yet."""

    def write(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        counts = self._counted(camera, result.track_events, result.analytics)
        if len(result.detections):
            counts = dataclasses.replace(counts, last_boxed=result.frame.index)
        self._counts[camera] = counts

    def end(self, stream_end: StreamEnd) -> None:
        camera = stream_end.camera_id
        counts = self._counted(camera, stream_end.track_events, stream_end.analytics)
        self._counts.pop(camera, None)
        ended = dataclasses.replace(counts, frames=stream_end.frames, error=stream_end.error)
        self._on_ended(camera, ended)

    def close(self) -> None:
        """Nothing to release."""

    def _counted(
        self, camera: str, events: tuple[TrackEvent, ...], analytics: tuple[AnalyticsEvent, ...]
    ) -> Ended:
        """The camera's counts with the ended tracks of `events` and the zone visits and
        line crossings of `analytics` (those a database stores a row of)."""
        counts = self._counts.get(camera, Ended())
        tracks = sum(e.kind == "ended" for e in events)
        scene = sum(scene_key(a) is not None for a in analytics)
        return dataclasses.replace(
            counts, tracks=counts.tracks + tracks, scene=counts.scene + scene
        )


def ended_cameras(
    cameras: Sequence[str],
    ends: Mapping[str, Ended],
    on_bus: Container[str] | None,
    live: Mapping[str, bool],
    sql_url: str | None,
    runs_like: str,
    stop: threading.Event | None = None,
) -> dict[str, Ended]:
    """Those of `cameras` whose stream ended (`ends`, as their shard told) and that need
    not move: with an event bus, one whose `stream.ended` it passed on (`on_bus`; None:
    no bus); then a live one (moved, it would start a new stream), or a file one whose
    rows the database at `sql_url` (among the runs whose config matches `runs_like`) all
    holds, when there is one. Raises SinkError when the database cannot be read, and
    StoppedWaiting when the run's `stop` ends the wait for it (`stored_rows`)."""
    ended = {c: ends[c] for c in cameras if c in ends and (on_bus is None or c in on_bus)}
    files = [c for c in ended if not live[c]]
    if sql_url is None or not files:
        return ended
    stored = stored_rows(sql_url, runs_like, files, stop)
    return {c: e for c, e in ended.items() if live[c] or e.stored_in(stored[c])}


def final_stats(camera_id: str, ended: Ended, last: CameraStats | None, source: str) -> CameraStats:
    """A camera's counts for the summary when it ended on a shard that died since: the
    last ones the shard reported (`last`), with the frames and error of its end."""
    stats = last if last is not None else CameraStats(camera_id, source)
    error = stats.error
    if error is None and ended.error is not None:
        error = f"camera {camera_id}: {ended.error}"
    return dataclasses.replace(
        stats, frames=ended.frames, opened=stats.opened or ended.frames > 0, error=error
    )
