"""Which cameras' streams have ended, as the driver's event forwarder passed their events
on: a camera whose `stream.ended` subscribers have is not moved off a shard that dies
(docs/cluster.md) — decoding it again elsewhere would send nothing. With a database, a
file camera also needs every row its events announced stored (the dead shard may have
sent its end while its rows were still on their way): else it is moved and resumed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.cluster.resume import Stored, stored_rows
from pipeline.summary import CameraStats
from sinks.event_bus.schema import DETECTIONS, LINE_CROSSED, STREAM_ENDED, TRACK_ENDED, ZONE_LEFT


@dataclass(frozen=True)
class Ended:
    """A camera's stream as subscribers have it once it ended (so far, while it runs): the
    frames it delivered (counted by its end), why it ended early (None: it did not), the
    last frame whose `detections` had boxes (-1: none), and how many tracks, zone visits
    and line crossings ended in it (the rows a database holds of it)."""

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


class StreamEnds:
    """Follows each camera's events as the forwarder passes them on (`seen`, from one
    thread); `ended` holds the cameras whose `stream.ended` was passed on."""

    def __init__(self) -> None:
        self.ended: dict[str, Ended] = {}
        self._counts: dict[str, Ended] = {}
        """Each camera's counts so far, its end's frames and error not known yet."""

    def seen(self, body: Mapping[str, Any]) -> None:
        """Counts one event (a JSON body with `type`, `camera` and `frame`)."""
        camera, kind = body["camera"], body["type"]
        counts = self._counts.get(camera, Ended())
        if kind == DETECTIONS and body.get("objects"):
            counts = dataclasses.replace(counts, last_boxed=int(body["frame"]))
        elif kind == TRACK_ENDED:
            counts = dataclasses.replace(counts, tracks=counts.tracks + 1)
        elif kind in (ZONE_LEFT, LINE_CROSSED):
            counts = dataclasses.replace(counts, scene=counts.scene + 1)
        elif kind == STREAM_ENDED:
            self.ended[camera] = dataclasses.replace(
                counts, frames=int(body.get("frames") or 0), error=body.get("error")
            )
        self._counts[camera] = counts


def ended_cameras(
    cameras: Sequence[str],
    ends: Mapping[str, Ended],
    live: Mapping[str, bool],
    sql_url: str | None,
    runs_like: str,
) -> dict[str, Ended]:
    """Those of `cameras` whose stream ended (`ends`) and that need not move: a live one
    (moved, it would start a new stream), or a file one whose rows the database at
    `sql_url` (among the runs whose config matches `runs_like`) all holds, when there is
    one. Raises SinkError when the database cannot be read."""
    ended = {c: ends[c] for c in cameras if c in ends}
    files = [c for c in ended if not live[c]]
    if sql_url is None or not files:
        return ended
    stored = stored_rows(sql_url, runs_like, files)
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
