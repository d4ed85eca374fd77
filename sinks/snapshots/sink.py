"""`SnapshotSink`: the snapshot of every ended track, as JPEG files under one folder.

The pipeline's snapshot stage attaches a `Snapshot` (the crop of the track's best-scoring
detection, and the whole frame when asked) to each track's "ended" event; this sink
encodes and writes it at the name the stage gave it (`sinks.snapshot_files`), and deletes
old files by `Retention`, at the start and then at most every `prune_interval_s`.

A full disk does not stop the sink, nor any other: the snapshots it has no room for are
dropped and counted, it tries again once the disk has room, and the run ends with one line
saying how many were lost and which file system is full.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.types import FrameResult, Snapshot, StreamEnd, TrackEvent
from sinks.base import Sink, SinkError
from sinks.disk import RoomWatch, is_disk_full, write_failure
from sinks.snapshots.retention import Retention, prune_snapshots

log = logging.getLogger(__name__)

ROOM_TO_RESUME_BYTES = 1_000_000
"""Free space a full disk must have again before snapshots are written again."""
ROOM_CHECK_S = 1.0
"""While the disk is full, its free space is checked at most this often."""
PRUNE_INTERVAL_S = 60.0
"""Retention runs at the start, at the end, and at most this often in between."""


def encode_jpeg(image: npt.NDArray[np.uint8], quality: int) -> bytes:
    """An RGB image as JPEG bytes at OpenCV's `quality` (1-100)."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"cannot encode an image of shape {list(image.shape)} as JPEG")
    return bytes(data)


class SnapshotSink(Sink):
    """Writes the snapshots of ended tracks under `directory` as JPEG (`quality` 1-100).

    `retention` says which files to keep; `room_check_s` how often a full disk's free space
    is checked.
    """

    name = "snapshots"

    def __init__(
        self,
        directory: Path,
        *,
        quality: int = 90,
        retention: Retention | None = None,
        prune_interval_s: float = PRUNE_INTERVAL_S,
        room_check_s: float = ROOM_CHECK_S,
    ) -> None:
        if not 1 <= quality <= 100:
            raise ValueError(f"SnapshotSink quality must be in 1..100, got {quality}")
        self.directory = Path(directory)
        self.quality = quality
        self.retention = retention or Retention()
        self.prune_interval_s = prune_interval_s
        self._room = RoomWatch(
            self.directory, min_free_bytes=ROOM_TO_RESUME_BYTES, interval_s=room_check_s
        )
        self._pruned_at = -float("inf")
        self.written = 0
        """Snapshots written (a crop with its whole frame counts once)."""
        self.lost = 0
        """Snapshots not written for want of room."""
        self._loss_reason = ""
        self.deleted: list[Path] = []
        """Files removed by retention during this run."""
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
                saved = self._save(event.snapshot) or saved
        if saved and time.monotonic() - self._pruned_at >= self.prune_interval_s:
            self._prune()

    def _save(self, snapshot: Snapshot) -> bool:
        """Write the snapshot's files; False (and counted) when the disk has no room."""
        if not self._room.has_room():
            self.lost += 1
            return False
        files = [(snapshot.name, snapshot.crop)]
        if snapshot.frame is not None and snapshot.frame_name is not None:
            files.append((snapshot.frame_name, snapshot.frame))
        for name, image in files:
            path = self.directory / name
            try:
                _write_atomically(path, encode_jpeg(image, self.quality))
            except OSError as exc:
                why = write_failure(exc, path)
                if not is_disk_full(exc):
                    raise SinkError(f"snapshots sink: cannot write {path}: {why}") from exc
                self._room.full()
                self.lost += 1
                self._loss_reason = why
                log.warning(
                    "snapshots sink: cannot write %s: %s; snapshots are dropped (counted) "
                    "until it has %.0f MB free", path, why, ROOM_TO_RESUME_BYTES / 1e6,
                )
                return False
        self.written += 1
        return True

    def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        self.deleted += prune_snapshots(self.directory, self.retention)


def _write_atomically(path: Path, data: bytes) -> None:
    """`data` as the file `path`, whole or not at all (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
