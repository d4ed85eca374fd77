"""The suite's dry run on the CPU: every case of the plan ran or is listed as skipped with
a reason, and the JSON says what ran where and against which targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.gpu_suite.__main__ import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from benchmarks.gpu_suite.cases import plan_cases
from benchmarks.gpu_suite.plan import DRY, KINDS, TARGETS


@pytest.fixture(scope="module")
def dry_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu-suite") / "suite.json"
    assert main(["--dry-run", "--device", "cpu", "--out", str(out)]) == EXIT_OK
    assert [p.name for p in out.parent.iterdir()] == ["suite.json"]  # no partial file left
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_dry_run_lists_every_case_of_the_plan_once_as_ran_or_skipped_with_a_reason(
    dry_report: dict[str, Any],
) -> None:
    cases = dry_report["cases"]
    assert [c["id"] for c in cases] == [case.id for case in plan_cases(DRY)]
    assert {c["kind"] for c in cases} == set(KINDS)
    for case in cases:
        assert case["status"] in ("ran", "skipped"), case
        assert (case["reason"] is None) == (case["status"] == "ran"), case
        assert (case["figures"] is not None) == (case["status"] == "ran"), case
        assert case["peak_gpu_memory_mib"] is None  # the CPU has none to count
    ran = [c for c in cases if c["status"] == "ran"]
    assert dry_report["summary"] == {"ran": len(ran), "skipped": len(cases) - len(ran), "failed": 0}
    assert dry_report["finished"] and dry_report["elapsed_s"] > 0


def test_dry_run_runs_the_tests_model_only_and_end_to_end_on_the_cpu(
    dry_report: dict[str, Any],
) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for case in dry_report["cases"]:
        by_kind.setdefault(case["kind"], []).append(case)
    (tests,) = by_kind["tests"]
    counts = tests["figures"]
    assert tests["status"] == "ran" and counts["exit_code"] == 0
    assert counts["passed"] + counts["skipped"] > 0 and counts["failed"] == counts["errors"] == 0
    if not torch.cuda.is_available():
        assert counts["skip_reasons"] == ["needs a CUDA GPU"]
    models = by_kind["model"]
    assert len(models) == len(DRY.models) * len(DRY.precisions) * len(DRY.batch_sizes)
    for case in models:
        assert case["status"] == "ran" and case["figures"]["images_per_s"] > 0
        assert case["figures"]["runtime"] == "torch"
    e2e = DRY.end_to_end
    assert e2e.frames is not None
    *pipelined, processes = by_kind["end_to_end"]
    assert [c["id"] for c in pipelined] == ["end_to_end/pipelining_on", "end_to_end/pipelining_off"]
    for case in pipelined:
        figures = case["figures"]
        assert case["status"] == "ran" and figures["frames"] == e2e.copies * e2e.frames
        assert figures["frame_size"] == f"{e2e.size[0]}x{e2e.size[1]}"
        assert figures["video"] == "none" and figures["frames_per_s"] > 0
    on, off = (case["figures"] for case in pipelined)
    assert not off["pipelined"]
    # The stages are timed once: timed stage by stage, batches overlap in neither case.
    assert on["stages_ms_per_frame"]["detect_forward"] > 0 and off["stages_ms_per_frame"] == {}
    # The same cameras split over processes, each reading its share: every frame counted.
    assert processes["id"] == f"end_to_end/processes_{e2e.processes}"
    split = processes["figures"]
    assert processes["status"] == "ran" and split["frames"] == e2e.copies * e2e.frames
    assert split["processes"] == e2e.processes and split["cameras"] == e2e.copies
    assert len(split["per_process_frames_per_s"]) == e2e.processes
    assert split["frames_per_s"] == pytest.approx(split["frames"] / split["seconds"])


def test_dry_run_trains_with_the_trainers_step_in_fp32_and_the_loss_falls(
    dry_report: dict[str, Any],
) -> None:
    plan = DRY.training
    training = [c for c in dry_report["cases"] if c["kind"] == "training"]
    assert [c["id"] for c in training] == [
        f"training/{m}/b{b}" for m in plan.models for b in plan.batch_sizes
    ]
    for case in training:
        figures = case["figures"]
        assert case["status"] == "ran" and figures["steps"] == plan.warmup + plan.steps
        assert figures["loss_finite"] and figures["loss_fell"]
        fp32 = figures["fp32"]
        assert fp32["amp"] is False and fp32["grad_scale"] is None
        assert fp32["images_per_s"] > 0 and fp32["last_loss"] < fp32["first_loss"]
        # The trainer runs mixed precision on CUDA only: on the CPU there is no AMP run.
        assert figures["amp"] is None and figures["amp_speedup"] is None


def test_dry_run_trains_epochs_with_the_train_command_and_records_them_by_its_log(
    dry_report: dict[str, Any],
) -> None:
    plan = DRY.epoch
    (case,) = [c for c in dry_report["cases"] if c["kind"] == "training_epoch"]
    assert case["id"] == f"training_epoch/{plan.model}" and case["status"] == "ran"
    figures = case["figures"]
    assert figures["train_images"] == plan.train_images
    assert figures["val_images"] == plan.val_images
    assert figures["image_size"] == f"{plan.image_size[0]}x{plan.image_size[1]}"
    assert figures["batch_size"] == plan.batch_size and figures["workers"] == plan.workers
    assert figures["steps_per_epoch"] == plan.train_images // (plan.batch_size or 1)
    assert figures["device"] == "cpu" and figures["amp"] is False
    assert figures["peak_gpu_memory_mib"] is None and figures["loss_finite"]
    assert [e["epoch"] for e in figures["epochs"]] == list(range(1, plan.epochs + 1))
    last = figures["epochs"][-1]
    assert figures["epoch_seconds"] == last["seconds"] > last["validation_seconds"] > 0
    assert figures["images_per_s"] == pytest.approx(plan.train_images / last["seconds"])
    assert figures["first_epoch_extra_seconds"] is not None
    assert figures["start_validation_seconds"] > 0 and figures["setup_seconds"] > 0
    assert figures["process_seconds"] > figures["setup_seconds"] + figures["epoch_seconds"]
    assert figures["command"].startswith("python -m pipeline train --data ")
    assert case["headline"].startswith(f"{last['seconds']:.1f} s an epoch of ")


def test_dry_run_skips_the_compile_cases_its_budget_cannot_hold(
    dry_report: dict[str, Any],
) -> None:
    compiled = [c for c in dry_report["cases"] if c["kind"] == "compile"]
    assert len(compiled) == len(DRY.models) * len(DRY.precisions) * len(DRY.batch_sizes)
    for case in compiled:
        assert case["status"] == "skipped" and case["reason"].startswith("time budget: ")


def test_dry_report_says_what_it_ran_on_and_holds_no_figure_to_the_targets(
    dry_report: dict[str, Any],
) -> None:
    assert dry_report["format"] == "gpu-suite/1" and dry_report["plan"] == "dry"
    assert dry_report["command"].startswith("python -m benchmarks.gpu_suite --dry-run")
    environment = dry_report["environment"]
    assert environment["torch"] == torch.__version__ and environment["date"]
    assert {"gpu", "driver", "cuda", "cudnn", "torchvision", "python", "cpu"} <= set(environment)
    assert dry_report["settings"]["batch_sizes"] == list(DRY.batch_sizes)
    assert [t["name"] for t in dry_report["targets"]] == [t.name for t in TARGETS]
    assert {t["status"] for t in dry_report["targets"]} == {"not measured"}


def test_a_case_that_fails_is_recorded_and_the_next_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.gpu_suite import cases
    from pipeline.bench.model_only import bench_model

    def broken_at_batch_2(detector, name, weights, precision, batch_size, *rest):
        if batch_size == 2:
            raise RuntimeError("out of memory\nsecond line")
        return bench_model(detector, name, weights, precision, batch_size, *rest)

    monkeypatch.setattr(cases, "bench_model", broken_at_batch_2)
    out = tmp_path / "suite.json"
    assert (
        main(["--dry-run", "--device", "cpu", "--only", "model", "--out", str(out)]) == EXIT_FAILED
    )
    report = json.loads(out.read_text())
    statuses = {c["id"]: (c["status"], c["reason"]) for c in report["cases"]}
    assert statuses["model/person_ssdlite/torch/fp32/b1"] == ("ran", None)
    assert statuses["model/person_ssdlite/torch/fp32/b2"] == (
        "failed",
        "RuntimeError: out of memory",
    )
    assert statuses["model/ssdlite320_mobilenet_v3_large/torch/fp32/b1"] == ("ran", None)
    assert statuses["end_to_end/pipelining_on"] == ("skipped", "left out (--only)")
    failed = next(c for c in report["cases"] if c["status"] == "failed")
    assert "RuntimeError: out of memory" in failed["traceback"]
    assert report["summary"]["failed"] == 2 and report["finished"]
    assert "2 failed" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:1"])
def test_without_cuda_the_full_plan_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    assert main(["--device", device, "--out", str(tmp_path / "suite.json")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--dry-run" in err and err.count("\n") == 1
    assert not (tmp_path / "suite.json").exists()


def test_an_out_file_in_a_missing_folder_or_a_folder_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "suite.json"
    assert main(["--dry-run", "--out", str(out)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"error: --out: folder {out.parent} does not exist\n"
    assert main(["--dry-run", "--out", str(tmp_path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"error: --out: {tmp_path} is a folder; name a file\n"


def test_a_training_case_whose_loss_did_not_fall_is_recorded_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from benchmarks.gpu_suite import cases
    from benchmarks.gpu_suite.training import measure_training

    def stuck(*args: Any) -> Any:
        result = measure_training(*args)
        fp32 = replace(result.fp32, last_loss=result.fp32.first_loss)
        return replace(result, fp32=fp32, loss_fell=False)

    monkeypatch.setattr(cases, "measure_training", stuck)
    out = tmp_path / "suite.json"
    assert main(["--dry-run", "--only", "training", "--out", str(out)]) == EXIT_FAILED
    (case,) = [c for c in json.loads(out.read_text())["cases"] if c["status"] != "skipped"]
    assert case["id"] == "training/person_ssdlite/b2" and case["status"] == "failed"
    steps = DRY.training.warmup + DRY.training.steps
    assert case["reason"].startswith(f"the loss did not fall over {steps} steps (")
    assert not case["figures"]["loss_fell"]
