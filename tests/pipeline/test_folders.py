"""The one folder check of every layer that writes files: what it says of each folder that
could not be written in, and that it creates nothing. Mode bits and a read-only file system
are checked for real in tests/pipeline/test_permissions.py and test_preflight.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.folders import file_problem, folder_problem, name_problem


def test_a_writable_folder_and_a_missing_one_under_it_have_no_problem(tmp_path: Path) -> None:
    assert folder_problem(tmp_path) is None
    assert folder_problem(tmp_path / "a" / "b") is None
    assert not (tmp_path / "a").exists()  # the writer makes it, with its first file


def test_a_file_where_the_folder_should_be_is_named(tmp_path: Path) -> None:
    file = tmp_path / "out"
    file.write_text("")
    assert folder_problem(file) == f"{file} is a file, not a folder"


def test_a_file_above_the_folder_is_named_as_what_stops_making_it(tmp_path: Path) -> None:
    file = tmp_path / "out"
    file.write_text("")
    assert folder_problem(file / "video" / "day") == (
        f"cannot make the folder {file / 'video' / 'day'}: {file} is not a folder"
    )


def test_a_home_relative_folder_is_checked_and_named_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "out").write_text("")
    assert folder_problem(Path("~/out")) == f"{tmp_path / 'out'} is a file, not a folder"


@pytest.mark.parametrize(("child", "verb"), [("", "write in"), ("new/sub", "make")])
def test_a_folder_the_user_may_not_write_in_says_whether_it_was_to_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: str, verb: str
) -> None:
    # root may write anywhere: the system's answer is made a refusal (real modes: see above)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    folder = tmp_path / child if child else tmp_path
    assert folder_problem(folder) == f"cannot {verb} the folder {folder}: permission denied"


def test_a_name_longer_than_the_file_system_takes_is_found_without_its_folders_existing(
    tmp_path: Path,
) -> None:
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    long_name = "d" * (name_max + 1)
    assert name_problem(tmp_path / "missing" / long_name / "x") == (
        f"a name in it is {name_max + 1} bytes long; the file system takes at most {name_max}"
    )
    assert name_problem(Path(long_name)) is not None  # relative to the working folder
    assert name_problem(tmp_path / "missing" / ("d" * name_max)) is None
    assert name_problem("é" * (name_max // 2 + 1)) is not None  # bytes, not characters


def test_a_path_longer_than_the_system_takes_is_found(tmp_path: Path) -> None:
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    deep = tmp_path.joinpath(*["d" * 200] * (path_max // 200 + 1))
    assert name_problem(deep) == (
        f"it is {len(os.fsencode(deep))} bytes long; the system takes at most {path_max - 1}"
    )


def test_a_file_to_read_that_is_missing_a_folder_or_a_pipe_is_named_as_what_it_is(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "pipe")
    assert file_problem(tmp_path / "file") is None and file_problem(tmp_path / "link") is None
    assert file_problem(tmp_path / "missing") == "not found"
    assert file_problem(tmp_path / "loop") == "is a link that leads back to itself"
    assert file_problem(tmp_path) == "is a folder, not a file"
    assert file_problem(tmp_path / "pipe") == "is a device or a pipe, not a file"


def test_a_link_loop_through_another_link_is_named_as_a_loop_not_as_missing(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert file_problem(tmp_path / "a") == "is a link that leads back to itself"
    assert file_problem(tmp_path / "dangling") == "not found"
