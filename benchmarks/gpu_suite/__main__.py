"""`python -m benchmarks.gpu_suite`: everything the GPU path needs checked, in one command
and one JSON file (benchmarks/README.md)."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.gpu_suite.budget import Deadline
from benchmarks.gpu_suite.plan import DRY, FULL, KINDS, Plan
from benchmarks.gpu_suite.report import SuiteReport, environment, plan_settings
from benchmarks.gpu_suite.suite import Suite
from benchmarks.gpu_suite.workbench import Workbench
from detector.errors import ModelConfigError
from pipeline.argtypes import nonempty, number
from pipeline.bench.clips import DEFAULT_CLIP
from pipeline.bench.model_only import bench_device, configure_torch

ROOT = Path(__file__).resolve().parents[2]
"""The project's checkout: where the CUDA tests and the bundled clip are."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""As `python -m pipeline`'s: all ran (or were skipped, said why), a case failed, bad
arguments (nothing ran), Ctrl-C."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The suite's options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_suite",
        description="The GPU suite: the CUDA tests, model-only images/s, end-to-end frames/s, "
        "training images/s with mixed precision off and on, training epochs of `train`, and "
        "peak GPU memory, within a time budget, into one JSON file.",
    )
    parser.add_argument(
        "--out", type=nonempty, default="gpu_suite.json", help="the JSON file (gpu_suite.json)"
    )
    parser.add_argument(
        "--device", type=nonempty, default="auto",
        help="auto | cuda | cuda:N | cpu (cpu runs the dry plan)",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true",
        help="the dry plan: the same code on tiny sizes, in seconds (CI runs it on the CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--budget", type=number(1, 24 * 3600), default=None, metavar="SECONDS",
        help=f"seconds the suite may take (default {FULL.budget_s:.0f}; dry {DRY.budget_s:.0f})",
    )  # fmt: skip
    parser.add_argument(
        "--only", nargs="+", choices=KINDS, default=list(KINDS),
        help="run only these kinds of case (the others are listed as skipped)",
    )  # fmt: skip
    parser.add_argument(
        "--clip", type=nonempty, default=str(ROOT / DEFAULT_CLIP),
        help="the clip the end-to-end cases re-encode (default: the bundled one)",
    )  # fmt: skip
    return parser.parse_args(argv)


def choose_plan(args: argparse.Namespace) -> Plan:
    """The full plan on CUDA; the dry plan with --dry-run or --device cpu.

    Raises:
        ModelConfigError: the device asked for is not there (no CUDA for the full plan).
    """
    import torch

    dry = args.dry_run or args.device == "cpu"
    if not dry and not torch.cuda.is_available():
        raise ModelConfigError(
            "torch sees no CUDA device here; check the suite on the CPU with --dry-run"
        )
    device = bench_device(args.device)
    plan = replace(DRY if dry else FULL, device=str(device))
    return plan if args.budget is None else replace(plan, budget_s=args.budget)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the suite; prints a line per case on stderr and the summary on stdout."""
    started = time.monotonic()  # the budget counts from here, torch's import included
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    out = Path(args.out).expanduser()
    clip = Path(args.clip).expanduser()
    problem = None
    if not out.parent.is_dir():
        problem = f"--out: folder {out.parent} does not exist"
    elif out.is_dir():
        problem = f"--out: {out} is a folder; name a file"
    elif not clip.is_file():
        problem = f"--clip: no file {clip}"
    if problem is None:
        try:
            plan = choose_plan(args)
        except ModelConfigError as error:
            problem = str(error)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    deadline = Deadline(plan.budget_s, plan.first_guess_s, started=started)
    device = bench_device(plan.device)
    configure_torch()
    ran_on = environment(device)
    report = SuiteReport(
        command=shlex.join(["python", "-m", "benchmarks.gpu_suite", *argv]), plan=plan.name,
        date=ran_on["date"] or "", environment=ran_on, budget_s=plan.budget_s,
        settings=plan_settings(plan),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as scratch:
        bench = Workbench(plan, deadline, device, clip, ROOT, Path(scratch))
        suite = Suite(bench, report, out, args.only, lambda line: print(line, file=sys.stderr))
        try:
            suite.run()
        except KeyboardInterrupt:
            print(f"interrupted: {out} holds the cases that finished", file=sys.stderr)
            return EXIT_INTERRUPTED
        except OSError as error:  # the report could not be written (cases catch their own)
            print(f"error: cannot write {out}: {error}", file=sys.stderr)
            return EXIT_FAILED
    print(summary_text(report, plan, out))
    return EXIT_FAILED if report.summary()["failed"] else EXIT_OK


def summary_text(report: SuiteReport, plan: Plan, out: Path) -> str:
    """What the run found, in a few lines."""
    counts = report.summary()
    lines = [
        f"{out}: {plan.name} plan on {report.environment['device']}, "
        f"{report.elapsed_s:.0f} s of {report.budget_s:.0f}: "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
    ]
    for target in report.targets(plan.held_to_targets):
        best = "-" if target.best is None else f"{target.best:.1f}"
        lines.append(f"  {target.name} >= {target.at_least:g}: {best}, {target.status}"
                     + (f" ({target.note})" if target.note else ""))  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
