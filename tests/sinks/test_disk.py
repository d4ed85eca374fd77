"""A full disk is recognised as such (whatever raised it), and named by its file system."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import av
import pytest

import sinks.disk
from sinks.disk import (
    RoomWatch,
    file_system,
    free_bytes,
    is_disk_full,
    mount_point,
    remove_old,
    write_failure,
)
from tests.clock import Clock
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


@pytest.mark.parametrize("number", [errno.EEXIST, errno.ENOTDIR])
def test_a_file_where_a_folder_of_the_path_should_be_is_named_in_the_folder_checks_words(
    tmp_path: Path, number: int
) -> None:
    folder = tmp_path / "spool"
    folder.write_text("")
    exc = OSError(number, os.strerror(number))
    assert write_failure(exc, folder / "rows.jsonl") == f"{folder} is a file, not a folder"


def test_other_write_failures_keep_the_systems_words() -> None:
    exc = OSError(errno.EACCES, "Permission denied")
    assert write_failure(exc, Path("/x/y")) == "Permission denied"


def test_a_full_disk_is_asked_for_room_at_most_once_per_interval_and_only_while_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, free, asked = Clock(100.0), [0], []

    def system_says(path: Path) -> int:
        asked.append(clock.now)
        return free[0]

    monkeypatch.setattr(sinks.disk, "free_bytes", system_says)
    watch = RoomWatch(tmp_path, min_free_bytes=100, interval_s=5, clock=clock)
    assert watch.has_room() and asked == []  # no write has failed: nothing to ask
    watch.full()
    for clock.now in (100.0, 104.9, 105.0, 106.0, 109.9):
        assert not watch.has_room()
    assert asked == [105.0]
    free[0] = 99
    clock.now = 110.0
    assert not watch.has_room()
    free[0] = 100
    for clock.now in (114.0, 115.0, 116.0):
        assert watch.has_room() is (clock.now >= 115.0)
    assert asked == [105.0, 110.0, 115.0]


def test_free_bytes_is_what_is_left_on_the_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        before = free_bytes(disk.path / "not" / "yet")
        disk.fill(leave=300_000)
        assert before > 2_000_000 and abs(free_bytes(disk.path) - 300_000) < 8192  # pages


def test_retention_passes_over_a_vanished_file_and_warns_once_of_one_it_may_not_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = [tmp_path / f"{n}.jpg" for n in range(4)]
    for path in old:
        path.write_bytes(b"old")
    vanished, refused = old[0], old[2]
    vanished.unlink()  # deleted by someone else between listing and deleting
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self == refused:  # as root, file modes do not refuse; the system's answer is faked
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with caplog.at_level(logging.INFO, logger="sinks.disk"):
        deleted = remove_old(old, sink="snapshots sink", what="snapshot")

    assert deleted == [old[1], old[3]]
    assert [p.exists() for p in old] == [False, False, True, False]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"snapshots sink: cannot delete old snapshot file {refused}: Permission denied"
    ]
    assert "snapshots sink: deleted 2 old snapshot file(s) (retention)" in caplog.messages
