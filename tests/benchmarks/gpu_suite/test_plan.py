"""The full plan's cases: what the GPU suite is meant to check, in the order that keeps the
most wanted figures when the budget runs out; and a case the device cannot run."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_suite.budget import Deadline
from benchmarks.gpu_suite.cases import CUDA_TESTS, plan_cases
from benchmarks.gpu_suite.plan import DRY, FULL, KINDS, TARGETS
from benchmarks.gpu_suite.workbench import CaseSkipped, Workbench

ROOT = Path(__file__).resolve().parents[3]


def test_the_full_plan_covers_every_model_batch_precision_and_runtime_once() -> None:
    ids = [case.id for case in plan_cases(FULL)]
    assert len(ids) == len(set(ids)) == 1 + 3 * 3 * 3 * 2 + 2 + 2 * 2
    assert ids[0] == CUDA_TESTS and (ROOT / CUDA_TESTS).is_file()
    for model in ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "person_ssdlite"):
        for runtime in ("torch", "compile"):
            for precision in ("fp32", "fp16", "bf16"):
                for batch in (1, 8, 64):
                    assert f"model/{model}/{runtime}/{precision}/b{batch}" in ids
    assert "end_to_end/pipelining_on" in ids and "end_to_end/pipelining_off" in ids
    for model in ("person_ssdlite", "ssdlite320_mobilenet_v3_large"):
        for batch in (8, 32):
            assert f"training/{model}/b{batch}" in ids


def test_a_training_plan_without_a_warm_up_step_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one warm-up and one timed step"):
        replace(FULL.training, warmup=0)


def test_cases_run_by_kind_and_compile_starts_with_the_targets_shape() -> None:
    cases = plan_cases(FULL)
    kinds = [case.kind for case in cases]
    assert kinds == sorted(kinds, key=KINDS.index)
    first_compiled = next(case for case in cases if case.kind == "compile")
    assert first_compiled.id == "model/ssd300_vgg16/compile/fp16/b64"


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
