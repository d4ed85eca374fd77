"""The end-to-end cameras split over several processes sharing the device: what one machine
runs when each process has an interpreter lock of its own (as `python -m pipeline run`
started once per group of cameras, or a cluster's shards on one GPU, would).

Each process (`process_child`) builds its detector, says it is ready, and reads its
cameras when told; frames/s is every process's frames over the seconds from the first
process's start of reading to the last one's end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any

from benchmarks.gpu_suite.process_child import MARK
from pipeline.bench.end_to_end import DetectorSetup


@dataclass(frozen=True)
class ProcessesResult:
    """frames/s of `cameras` cameras split over `processes` processes at once."""

    processes: int
    cameras: int
    frames: int
    """Frames of the counted run whose figure is the median (all processes)."""
    seconds: float
    frames_per_s: float
    """The median of `runs`."""
    runs: list[float]
    per_process_frames_per_s: list[float]
    """Each process's own frames/s in the median run."""
    peak_gpu_memory_mib: float | None
    """The most any one process held (None on the CPU)."""


@dataclass(frozen=True)
class ProcessRun:
    """What one process reported of one run."""

    frames: int
    elapsed_s: float
    ended: float
    """Unix seconds when its run ended; it read from `ended - elapsed_s`."""


def together(runs: Sequence[ProcessRun]) -> tuple[int, float]:
    """Every process's frames of one run, and the seconds from the first one's start of
    reading to the last one's end."""
    start = min(run.ended - run.elapsed_s for run in runs)
    return sum(run.frames for run in runs), max(run.ended for run in runs) - start


def measure_processes(
    clip: str, cameras: int, processes: int, setup: DetectorSetup, repeat: int, timeout_s: float
) -> ProcessesResult:
    """`repeat` runs of `cameras` cameras reading `clip`, split as evenly as they go over
    `processes` processes started at once; raises RuntimeError naming a process that failed."""
    shares = [cameras // processes + (i < cameras % processes) for i in range(processes)]
    with tempfile.TemporaryFile("w+") as errors:
        command = [sys.executable, "-m", "benchmarks.gpu_suite.process_child"]
        settings = {"clip": clip, "setup": asdict(setup), "repeat": repeat}
        children = [
            subprocess.Popen(
                [*command, json.dumps({**settings, "copies": share})],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            for share in shares
        ]
        try:
            runs = [_one_run(children, errors) for _ in range(repeat)]
            peaks = [_message(child, errors)["peak_gpu_memory_mib"] for child in children]
            for child in children:
                child.wait(timeout=timeout_s)
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    figures = [frames / seconds for frames, seconds in (together(run) for run in runs)]
    median = sorted(range(repeat), key=figures.__getitem__)[repeat // 2]
    frames, seconds = together(runs[median])
    known = [peak for peak in peaks if peak is not None]
    return ProcessesResult(
        processes, cameras, frames, seconds, figures[median], figures,
        [run.frames / run.elapsed_s for run in runs[median]], max(known) if known else None,
    )  # fmt: skip


def _one_run(children: list[subprocess.Popen[str]], errors: IO[str]) -> list[ProcessRun]:
    """Waits until every process is ready, tells them all to go, and collects their runs."""
    for child in children:
        _message(child, errors)  # {"ready": true}
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    return [ProcessRun(**_message(child, errors)) for child in children]


def _message(child: subprocess.Popen[str], errors: IO[str]) -> dict[str, Any]:
    """The next line `child` meant for this process; RuntimeError with the error it told,
    or its last error line where it ended without a word."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(MARK):
            message: dict[str, Any] = json.loads(line[len(MARK) :])
            if "error" in message:
                raise RuntimeError(f"a process of the case failed: {message['error']}")
            return message
    code = child.wait()
    errors.seek(0)
    last = ([line for line in errors.read().splitlines() if line.strip()] or [""])[-1]
    raise RuntimeError(f"a process of the case ended (exit {code}) before it reported: {last}")
