"""`SnapshotSink`: the snapshot folder of a run: its retention, and the count of the
snapshots written and lost.

The pipeline's snapshot stage has each ended track's snapshot written (`SnapshotWriter`, on
`SnapshotWriterThread`) before the track's event and rows go out, and marks it `lost` when
it could not be, or not in time; this
sink deletes old files by `Retention` (at the start, then at most every
`prune_interval_s`, and at the end) and counts.

A full disk does not stop the sink, nor any other: the snapshots it has no room for are
lost and counted, writing resumes once the disk has room, and the run ends with one line
saying how many were lost and which file system is full. A disk that does not answer in
time is counted alike. Another write error stops this sink alone, with one line naming the
file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.types import FrameResult, HeldTrackEvents, Snapshot, StreamEnd, TrackEvent
from sinks.base import Sink, SinkError
from sinks.disk import open_folder, write_failure
from sinks.snapshots.retention import Retention, prune_snapshots

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 60.0
"""Retention runs at the start, at the end, and at most this often in between."""


class SnapshotSink(Sink):
    """The snapshot folder `directory`: `retention` says which files to keep."""

    name = "snapshots"

    def __init__(
        self,
        directory: Path,
        *,
        retention: Retention | None = None,
        prune_interval_s: float = PRUNE_INTERVAL_S,
    ) -> None:
        self.directory = Path(directory)
        self.retention = retention or Retention()
        self.prune_interval_s = prune_interval_s
        self._pruned_at = -float("inf")
        self.written = 0
        """Snapshots written (a crop with its whole frame counts once)."""
        self.lost = 0
        """Snapshots not written for want of room or in time (marked `lost` by the
        snapshot stage)."""
        self._loss_reason = ""
        self.deleted: list[Path] = []
        """Files removed by retention during this run."""
        open_folder(self.directory, self.name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = write_failure(exc, self.directory)
            raise SinkError(f"snapshots sink: cannot create {self.directory}: {why}") from exc
        self._prune()

    def describe(self) -> str:
        lost = f", {self.lost} lost ({self._loss_reason})" if self.lost else ""
        pruned = f", {len(self.deleted)} old files deleted" if self.deleted else ""
        return f"snapshots {self.directory}: {self.written} written{lost}{pruned}"

    def write(self, result: FrameResult) -> None:
        self._save_all(result.track_events)

    def held_events(self, held: HeldTrackEvents) -> None:
        self._save_all(held.track_events)

    def end(self, stream_end: StreamEnd) -> None:
        self._save_all(stream_end.track_events)

    def close(self) -> None:
        """Apply retention once more; raises a one-line SinkError if snapshots were lost."""
        self._prune()
        if self.lost:
            raise SinkError(f"snapshots sink: {self.lost} snapshots lost: {self._loss_reason}")

    # -------------------------------------------------------------------- internals

    def _save_all(self, events: tuple[TrackEvent, ...]) -> None:
        saved = False
        for event in events:
            if event.snapshot is not None:
                saved = self._count(event.snapshot) or saved
        if saved and time.monotonic() - self._pruned_at >= self.prune_interval_s:
            self._prune()

    def _count(self, snapshot: Snapshot) -> bool:
        """Count a snapshot the stage wrote or lost; True when written. A loss whose cause
        does not pass (not a full disk nor one that did not answer) stops the sink."""
        if snapshot.lost is None:
            self.written += 1
            return True
        if not snapshot.lost.transient:
            raise SinkError(f"snapshots sink: {snapshot.lost.reason}")
        self.lost += 1
        self._loss_reason = snapshot.lost.reason
        return False

    def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        self.deleted += prune_snapshots(self.directory, self.retention)
