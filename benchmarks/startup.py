"""Start-up and memory of `python -m pipeline run`: time to the first detected frame, wall
time and peak memory, on a warm cache, optionally beside another checkout in the same run.

Each round runs the config as a subprocess of its own (after one warm-up run that fills the
network cache) and reports, per checkout: seconds from the command to the first frame
detected, the whole run's wall time, and its peak RSS (`os.wait4`). The first detected frame
is marked by a small prelude that wraps the run's progress callback (called once per
detected frame, in every version of the run command), so that an older checkout can be
measured unchanged. A baseline commit is exported by `git archive` into a temporary folder
(`benchmarks.checkouts`); checkouts are measured in turn, round after round (load on the
machine hits all alike), and the ratios are of medians measured in the same run. An import-time
breakdown (`python -X importtime`, self time summed per top-level package) follows.

    python -m benchmarks.startup                       # this checkout, config/cams.yaml
    python -m benchmarks.startup --baseline main       # ... beside the commit `main`
    python -m benchmarks.startup --rounds 7 --config my.yaml

The config's sinks write into a temporary folder (its relative `source:` paths are read
from the checkout), and a ZeroMQ sink gets a free port, so that runs do not collide. A
baseline that refuses the config (an older commit that predates a key of today's, such as
`batch_size: auto`) runs its own copy of the config's path at that commit instead, and the
benchmark says so in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.checkouts import ROOT, THIS, add_round_options, checkouts, in_turn
from benchmarks.machine import machine_line

MARK = "STARTUP-BENCH first-detection"
PRELUDE = f"""
import runpy, sys, time
import pipeline.progress as progress

_update = progress.Progress.update
_marked = []

def update(self, stats):
    if not _marked:
        _marked.append(1)
        sys.stderr.write("{MARK} %.6f\\n" % time.time())
        sys.stderr.flush()
    return _update(self, stats)

progress.Progress.update = update
sys.argv = ["pipeline", "run", sys.argv[1], "--no-progress"]
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


class RunFailed(SystemExit):
    """A run of the command failed; `reason` is the last line it wrote (its error)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Run:
    """One run of the command: seconds to the first detected frame, wall seconds, peak RSS."""

    first_detection_s: float
    wall_s: float
    peak_rss_mb: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_config(config: Path, checkout: Path, out: Path) -> Path:
    """A copy of `config` whose sources are read from `checkout` and whose sinks write into
    `out` (a ZeroMQ sink on a free port)."""
    data = yaml.safe_load(config.read_text())
    for camera in data.get("cameras", []):
        source = camera.get("source")
        if isinstance(source, str) and "://" not in source and not Path(source).is_absolute():
            camera["source"] = str(checkout / source)
    for i, sink in enumerate(data.get("sinks", [])):
        if "dir" in sink:
            sink["dir"] = str(out / f"sink{i}")
        if sink.get("type") == "zmq":
            sink["endpoint"] = f"tcp://127.0.0.1:{free_port()}"
        if sink.get("type") == "sql" and str(sink.get("url", "")).startswith("sqlite"):
            sink["url"] = f"sqlite:///{out / f'sink{i}.db'}"
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_once(checkout: Path, config: Path) -> Run:
    """Runs `python -m pipeline run config` from `checkout`; raises if it fails."""
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE, str(config)],
        cwd=checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        text=True,
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    found = re.search(rf"{MARK} ([0-9.]+)", stderr)
    if proc.returncode != 0 or found is None:
        lines = [line for line in stderr.splitlines() if line.strip()]
        raise RunFailed(
            f"{checkout}: the run failed ({proc.returncode}):\n{stderr[-2000:]}",
            lines[-1].strip() if lines else f"exit status {proc.returncode}",
        )
    # ru_maxrss is in KiB on Linux.
    return Run(float(found.group(1)) - started, wall, usage.ru_maxrss / 1024)


def import_breakdown(checkout: Path, config: Path, top: int) -> list[tuple[str, float]]:
    """Seconds of import per top-level package in one run (self times summed), largest first."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "run", str(config), "--no-progress"],
        cwd=checkout,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        check=True,
    )
    per_package: dict[str, float] = defaultdict(float)
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "self" in parts[0]:
            continue
        self_us = int(parts[0].split(":")[1])
        per_package[parts[2].strip().split(".")[0]] += self_us / 1e6
    ranked = sorted(per_package.items(), key=lambda kv: kv[1], reverse=True)
    return [("(all)", sum(per_package.values())), *ranked[:top]]


def warm_up(
    checkout: Path,
    ours: Path,
    theirs: Path | None,
    run: Callable[[Path, Path], Run] = run_once,
) -> tuple[Path, str | None]:
    """One warm-up run (it fills the network cache) with the config `checkout` runs: `ours`,
    else, where `checkout` refuses it, `theirs` (its own copy; None: it has none), with a
    line that says so. Raises RunFailed where neither runs."""
    try:
        run(checkout, ours)
        return ours, None
    except RunFailed as refused:
        if theirs is None:
            raise
        run(checkout, theirs)
        return theirs, refused.reason


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/cams.yaml"))
    add_round_options(parser)
    parser.add_argument("--top", type=int, default=10, help="packages in the import breakdown")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        folders = stack.enter_context(checkouts(args.baseline))
        out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="startup-out-")))
        print(machine_line())
        print(f"command: python -m pipeline run {args.config} (a warm-up run first)\n")
        configs = {}
        for i, (name, path) in enumerate(folders.items()):
            (out / str(i) / "own").mkdir(parents=True)
            ours = bench_config((ROOT / args.config).resolve(), path, out / str(i))
            own = path / args.config
            theirs = None
            if path != ROOT and own.is_file():
                theirs = bench_config(own, path, out / str(i) / "own")
            configs[name], refused = warm_up(path, ours, theirs)
            if refused is not None:
                print(
                    f"{name} refuses this checkout's {args.config} ({refused}): it runs its own "
                    f"{args.config}, so the ratios compare different configs\n"
                )
        runs = in_turn(folders, args.rounds, lambda name, path: run_once(path, configs[name]))

        medians = {
            name: Run(
                statistics.median(r.first_detection_s for r in rs),
                statistics.median(r.wall_s for r in rs),
                statistics.median(r.peak_rss_mb for r in rs),
            )
            for name, rs in runs.items()
        }
        print(f"{'checkout':<16} {'first detection':>16} {'wall':>8} {'peak RSS':>10}")
        for name, m in medians.items():
            print(
                f"{name:<16} {m.first_detection_s:>14.2f} s {m.wall_s:>6.2f} s "
                f"{m.peak_rss_mb:>7.0f} MB   (medians of {args.rounds})"
            )
        if args.baseline:
            base, this = medians[args.baseline], medians[THIS]
            print(
                f"\nthis checkout / {args.baseline}: first detection "
                f"{this.first_detection_s / base.first_detection_s:.2f}x, wall "
                f"{this.wall_s / base.wall_s:.2f}x, "
                f"peak RSS {this.peak_rss_mb / base.peak_rss_mb:.2f}x"
            )
        for name, path in folders.items():
            print(f"\nimports of {name} (s, self time per top-level package, one run):")
            for package, seconds in import_breakdown(path, configs[name], args.top):
                print(f"  {package:<24} {seconds:6.2f}")


if __name__ == "__main__":
    main()
