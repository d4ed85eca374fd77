"""`SnapshotWriter`: a track's snapshot files, written as the track ends, before its event
and its SQL row go out, so that the paths they carry name files that exist.

It runs on the snapshot writer's thread (`writer_thread.SnapshotWriterThread`), for the
pipeline's snapshot stage (`pipeline.snapshots.SnapshotKeeper`): a crop is a few kB and a
fraction of a millisecond to encode and write. A full disk loses the snapshot (marked
`lost`, its paths then null where stored) and is retried once it has room; the snapshots
sink counts what was lost and says so in one line at the end of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.types import Snapshot, SnapshotLoss
from sinks.disk import RoomWatch, is_disk_full, write_failure

log = logging.getLogger(__name__)

ROOM_TO_RESUME_BYTES = 1_000_000
"""Free space a full disk must have again before snapshots are written again."""
ROOM_CHECK_S = 1.0
"""While the disk is full, its free space is checked at most this often."""


def encode_jpeg(image: npt.NDArray[np.uint8], quality: int) -> bytes:
    """An RGB image as JPEG bytes at OpenCV's `quality` (1-100)."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"cannot encode an image of shape {list(image.shape)} as JPEG")
    return bytes(data)


class SnapshotWriter:
    """Writes snapshots' files as JPEG (`quality` 1-100) at the names they carry, under
    their `directory`; `room_check_s`: how often a full disk's free space is checked."""

    def __init__(
        self, directory: Path, *, quality: int = 90, room_check_s: float = ROOM_CHECK_S
    ) -> None:
        if not 1 <= quality <= 100:
            raise ValueError(f"SnapshotWriter quality must be in 1..100, got {quality}")
        self.quality = quality
        self.directory = Path(directory)
        self._room = RoomWatch(
            Path(directory), min_free_bytes=ROOM_TO_RESUME_BYTES, interval_s=room_check_s
        )
        self._loss: SnapshotLoss | None = None  # the last disk-full loss, while it lasts

    def save(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot, its files written; or marked `lost` (and nothing half-written)
        when they could not be."""
        if not self._room.has_room() and self._loss is not None:
            return dataclasses.replace(snapshot, lost=self._loss)
        files: list[tuple[str, npt.NDArray[np.uint8] | bytes]] = [(snapshot.name, snapshot.crop)]
        if snapshot.frame is not None and snapshot.frame_name is not None:
            files.append((snapshot.frame_name, snapshot.frame))
        written: list[Path] = []
        for name, image in files:
            path = Path(snapshot.directory) / name
            data = image if isinstance(image, bytes) else encode_jpeg(image, self.quality)
            try:
                _write_atomically(path, data)
            except OSError as exc:
                for done in written:  # a crop without its frame is no snapshot either
                    done.unlink(missing_ok=True)
                return dataclasses.replace(snapshot, lost=self._lost(exc, path))
            written.append(path)
        self._loss = None
        return snapshot

    def _lost(self, exc: OSError, path: Path) -> SnapshotLoss:
        why = write_failure(exc, path)
        if not is_disk_full(exc):
            return SnapshotLoss(f"cannot write {path}: {why}", transient=False)
        self._room.full()
        self._loss = SnapshotLoss(why, transient=True)
        log.warning(
            "snapshots: cannot write %s: %s; snapshots are lost (counted) until it has "
            "%.0f MB free",
            path,
            why,
            ROOM_TO_RESUME_BYTES / 1e6,
        )
        return self._loss


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
