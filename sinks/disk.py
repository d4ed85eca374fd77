"""A full disk, recognised and named: the file sinks' (video, SQLite, spool) messages say
which file system is full and how much room it has, instead of a bare `[Errno 28]`."""

from __future__ import annotations

import errno
import os
from pathlib import Path

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
    is, else the system's own words."""
    if is_disk_full(exc):
        return f"disk full: {file_system(path)}"
    return " ".join((exc.strerror or str(exc) or type(exc).__name__).split())
