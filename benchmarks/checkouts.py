"""Another commit's code measured beside this checkout's: its files exported to a temporary
folder, and a benchmark's round run in a fresh Python that imports the project from there.

A child runs the measuring script of this checkout with the other commit's packages first on
its path, so the script's own imports must exist in both commits; a benchmark imports this
module in the parent only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


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


def child_round(script: str, checkout: Path, args: list[str]) -> Any:
    """`script --child ARGS` run in a fresh Python importing the project from `checkout`:
    the JSON of the last line it prints."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    # run_path, not `python script`: that would put the script's folder first on the path,
    # where benchmarks/analytics.py would stand for the `analytics` package
    run = (
        "import runpy, sys; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", run, script, "--child", *args],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def rounds_in_turn(
    script: str, args: list[str], rounds: int, baseline: str | None
) -> dict[str, list[Any]]:
    """`rounds` rounds of `script` (`child_round`) in this checkout and, each just before,
    in the commit `baseline` when one is given: {"this checkout" or `baseline`: each round's
    JSON}, the baseline first."""
    with contextlib.ExitStack() as stack:
        checkouts = {"this checkout": ROOT}
        if baseline:
            checkouts = {baseline: stack.enter_context(exported(baseline)), **checkouts}
        results: dict[str, list[Any]] = {name: [] for name in checkouts}
        for _ in range(rounds):
            for name, checkout in checkouts.items():
                results[name].append(child_round(script, checkout, args))
    return results
