"""The suite's one JSON file: what it ran on, each case's status and figures, and the
targets met or not; written again after every case, so that a run cut short keeps what
it measured."""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.gpu_suite.plan import TARGETS, Plan, Target
from pipeline.bench.report import device_name

if TYPE_CHECKING:
    import torch

FORMAT = "gpu-suite/1"
STATUSES = ("ran", "skipped", "failed")


@dataclass
class CaseRecord:
    """One case as the report tells it."""

    id: str
    kind: str
    status: str
    """One of `STATUSES`."""
    reason: str | None = None
    """Why it was skipped, or what failed (one line)."""
    seconds: float = 0.0
    """Wall time of the case, set-up (model build, compilation) included."""
    peak_gpu_memory_mib: float | None = None
    """Most GPU memory torch held during the case (a training epoch: in its child
    process); None on the CPU and for the tests, which run in a process of their own."""
    figures: dict[str, Any] | None = None
    """What it measured (`pipeline.bench.report`'s results, or the tests' counts)."""
    traceback: str | None = None
    """Where a case failed with an exception: the traceback, to fix it without a rerun."""
    headline: str = ""
    """Its main figure in words ("3120.5 images/s")."""


@dataclass(frozen=True)
class TargetRecord:
    """A target (`plan.Target`) and how the run stands against it."""

    name: str
    cases: str
    figure: str
    at_least: float
    best: float | None
    best_case: str | None
    status: str
    """"met", "not met", or "not measured" (why: `note`)."""
    note: str = ""


@dataclass
class SuiteReport:
    """Everything one run of the suite found."""

    command: str
    plan: str
    date: str
    environment: dict[str, str | None]
    budget_s: float
    settings: dict[str, Any]
    cases: list[CaseRecord] = field(default_factory=list)
    elapsed_s: float = 0.0
    finished: bool = False
    """False while it runs, or where it was cut short: the cases not listed never ran."""
    format: str = FORMAT

    def summary(self) -> dict[str, int]:
        """How many cases ran, were skipped and failed."""
        return {status: sum(c.status == status for c in self.cases) for status in STATUSES}

    def targets(self, held: bool) -> list[TargetRecord]:
        """Each of `TARGETS` against the cases that ran; `held` False: none are measured
        (the dry run's sizes are not the targets')."""
        return [_target(target, self.cases, held) for target in TARGETS]


def _target(target: Target, cases: list[CaseRecord], held: bool) -> TargetRecord:
    if not held:
        return TargetRecord(**asdict(target), best=None, best_case=None,
                            status="not measured", note="dry run")  # fmt: skip
    figures = [
        (case.figures[target.figure], case.id)
        for case in cases
        if case.status == "ran" and case.figures is not None
        and fnmatch.fnmatchcase(case.id, target.cases)
    ]  # fmt: skip
    if not figures:
        return TargetRecord(**asdict(target), best=None, best_case=None,
                            status="not measured", note="no matching case ran")  # fmt: skip
    best, best_case = max(figures)
    status = "met" if best >= target.at_least else "not met"
    return TargetRecord(**asdict(target), best=best, best_case=best_case, status=status)


def report_json(report: SuiteReport, plan: Plan) -> dict[str, Any]:
    """The report as JSON-ready data, with its summary and targets."""
    data = asdict(report)
    data["summary"] = report.summary()
    data["targets"] = [asdict(t) for t in report.targets(plan.held_to_targets)]
    return data


def write_report(data: dict[str, Any], path: Path) -> None:
    """Writes `data` to `path` whole or not at all (a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)


def plan_settings(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data."""
    # asdict copies a mapping proxy by pickling it, which it cannot.
    return asdict(replace(plan, first_guess_s=dict(plan.first_guess_s)))


def environment(device: torch.device) -> dict[str, str | None]:
    """What the suite ran on: the GPU, its driver, the CUDA, cuDNN, torch, torchvision and
    Python versions, the CPU; None for what is not there."""
    import torch
    import torchvision

    cuda = device.type == "cuda"
    cudnn = torch.backends.cudnn.version() if cuda else None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "driver": _driver_version() if cuda else None,
        "cuda": torch.version.cuda,
        "cudnn": None if cudnn is None else str(cudnn),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "cpu": device_name(torch.device("cpu")),
    }


def _driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it; None without nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown (nvidia-smi: {str(error).splitlines()[0]})"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None
