"""The full plan's cases: what the GPU suite is meant to check, in the order that keeps the
most wanted figures when the budget runs out; and a case the device cannot run."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.gpu_suite.budget import Deadline
from benchmarks.gpu_suite.cases import CUDA_TESTS, ModelCase, case_tier, plan_cases
from benchmarks.gpu_suite.plan import DRY, FULL, KINDS, TARGETS
from benchmarks.gpu_suite.workbench import CaseSkipped, Workbench

ROOT = Path(__file__).resolve().parents[3]


def test_the_full_plan_covers_every_model_batch_precision_and_runtime_once() -> None:
    ids = [case.id for case in plan_cases(FULL)]
    assert len(ids) == len(set(ids)) == 1 + 3 * 3 * 3 * 2 + 3 + 2 * 2 + 1
    assert ids[0] == CUDA_TESTS and (ROOT / CUDA_TESTS).is_file()
    for model in ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "person_ssdlite"):
        for runtime in ("torch", "compile"):
            for precision in ("fp32", "fp16", "bf16"):
                for batch in (1, 8, 64):
                    assert f"model/{model}/{runtime}/{precision}/b{batch}" in ids
    assert "end_to_end/pipelining_on" in ids and "end_to_end/pipelining_off" in ids
    assert f"end_to_end/processes_{FULL.end_to_end.processes}" in ids
    for model in ("person_ssdlite", "ssdlite320_mobilenet_v3_large"):
        for batch in (8, 32):
            assert f"training/{model}/b{batch}" in ids
    assert "training_epoch/person_ssdlite" in ids


@pytest.mark.parametrize("processes", [0, FULL.end_to_end.copies + 1])
def test_an_end_to_end_plan_splitting_its_cameras_over_too_few_or_many_processes_is_refused(
    processes: int,
) -> None:
    with pytest.raises(ValueError, match="over 1 to `copies` processes"):
        replace(FULL.end_to_end, processes=processes)


def test_a_training_plan_without_a_warm_up_step_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one warm-up and one timed step"):
        replace(FULL.training, warmup=0)


def test_every_kinds_first_tier_runs_before_any_other_case_each_tier_by_kind() -> None:
    cases = plan_cases(FULL)
    tiers = [case_tier(case, FULL) for case in cases]
    assert tiers == sorted(tiers)
    for tier in (1, 2, 3):
        kinds = [case.kind for case in cases if case_tier(case, FULL) == tier]
        assert kinds == sorted(kinds, key=KINDS.index)
    first = {case.id for case in cases if case_tier(case, FULL) == 1}
    assert {case.kind for case in cases if case.id in first} == set(KINDS)
    assert {"end_to_end/pipelining_on", "end_to_end/pipelining_off"} <= first
    assert {"training/person_ssdlite/b32", "training_epoch/person_ssdlite"} <= first
    assert "training/ssdlite320_mobilenet_v3_large/b32" not in first
    for model in FULL.models:
        assert {f"model/{model}/torch/fp16/b{b}" for b in FULL.batch_sizes} <= first
        assert f"model/{model}/compile/fp16/b64" in first
        assert f"model/{model}/compile/fp16/b8" not in first
        assert f"model/{model}/torch/fp32/b64" not in first
    first_compiled = next(case for case in cases if case.kind == "compile")
    assert first_compiled.id == "model/ssd300_vgg16/compile/fp16/b64"


def test_training_runs_every_base_at_the_largest_batch_before_a_smaller_one() -> None:
    ids = [case.id for case in plan_cases(FULL) if case.kind == "training"]
    assert ids[:2] == [f"training/{m}/b32" for m in FULL.training.models]
    assert sorted(ids[2:]) == sorted(f"training/{m}/b8" for m in FULL.training.models)


def test_other_precisions_run_at_the_largest_batch_before_smaller_ones_and_compile_last() -> None:
    ids = [case.id for case in plan_cases(FULL)]
    for model in FULL.models:
        for precision in ("bf16", "fp32"):
            largest = ids.index(f"model/{model}/torch/{precision}/b64")
            assert largest < ids.index(f"model/{model}/torch/{precision}/b1")
            assert largest < ids.index(f"training/{FULL.training.models[0]}/b8")
        compiled_fp16 = ids.index(f"model/{model}/compile/fp16/b1")
        assert compiled_fp16 < min(i for i, x in enumerate(ids) if "/compile/bf16/" in x)
    assert ids[-1].startswith("model/") and "/compile/fp32/" in ids[-1]


def test_within_a_tier_the_cases_of_one_detector_run_in_a_row() -> None:
    for tier in (1, 2, 3):
        keys = [
            (c.model, c.runtime, c.precision)
            for c in plan_cases(FULL)
            if isinstance(c, ModelCase) and case_tier(c, FULL) == tier
        ]
        runs = [key for i, key in enumerate(keys) if i == 0 or keys[i - 1] != key]
        assert len(runs) == len(set(runs)), tier  # each detector is made once a tier


def test_every_target_names_cases_of_the_full_plan() -> None:
    ids = [case.id for case in plan_cases(FULL)]
    for target in TARGETS:
        assert fnmatch.filter(ids, target.cases), target


def test_a_precision_the_device_cannot_run_is_skipped_with_the_detectors_reason(
    tmp_path: Path,
) -> None:
    deadline = Deadline(DRY.budget_s, DRY.first_guess_s)
    bench = Workbench(DRY, deadline, torch.device("cpu"), ROOT, ROOT, tmp_path)
    with pytest.raises(CaseSkipped, match="cannot run here: precision fp16 needs a CUDA device"):
        bench.detector("person_ssdlite", "torch", "fp16")


def test_a_model_is_built_once_for_the_detectors_of_all_its_runtimes_and_precisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detector.models

    built: list[str] = []
    build = detector.models.build_model

    def counted(model: str, weights: str = "default", size: int | None = None) -> Any:
        built.append(model)
        return build(model, weights, size)

    monkeypatch.setattr(detector.models, "build_model", counted)
    deadline = Deadline(DRY.budget_s, DRY.first_guess_s)
    bench = Workbench(DRY, deadline, torch.device("cpu"), ROOT, ROOT, tmp_path)
    eager = bench.detector("person_ssdlite", "torch", "fp32")
    assert bench.detector("person_ssdlite", "torch", "fp32") is eager
    compiled = bench.detector("person_ssdlite", "compile", "fp32")
    assert compiled is not eager and compiled.runtime == "compile"
    assert compiled.model is not eager.model  # each runs its own prepared copy
    bench.detector("ssdlite320_mobilenet_v3_large", "torch", "fp32")
    bench.detector("person_ssdlite", "torch", "fp32")
    assert built == ["person_ssdlite", "ssdlite320_mobilenet_v3_large"]


def test_autotuning_is_set_for_a_case_and_put_back_after_it_even_when_it_fails(
    tmp_path: Path,
) -> None:
    deadline = Deadline(DRY.budget_s, DRY.first_guess_s)
    bench = Workbench(DRY, deadline, torch.device("cpu"), ROOT, ROOT, tmp_path)
    was = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = True
        with pytest.raises(RuntimeError), bench.autotuning(False):
            assert not torch.backends.cudnn.benchmark
            raise RuntimeError("the case failed")
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = was
