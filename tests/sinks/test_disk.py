"""A full disk is recognised as such (whatever raised it), and named by its file system."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import av
import pytest

import sinks.disk
from sinks.disk import RoomWatch, file_system, free_bytes, is_disk_full, mount_point, write_failure
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


def test_a_full_disk_is_asked_for_room_at_most_once_per_interval_and_only_while_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now, free, asked = [100.0], [0], []

    def system_says(path: Path) -> int:
        asked.append(now[0])
        return free[0]

    monkeypatch.setattr(sinks.disk, "free_bytes", system_says)
    watch = RoomWatch(tmp_path, min_free_bytes=100, interval_s=5, clock=lambda: now[0])
    assert watch.has_room() and asked == []  # no write has failed: nothing to ask
    watch.full()
    for now[0] in (100.0, 104.9, 105.0, 106.0, 109.9):
        assert not watch.has_room()
    assert asked == [105.0]
    free[0] = 99
    now[0] = 110.0
    assert not watch.has_room()
    free[0] = 100
    for now[0] in (114.0, 115.0, 116.0):
        assert watch.has_room() is (now[0] >= 115.0)
    assert asked == [105.0, 110.0, 115.0]


def test_free_bytes_is_what_is_left_on_the_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        before = free_bytes(disk.path / "not" / "yet")
        disk.fill(leave=300_000)
        assert before > 2_000_000 and abs(free_bytes(disk.path) - 300_000) < 8192  # pages
