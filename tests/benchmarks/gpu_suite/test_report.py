"""The report's targets: the best matching figure of the cases that ran, met or not."""

from __future__ import annotations

from benchmarks.gpu_suite.plan import TARGETS
from benchmarks.gpu_suite.report import CaseRecord, SuiteReport


def report_with(*cases: CaseRecord) -> SuiteReport:
    return SuiteReport("cmd", "full", "today", {}, 420.0, {}, cases=list(cases))


def model(runtime: str, batch: int, images_per_s: float, status: str = "ran") -> CaseRecord:
    return CaseRecord(
        f"model/ssd300_vgg16/{runtime}/fp16/b{batch}", "model", status,
        figures={"images_per_s": images_per_s},
    )  # fmt: skip


def end_to_end(pipelining: str, frames_per_s: float) -> CaseRecord:
    return CaseRecord(
        f"end_to_end/pipelining_{pipelining}", "end_to_end", "ran",
        figures={"frames_per_s": frames_per_s},
    )  # fmt: skip


def test_a_target_takes_the_best_matching_case_that_ran() -> None:
    report = report_with(
        model("torch", 64, 2500.0), model("compile", 64, 3200.0), model("compile", 8, 9000.0),
        model("torch", 64, 99999.0, status="failed"), end_to_end("on", 1400.0),
        end_to_end("off", 900.0),
    )  # fmt: skip
    ssd300, e2e = report.targets(held=True)
    assert (ssd300.best, ssd300.best_case, ssd300.status) == (
        3200.0,
        "model/ssd300_vgg16/compile/fp16/b64",
        "met",
    )
    assert (e2e.best, e2e.best_case, e2e.status) == (1400.0, "end_to_end/pipelining_on", "not met")
    assert [t.at_least for t in (ssd300, e2e)] == [t.at_least for t in TARGETS]


def test_a_target_no_case_measured_is_not_measured_rather_than_not_met() -> None:
    skipped = CaseRecord("model/ssd300_vgg16/torch/fp16/b64", "model", "skipped", "time budget")
    targets = report_with(skipped).targets(held=True)
    assert [(t.status, t.best, t.note) for t in targets] == [
        ("not measured", None, "no matching case ran")
    ] * len(TARGETS)


def test_the_dry_run_holds_no_figure_to_the_targets() -> None:
    targets = report_with(model("torch", 64, 5000.0)).targets(held=False)
    assert {(t.status, t.note) for t in targets} == {("not measured", "dry run")}
