"""The run: a plan's cases in order within the deadline, the report written after each."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path

from benchmarks.gpu_suite.cases import Case, plan_cases
from benchmarks.gpu_suite.report import CaseRecord, SuiteReport, report_json, write_report
from benchmarks.gpu_suite.workbench import CaseSkipped, Workbench


class Suite:
    """Runs every case of `bench.plan` whose kind is in `kinds`, each only where the
    deadline leaves it time; a case that fails is recorded and the next one runs."""

    def __init__(
        self, bench: Workbench, report: SuiteReport, out: Path, kinds: Collection[str],
        say: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.bench = bench
        self.report = report
        self.out = out
        self.kinds = kinds
        self.say = say

    def run(self) -> SuiteReport:
        """Runs the cases, writing `out` after each and once more at the end."""
        self._write()
        for case in plan_cases(self.bench.plan):
            record = self._run_case(case)
            self.report.cases.append(record)
            self.say(_line(record, self.bench.deadline.elapsed_s()))
            self._write()
        self.bench.release()
        self.report.finished = True
        self._write()
        return self.report

    def _run_case(self, case: Case) -> CaseRecord:
        if case.kind not in self.kinds:
            return CaseRecord(case.id, case.kind, "skipped", "left out (--only)")
        why_not = self.bench.deadline.why_not(case.kind)
        if why_not is not None:
            return CaseRecord(case.id, case.kind, "skipped", why_not)
        started = time.perf_counter()
        if case.in_process:
            self.bench.reset_peak_memory()
        try:
            outcome = case.run(self.bench)
        except CaseSkipped as skipped:
            return CaseRecord(case.id, case.kind, "skipped", str(skipped))
        except Exception as error:  # recorded in the report; the next case still runs
            self.bench.release()  # the next case starts from a fresh detector
            first = (str(error).strip().splitlines() or [""])[0]
            return CaseRecord(
                case.id, case.kind, "failed", f"{type(error).__name__}: {first}",
                time.perf_counter() - started, traceback=traceback.format_exc(),
            )  # fmt: skip
        seconds = time.perf_counter() - started
        self.bench.deadline.ran(case.kind, seconds)
        return CaseRecord(
            case.id, case.kind, "failed" if outcome.problem else "ran", outcome.problem,
            seconds,
            self.bench.peak_memory_mib() if case.in_process else outcome.peak_gpu_memory_mib,
            asdict(outcome.figures), headline=outcome.headline,
        )  # fmt: skip

    def _write(self) -> None:
        self.report.elapsed_s = self.bench.deadline.elapsed_s()
        write_report(report_json(self.report, self.bench.plan), self.out)


def _line(record: CaseRecord, elapsed_s: float) -> str:
    """One line of progress: the case, its status, and its main figure or why not."""
    head = f"[{elapsed_s:5.0f} s] {record.id}: {record.status}"
    said = record.headline if record.status == "ran" else record.reason
    memory = record.peak_gpu_memory_mib
    return f"{head}, {said}" + ("" if memory is None else f", {memory:.0f} MiB peak")
