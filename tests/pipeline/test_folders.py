"""The one folder check of every layer that writes files: what it says of each folder that
could not be written in, and that it creates nothing. Mode bits and a read-only file system
are checked for real in tests/pipeline/test_permissions.py and test_preflight.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.folders import folder_problem


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
