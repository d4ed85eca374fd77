"""A full disk is recognised as such (whatever raised it), and named by its file system."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import av
import pytest

from sinks.disk import file_system, is_disk_full, mount_point, write_failure
from tests.sinks.small_disk import small_disk


@pytest.mark.parametrize(
    ("exc", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (av.error.OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (OSError(errno.EIO, "Input/output error"), False),
        (ValueError("no space"), False),
    ],
    ids=["enospc", "quota", "pyav-enospc", "eacces", "eio", "not-oserror"],
)
def test_no_space_and_quota_exceeded_are_a_full_disk_and_nothing_else_is(
    exc: BaseException, full: bool
) -> None:
    assert is_disk_full(exc) is full


def test_a_full_disk_names_its_mount_point_and_room_also_for_a_file_not_yet_created(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        disk.fill()
        later = disk.path / "not" / "yet" / "there.db"
        assert mount_point(later) == disk.path
        assert file_system(later) == f"the file system at {disk.path} (0.0 MB free of 2.1 MB)"
        message = write_failure(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), later)
        assert message == f"disk full: the file system at {disk.path} (0.0 MB free of 2.1 MB)"


def test_other_write_failures_keep_the_systems_words() -> None:
    exc = OSError(errno.EACCES, "Permission denied")
    assert write_failure(exc, Path("/x/y")) == "Permission denied"
