"""Another commit measured beside this checkout: its files exported, rounds in turn, and a
child round that runs in a commit without this module."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import event_bus_cost
from benchmarks.checkouts import ROOT, THIS, checkouts, child_round, in_turn


def has_git() -> bool:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True)
    return done.returncode == 0


def test_without_a_baseline_only_this_checkout_is_measured() -> None:
    with checkouts(None) as folders:
        assert folders == {THIS: ROOT}


@pytest.mark.skipif(not has_git(), reason="not a git checkout")
def test_a_baseline_is_exported_first_and_removed_after() -> None:
    with checkouts("HEAD") as folders:
        assert list(folders) == ["HEAD", THIS]
        exported = folders["HEAD"]
        assert exported != ROOT
        assert (exported / "benchmarks" / "checkouts.py").is_file()
    assert not exported.exists()


def test_rounds_run_each_checkout_in_turn_round_after_round() -> None:
    folders = {"main": Path("/old"), THIS: Path("/new")}
    calls: list[str] = []

    def measure(name: str, folder: Path) -> str:
        calls.append(name)
        return f"{folder}#{calls.count(name)}"

    results = in_turn(folders, 2, measure)
    assert calls == ["main", THIS, "main", THIS]
    assert results == {"main": ["/old#1", "/old#2"], THIS: ["/new#1", "/new#2"]}


def test_a_child_round_runs_in_a_commit_that_has_no_checkouts_module(tmp_path: Path) -> None:
    for package in ("pipeline", "detector", "trackers", "sinks"):
        (tmp_path / package).symlink_to(ROOT / package)
    (tmp_path / "benchmarks").mkdir()
    for module in ("__init__.py", "event_bus.py", "machine.py"):
        (tmp_path / "benchmarks" / module).symlink_to(ROOT / "benchmarks" / module)

    measured = child_round(event_bus_cost.__file__, tmp_path, [20])
    assert sorted(measured) == ["0/none", "0/reader", "16/none", "16/reader", "4/none", "4/reader"]
