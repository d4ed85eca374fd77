"""Which snapshot files to delete: those older than an age, and the oldest beyond a count
or a size. Only files named by the rule of `sinks.snapshot_files` are ever touched."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sinks.disk import regular_file, remove_old
from sinks.snapshot_files import CAMERA_DIR, SNAPSHOT_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """What to keep of a snapshot folder (None: no such limit): files last written at most
    `max_age_s` ago, the `max_files` newest, and the newest that fit in `max_bytes`."""

    max_age_s: float | None = None
    max_files: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_age_s", "max_files", "max_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"snapshot retention {name} must be > 0, got {value}")

    @property
    def limited(self) -> bool:
        return (self.max_age_s, self.max_files, self.max_bytes) != (None, None, None)


def snapshot_files(directory: Path) -> list[tuple[float, int, Path]]:
    """(modified time, size, path) of every snapshot file in `directory`, newest first: the
    regular files (`regular_file`) named as the sink names them. Raises OSError when a
    folder cannot be read."""
    found = []
    for camera in directory.iterdir():
        if not CAMERA_DIR.match(camera.name) or not camera.is_dir():
            continue
        for path in camera.iterdir():
            if not SNAPSHOT_FILE.match(path.name):
                continue
            if (status := regular_file(path)) is not None:
                found.append((status.st_mtime, status.st_size, path))
    found.sort(key=lambda f: (f[0], f[2].name), reverse=True)
    return found


def prune_snapshots(directory: Path, retention: Retention, now: float | None = None) -> list[Path]:
    """Delete the snapshot files of `directory` that `retention` does not keep; returns
    them. Failures are logged, not raised: retention must not stop the writing."""
    if not retention.limited or not directory.is_dir():
        return []
    now = time.time() if now is None else now
    try:
        files = snapshot_files(directory)
    except OSError as exc:
        log.warning("snapshots sink: cannot list %s for retention: %s", directory, exc.strerror)
        return []
    doomed: list[Path] = []
    kept_bytes = 0
    for rank, (mtime, size, path) in enumerate(files):
        kept_bytes += size
        too_old = retention.max_age_s is not None and now - mtime > retention.max_age_s
        too_many = retention.max_files is not None and rank >= retention.max_files
        too_big = retention.max_bytes is not None and kept_bytes > retention.max_bytes
        if too_old or too_many or too_big:
            kept_bytes -= size
            doomed.append(path)
    return remove_old(doomed, sink="snapshots sink", what="snapshot")


def old_snapshots(directory: Path, before: float, *, dry_run: bool = False) -> list[Path]:
    """Delete the snapshot files of `directory` last written before `before` (Unix time);
    returns them (with `dry_run`, those that would be), oldest first. Raises OSError when
    the folder cannot be read."""
    old = sorted(path for mtime, _, path in snapshot_files(directory) if mtime < before)
    if not dry_run:
        for path in old:
            path.unlink(missing_ok=True)
    return old
