"""The suite's cases, each a small class whose `run` returns its figures: the CUDA tests in
a child pytest, model-only timing (`pipeline.bench.model_only`) and end-to-end runs
(`pipeline.bench.end_to_end`), training steps (`Trainer.step`), whole training epochs
(`python -m pipeline train` in a child process); and the order they run in."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar, Protocol

from benchmarks.gpu_suite.epoch import EpochResult, measure_epochs
from benchmarks.gpu_suite.plan import KINDS, Plan
from benchmarks.gpu_suite.processes import ProcessesResult, measure_processes
from benchmarks.gpu_suite.pytest_counts import TestCounts, read_junit
from benchmarks.gpu_suite.training import TrainingResult, measure_training
from benchmarks.gpu_suite.workbench import CaseSkipped, Workbench
from pipeline.bench.end_to_end import DetectorSetup, bench_end_to_end
from pipeline.bench.model_only import bench_model, bench_weights
from pipeline.bench.report import EndToEndResult, ModelResult

CUDA_TESTS = "tests/detector/test_cuda.py"
"""The tests of the CUDA path, relative to the project's checkout (and the case's id)."""

Figures = TestCounts | ModelResult | EndToEndResult | ProcessesResult | TrainingResult | EpochResult


@dataclass(frozen=True)
class Outcome:
    """What a case that ran measured, and what went wrong where it ran but failed (tests
    that failed); None: nothing."""

    figures: Figures
    headline: str
    """The main figure in words ("3120.5 images/s")."""
    problem: str | None = None
    peak_gpu_memory_mib: float | None = None
    """A case run in a process of its own: the peak GPU memory that process measured."""


class Case(Protocol):
    """One thing the suite checks or measures."""

    @property
    def id(self) -> str:
        """A name unique in the suite, e.g. "model/ssd300_vgg16/compile/fp16/b64" (the
        report's and the targets' key)."""
        ...

    @property
    def kind(self) -> str:
        """One of `KINDS`: what the deadline expects its time from."""
        ...

    in_process: ClassVar[bool]
    """Whether it runs in the suite's process (its peak device memory is measured)."""

    def run(self, bench: Workbench) -> Outcome:
        """Runs the case. Raises CaseSkipped where it cannot run here."""
        ...


@dataclass(frozen=True)
class CudaTestsCase:
    """`tests/detector/test_cuda.py` in a child pytest, with the plan's timeout or what is
    left of the budget, whichever is less."""

    in_process: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return CUDA_TESTS

    @property
    def kind(self) -> str:
        return "tests"

    def run(self, bench: Workbench) -> Outcome:
        if not (bench.root / CUDA_TESTS).is_file():
            raise CaseSkipped(f"{CUDA_TESTS} is not under {bench.root}: run from a checkout")
        junit = bench.scratch / "cuda-tests.xml"
        left = max(min(bench.deadline.left_s(), bench.plan.tests_timeout_s), 1.0)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", CUDA_TESTS,
                   f"--junitxml={junit}"]  # fmt: skip
        try:
            done = subprocess.run(
                command, cwd=bench.root, capture_output=True, text=True, timeout=left
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pytest did not end within {left:.0f} s") from None
        counts = read_junit(junit, done.returncode, done.stdout + done.stderr)
        headline = f"{counts.passed} passed, {counts.failed} failed, {counts.skipped} skipped"
        return Outcome(counts, headline, counts.problem())


@dataclass(frozen=True)
class ModelCase:
    """images/s of one model's network alone, at one (runtime, precision, batch size)."""

    model: str
    runtime: str
    precision: str
    batch_size: int
    in_process: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return f"model/{self.model}/{self.runtime}/{self.precision}/b{self.batch_size}"

    @property
    def kind(self) -> str:
        return "compile" if self.runtime == "compile" else "model"

    def run(self, bench: Workbench) -> Outcome:
        detector = bench.detector(self.model, self.runtime, self.precision)
        plan = bench.plan
        result = bench_model(
            detector, self.model, bench_weights(self.model), self.precision, self.batch_size,
            plan.repeat, plan.min_time_s, plan.warmup,
        )  # fmt: skip
        return Outcome(result, f"{result.images_per_s:.1f} images/s")


@dataclass(frozen=True)
class EndToEndCase:
    """frames/s of the real pipeline (`pipeline.bench.end_to_end`) on the plan's cameras,
    without the video sink (H100/H200 have no video encoder), pipelining on or off, cuDNN's
    autotuning on as a CUDA detector has it. The pipelining-on case also times the stages (one
    extra run on CUDA); timed stage by stage, batches never overlap, so the pipelining-off
    case would only time the same again."""

    pipelining: bool
    in_process: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return f"end_to_end/pipelining_{'on' if self.pipelining else 'off'}"

    @property
    def kind(self) -> str:
        return "end_to_end"

    def run(self, bench: Workbench) -> Outcome:
        bench.release()  # the model-only detector's memory is not this case's
        e2e, setup = bench.plan.end_to_end, end_to_end_setup(bench)
        result = bench_end_to_end(
            bench.end_to_end_clip(), e2e.copies, setup, e2e.repeat, video=None,
            pipelining=self.pipelining, stages=self.pipelining,
        )  # fmt: skip
        return Outcome(result, end_to_end_headline(result))


@dataclass(frozen=True)
class EndToEndProcessesCase:
    """frames/s of the end-to-end cameras split over `processes` processes sharing the
    device (`processes.measure_processes`), pipelined, no stage timed."""

    processes: int
    in_process: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"end_to_end/processes_{self.processes}"

    @property
    def kind(self) -> str:
        return "end_to_end"

    def run(self, bench: Workbench) -> Outcome:
        bench.release()  # each process holds a detector of its own
        e2e, setup = bench.plan.end_to_end, end_to_end_setup(bench)
        result = measure_processes(
            bench.end_to_end_clip(), e2e.copies, self.processes, setup, e2e.repeat,
            max(30.0, bench.deadline.left_s()),
        )  # fmt: skip
        spread = ", ".join(f"{fps:.1f}" for fps in result.per_process_frames_per_s)
        headline = f"{result.frames_per_s:.1f} frames/s in {self.processes} processes ({spread})"
        return Outcome(result, headline, peak_gpu_memory_mib=result.peak_gpu_memory_mib)


def end_to_end_setup(bench: Workbench) -> DetectorSetup:
    """The end-to-end cases' detector, as the plan has it, on the suite's device."""
    e2e = bench.plan.end_to_end
    return DetectorSetup(
        e2e.model, bench_weights(e2e.model), str(bench.device), e2e.runtime, e2e.precision,
        e2e.batch_size,
    )  # fmt: skip


def end_to_end_headline(result: EndToEndResult) -> str:
    """frames/s (the median of the runs), whether pipelined, and the slowest and fastest
    run where there were several: one H200 run of a case measured 425 frames/s, the next
    170."""
    pipelined = "pipelined" if result.pipelined else "not pipelined"
    spread = (
        f", runs {min(result.runs):.1f} to {max(result.runs):.1f}" if len(result.runs) > 1 else ""
    )
    return f"{result.frames_per_s:.1f} frames/s ({pipelined}{spread})"


@dataclass(frozen=True)
class TrainingCase:
    """Images/s of the trainer's own step (`Trainer.step`) for `model` at `batch_size`,
    mixed precision off and on (CUDA only), and that the loss stayed finite and fell."""

    model: str
    batch_size: int
    in_process: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return f"training/{self.model}/b{self.batch_size}"

    @property
    def kind(self) -> str:
        return "training"

    def run(self, bench: Workbench) -> Outcome:
        with bench.autotuning(False):  # as `train` runs
            result = measure_training(bench, self.model, self.batch_size)
        problem = None
        if not (result.loss_finite and result.loss_fell):
            runs = [r for r in (result.fp32, result.amp) if r is not None]
            said = ", ".join(f"{r.first_loss:.3f} to {r.last_loss:.3f}" for r in runs)
            problem = f"the loss did not fall over {result.steps} steps ({said})"
        fastest = result.amp or result.fp32
        headline = f"{fastest.images_per_s:.1f} images/s" + (
            "" if result.amp_speedup is None else f" with AMP, {result.amp_speedup:.2f}x fp32"
        )
        return Outcome(result, headline, problem)


@dataclass(frozen=True)
class TrainingEpochCase:
    """The plan's epochs of `python -m pipeline train` (`epoch.measure_epochs`) on a dataset
    of JPEGs it writes, in a child process: an epoch's seconds and images/s by the trainer's
    log, data loading, augmentation and validation included; and that the loss was finite."""

    model: str
    in_process: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"training_epoch/{self.model}"

    @property
    def kind(self) -> str:
        return "training_epoch"

    def run(self, bench: Workbench) -> Outcome:
        bench.release()  # the GPU memory the child needs is not the suite's to hold
        result = measure_epochs(bench)
        problem = None
        if not result.loss_finite:
            problem = "the loss was not finite: " + ", ".join(f"{e.loss}" for e in result.epochs)
        return Outcome(result, epoch_headline(result), problem, result.peak_gpu_memory_mib)


def epoch_headline(result: EpochResult) -> str:
    """The last epoch's seconds and images/s, the precision it trained in, its validation's
    seconds, and the first epoch's extra where there were several."""
    first = (
        ""
        if result.first_epoch_extra_seconds is None
        else f", first epoch {result.first_epoch_extra_seconds:+.1f} s"
    )
    return (
        f"{result.epoch_seconds:.1f} s an epoch of {result.train_images} images "
        f"({result.images_per_s:.1f} images/s in {'mixed precision' if result.amp else 'float32'}, "
        f"validation {result.validation_seconds:.1f} s"
        f"{first})"
    )


def plan_cases(plan: Plan) -> list[Case]:
    """Every case of `plan`, in the order they run: tier by tier (`case_tier`), and within
    a tier by kind (`KINDS`); eager cases sharing a detector run in a row, compile cases by
    precision, then model, then the largest batch first, training cases the largest batch
    first."""
    by_kind: dict[str, list[Case]] = {kind: [] for kind in KINDS}
    by_kind["tests"].append(CudaTestsCase())
    if "torch" in plan.runtimes:
        by_kind["model"] += [
            ModelCase(model, "torch", precision, size)
            for model in plan.models
            for precision in plan.precisions
            for size in plan.batch_sizes
        ]
    by_kind["end_to_end"] += [EndToEndCase(pipelining=True), EndToEndCase(pipelining=False)]
    if plan.end_to_end.processes > 1:
        by_kind["end_to_end"].append(EndToEndProcessesCase(plan.end_to_end.processes))
    by_kind["training"] += [
        TrainingCase(model, size)
        for size in sorted(plan.training.batch_sizes, reverse=True)
        for model in plan.training.models
    ]
    by_kind["training_epoch"].append(TrainingEpochCase(plan.epoch.model))
    if "compile" in plan.runtimes:
        by_kind["compile"] += [
            ModelCase(model, "compile", precision, size)
            for precision in plan.precisions
            for model in plan.models
            for size in sorted(plan.batch_sizes, reverse=True)
        ]
    ordered = [case for kind in KINDS for case in by_kind[kind]]
    return sorted(ordered, key=lambda case: case_tier(case, plan))  # stable: kinds stay in order


def case_tier(case: Case, plan: Plan) -> int:
    """1 for the cases every run must measure, 2 for the next most wanted, 3 for the rest;
    a budget too short for all of them skips the last tiers. 1: the tests, the end-to-end
    cases, training steps of the first base at the largest batch, the training epochs,
    eager model-only cases in the first precision, and compile's at the first precision and
    the largest batch (the SSD300 target's shape). 2: eager cases at the largest batch, the
    other training steps, compile's in the first precision. 3: eager and compile cases in
    the other precisions."""
    if isinstance(case, TrainingCase):
        training = plan.training
        first = case.model == training.models[0]
        return 1 if first and case.batch_size == max(training.batch_sizes) else 2
    if not isinstance(case, ModelCase):
        return 1
    first, largest = case.precision == plan.precisions[0], case.batch_size == max(plan.batch_sizes)
    if case.runtime == "compile":
        return 1 if first and largest else 2 if first else 3
    return 1 if first else 2 if largest else 3
