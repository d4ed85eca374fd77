"""A full disk, recognised and named: the file sinks' (video, SQLite, spool) messages say
which file system is full and how much room it has, instead of a bare `[Errno 28]`; and
watched (`RoomWatch`) until it has room again. An output folder that could never be
written, found when a sink opens (`open_folder`, with `pipeline.folders`' check). And the
files retention deletes, found (`regular_file`) and deleted (`remove_old`)."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.folders import folder_problem
from sinks.base import SinkError

log = logging.getLogger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""No space left on the device, or the user's disk quota used up: both mean a full disk."""


def is_disk_full(exc: BaseException) -> bool:
    """True for an OSError (PyAV's included) saying the disk, or the quota, is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def mount_point(path: Path) -> Path:
    """The mount point of the file system that holds `path` (or would, once created)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def file_system(path: Path) -> str:
    """'the file system at /mnt/data (0.0 MB free of 3.1 MB)': the one holding `path`."""
    mount = mount_point(path)
    try:
        st = os.statvfs(mount)
    except OSError as exc:
        return f"the file system at {mount} (size unknown: {exc.strerror})"
    free = st.f_bavail * st.f_frsize / 1e6
    size = st.f_blocks * st.f_frsize / 1e6
    return f"the file system at {mount} ({free:.1f} MB free of {size:.1f} MB)"


def write_failure(exc: OSError, path: Path) -> str:
    """Why writing `path` failed, in one line: "disk full: the file system at ..." when it
    is, the folder check's words when a file stands where a folder of its path should be,
    else the system's own words."""
    if is_disk_full(exc):
        return f"disk full: {file_system(path)}"
    in_the_way = exc.errno in (errno.EEXIST, errno.ENOTDIR)
    if in_the_way and (problem := folder_problem(path.parent)) is not None:
        return problem
    return " ".join((exc.strerror or str(exc) or type(exc).__name__).split())


def open_folder(folder: Path, sink: str) -> None:
    """What a sink that writes files in `folder` checks when it opens: a folder it could
    never write in (one that cannot be made, or that the user may not write in) is a
    `SinkError` naming the sink and the folder, so the run stops before it reads a frame
    and nothing is lost (docs/sinks.md, "Errors"). Nothing is created: the sink makes the
    folder when it writes its first file."""
    if (problem := folder_problem(folder)) is not None:
        raise SinkError(f"{sink} sink: {problem}")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write to the file system holding `path`."""
    st = os.statvfs(mount_point(path))
    return st.f_bavail * st.f_frsize


class RoomWatch:
    """Whether the file system holding `path`, full a moment ago, has room again: at least
    `min_free_bytes` free, asked of the system at most once per `interval_s` of `clock`."""

    def __init__(
        self,
        path: Path,
        *,
        min_free_bytes: int,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_free_bytes < 0 or interval_s < 0:
            raise ValueError(
                f"RoomWatch min_free_bytes and interval_s must be >= 0, got "
                f"{min_free_bytes} and {interval_s}"
            )
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.interval_s = interval_s
        self._clock = clock
        self._room = True
        self._checked = -float("inf")

    def full(self) -> None:
        """A write just failed for want of room: no room until the next check is due."""
        self._room = False
        self._checked = self._clock()

    def has_room(self) -> bool:
        """True unless `full` was said and no check since found `min_free_bytes` free."""
        if self._room:
            return True
        now = self._clock()
        if now - self._checked < self.interval_s:
            return False
        self._checked = now
        try:
            self._room = free_bytes(self.path) >= self.min_free_bytes
        except OSError as exc:  # the file system went away: no room to write either
            log.debug("cannot tell the free space of %s: %s", self.path, exc.strerror)
        return self._room


def regular_file(path: Path) -> os.stat_result | None:
    """`path`'s status when it is a regular file: what retention may delete. None for a
    link (one left dangling too), a folder, or a file gone since its folder was listed
    (another retention removed it), which retention passes over, keeping the others."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return None
    return status if stat.S_ISREG(status.st_mode) else None


def remove_old(paths: Iterable[Path], *, sink: str, what: str) -> list[Path]:
    """Delete the files retention no longer keeps; returns those deleted.

    A file already gone is passed over; one the system refuses to delete is warned about
    ("`sink`: cannot delete old `what` file PATH: why") and left, and the others are still
    deleted: retention must not stop the writing.
    """
    deleted: list[Path] = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            why = write_failure(exc, path)
            log.warning("%s: cannot delete old %s file %s: %s", sink, what, path, why)
            continue
        deleted.append(path)
    if deleted:
        log.info("%s: deleted %d old %s file(s) (retention)", sink, len(deleted), what)
    return deleted
