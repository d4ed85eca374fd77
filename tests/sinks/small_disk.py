"""A small file system of the test's own, to fill for real: a tmpfs mounted on a temporary
folder. Mounting needs root (or CAP_SYS_ADMIN); where it is refused, the test is skipped."""

from __future__ import annotations

import errno
import os
import pwd
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class SmallDisk:
    """A mounted tmpfs: `fill` takes every byte left (with a filler file), `free` gives
    them back by deleting it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Write the filler until the file system says it is full, then give back `leave`
        bytes of it."""
        chunk = b"\xa5" * (1 << 20)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()

    def make_read_only(self) -> None:
        """Remount it read-only, what it holds kept."""
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


@contextmanager
def small_disk(
    folder: Path, size: str, *, owner: str | None = None, read_only: bool = False
) -> Iterator[SmallDisk]:
    """A tmpfs of `size` (mount's syntax: "2m") on `folder`, its root owned by the user
    `owner` (None: by us), mounted read-only if `read_only`, unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    if owner is not None:
        user = pwd.getpwnam(owner)
        options += f",uid={user.pw_uid},gid={user.pw_gid}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {' '.join(mounted.stderr.split())}")
    try:
        yield SmallDisk(folder)
    finally:
        # lazy: a file a failed test left open must not keep the mount alive
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
