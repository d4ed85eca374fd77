"""The start-up benchmark's choice of config (a baseline that refuses today's runs its own) and its
rounds of a baseline's export and this checkout, in turn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import startup
from benchmarks.checkouts import ROOT
from benchmarks.startup import Run, RunFailed, warm_up

OURS, THEIRS, CHECKOUT = Path("ours.yaml"), Path("theirs.yaml"), Path("/old")
REFUSAL = "error: cams.yaml: detector.batch_size: 'auto' is not an integer"


def accepting(*accepted: Path) -> tuple[list[Path], Callable[[Path, Path], Run]]:
    """A stand-in for run_once that runs only `accepted` configs, and the configs it was given."""
    tried: list[Path] = []

    def run(checkout: Path, config: Path) -> Run:
        tried.append(config)
        if config not in accepted:
            raise RunFailed("the run failed", REFUSAL)
        return Run(1.0, 2.0, 300.0)

    return tried, run


def test_a_checkout_that_accepts_todays_config_runs_it() -> None:
    tried, run = accepting(OURS, THEIRS)
    assert warm_up(CHECKOUT, OURS, THEIRS, run) == (OURS, None)
    assert tried == [OURS]


def test_a_checkout_that_refuses_todays_config_runs_its_own_and_says_why() -> None:
    tried, run = accepting(THEIRS)
    assert warm_up(CHECKOUT, OURS, THEIRS, run) == (THEIRS, REFUSAL)
    assert tried == [OURS, THEIRS]


def test_a_checkout_without_its_own_config_fails_with_the_refusal() -> None:
    _, run = accepting()
    with pytest.raises(RunFailed) as failed:
        warm_up(CHECKOUT, OURS, None, run)
    assert failed.value.reason == REFUSAL


def test_a_checkout_that_refuses_both_configs_fails() -> None:
    tried, run = accepting()
    with pytest.raises(RunFailed):
        warm_up(CHECKOUT, OURS, THEIRS, run)
    assert tried == [OURS, THEIRS]


def test_the_benchmark_runs_a_baseline_export_and_this_checkout_in_turn_and_prints_ratios(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[Path] = []

    def run_once(checkout: Path, config: Path) -> Run:
        ran.append(checkout)
        return Run(1.0, 2.0, 300.0) if checkout == ROOT else Run(2.0, 4.0, 600.0)

    monkeypatch.setattr(startup, "warm_up", lambda checkout, ours, theirs: (ours, None))
    monkeypatch.setattr(startup, "run_once", run_once)
    monkeypatch.setattr(startup, "import_breakdown", lambda *_: [("(all)", 0.5)])
    startup.main(["--rounds", "2", "--baseline", "HEAD"])

    baseline = ran[0]
    assert baseline != ROOT and not baseline.exists()  # an export, removed after
    assert ran == [baseline, ROOT, baseline, ROOT]
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if "(medians of 2)" in line]
    assert [row[:-3] for row in rows] == [
        ["HEAD", "2.00", "s", "4.00", "s", "600", "MB"],
        ["this", "checkout", "1.00", "s", "2.00", "s", "300", "MB"],
    ]
    assert "this checkout / HEAD: first detection 0.50x, wall 0.50x, peak RSS 0.50x" in out
