"""Another commit's code measured beside this checkout's: its files exported to a temporary
folder, and a benchmark's round run in a fresh Python that imports the project from there.

A child runs the `one_round` of this checkout's measuring script with the other commit's
packages first on its path, so the script's own imports must exist in both commits; a
benchmark imports this module in its `main`, which only the parent runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
THIS = "this checkout"
"""The name of this checkout's column in a benchmark's figures."""

T = TypeVar("T")


def add_round_options(parser: argparse.ArgumentParser) -> None:
    """The options of a benchmark that measures this checkout beside another commit:
    `--rounds` and `--baseline`."""
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per checkout")
    parser.add_argument(
        "--baseline", help="a git commit (e.g. main) measured beside this checkout, in turn"
    )


@contextmanager
def exported(ref: str) -> Iterator[Path]:
    """The files of the commit `ref` in a temporary folder (`git archive`), removed after."""
    with tempfile.TemporaryDirectory(prefix="baseline-") as folder:
        archive = Path(folder) / "tree.tar"
        with archive.open("wb") as out:
            subprocess.run(["git", "-C", str(ROOT), "archive", ref], stdout=out, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(folder) / "tree", filter="data")
        yield Path(folder) / "tree"


def child_round(script: str, checkout: Path, args: list[Any]) -> Any:
    """`one_round(*args)` of `script` run in a fresh Python importing the project from
    `checkout`: what it returns, through JSON."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    # run_path, not `python script`: that would put the script's folder first on the path,
    # where benchmarks/analytics.py would stand for the `analytics` package
    run = (
        "import json, runpy, sys; "
        "one_round = runpy.run_path(sys.argv[1], run_name='benchmark_round')['one_round']; "
        "print(json.dumps(one_round(*json.loads(sys.argv[2]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", run, script, json.dumps(args)],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


@contextmanager
def checkouts(baseline: str | None) -> Iterator[dict[str, Path]]:
    """{`THIS`: this checkout's folder}, after {`baseline`: its `exported` files} when one is
    given: the baseline first."""
    if not baseline:
        yield {THIS: ROOT}
        return
    with exported(baseline) as folder:
        yield {baseline: folder, THIS: ROOT}


def in_turn(
    folders: dict[str, Path], rounds: int, measure: Callable[[str, Path], T]
) -> dict[str, list[T]]:
    """`rounds` rounds of `measure(name, folder)` over `folders` in their order, round after
    round (load on the machine hits all alike): {name: each round's figure}."""
    results: dict[str, list[T]] = {name: [] for name in folders}
    for _ in range(rounds):
        for name, folder in folders.items():
            results[name].append(measure(name, folder))
    return results


def rounds_in_turn(
    script: str, args: list[Any], rounds: int, baseline: str | None
) -> dict[str, list[Any]]:
    """`rounds` rounds of `script` (`child_round`) in this checkout and, each just before,
    in the commit `baseline` when one is given: {`THIS` or `baseline`: each round's JSON},
    the baseline first."""
    with checkouts(baseline) as folders:
        return in_turn(folders, rounds, lambda _, folder: child_round(script, folder, args))
