"""The training-epoch case: the dataset it writes is one `train` reads, its record is read
from the trainer's log and the child's report, and a train that fails or a loss that is not
finite is recorded as a failure, not as figures."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.gpu_suite import cases
from benchmarks.gpu_suite.budget import Deadline
from benchmarks.gpu_suite.epoch import (
    EpochResult,
    epoch_result,
    measure_epochs,
    train_arguments,
    write_dataset,
)
from benchmarks.gpu_suite.plan import DRY, FULL, EpochPlan
from benchmarks.gpu_suite.workbench import Workbench
from detector.training.history import EpochRecord, write_history
from detector.training.samples import read_dataset
from pipeline.bench.clips import DEFAULT_CLIP

ROOT = Path(__file__).resolve().parents[3]
CLIP = ROOT / DEFAULT_CLIP


def _child(plan: EpochPlan, validations: list[float]) -> dict[str, Any]:
    """What train_child reports of a CPU run of `plan`."""
    return {
        "exit_code": 0,
        "trainer": {
            "device": "cpu", "amp": False, "batch_size": 2, "workers": 0,
            "train_images": plan.train_images, "val_images": plan.val_images,
            "steps_per_epoch": plan.train_images // 2, "input_size": 300, "setup_seconds": 4.5,
        },
        "validation_seconds": validations,
        "peak_gpu_memory_mib": None,
        "seconds": 20.0,
    }  # fmt: skip


def _record(epoch: int, seconds: float, loss: float) -> EpochRecord:
    return EpochRecord(epoch, 0.001, loss, loss / 2, loss / 2, 0.1, 0.2, seconds, 4 / seconds)


def test_the_dataset_written_is_read_by_train_with_its_splits_and_image_size(
    tmp_path: Path,
) -> None:
    plan = replace(DRY.epoch, train_images=5, val_images=3, image_size=(96, 64))
    data = read_dataset(write_dataset(tmp_path / "data", CLIP, plan))
    assert data.class_names == ("background", "person")
    assert (len(data.train), len(data.val)) == (5, 3)
    for sample in data.train + data.val:
        assert (sample.width, sample.height) == (96, 64) and sample.image.is_file()
        assert 1 <= len(sample.boxes) <= 3 and set(sample.labels.tolist()) == {1}


def test_the_full_plans_dataset_is_hundreds_of_640x480_images_at_trains_defaults() -> None:
    plan = FULL.epoch
    assert plan.image_size == (640, 480) and plan.train_images >= 256
    args = train_arguments(plan, Path("data"), Path("out"), "cuda")
    assert "--batch-size" not in args and "--workers" not in args  # train's defaults
    assert args[args.index("--min-steps") + 1] == "0"  # the epochs asked, not more
    assert args[args.index("--device") + 1] == "cuda"
    assert args[args.index("--amp") + 1] == "auto"  # train's default: the base's recipe


def test_the_record_takes_each_epochs_time_from_the_log_and_the_last_as_the_steady_one(
    tmp_path: Path,
) -> None:
    plan = DRY.epoch
    write_history([_record(0, 1.5, math.nan), _record(1, 9.0, 8.0), _record(2, 6.0, 4.0)], tmp_path)
    args = train_arguments(plan, tmp_path / "data", tmp_path, "cpu")
    result = epoch_result(plan, args, tmp_path, _child(plan, [1.5, 1.0, 0.75]), 25.0, 0.2)
    assert result.train_images == plan.train_images and result.val_images == plan.val_images
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert result.epoch_seconds == 6.0 and result.validation_seconds == 0.75
    assert result.images_per_s == pytest.approx(plan.train_images / 6.0)
    assert result.first_epoch_extra_seconds == 3.0 and result.start_validation_seconds == 1.5
    assert result.loss_finite and result.device == "cpu" and not result.amp
    assert result.command.startswith("python -m pipeline train --data ")
    assert cases.epoch_headline(result) == (
        "6.0 s an epoch of 4 images (0.7 images/s in float32, validation 0.8 s, first epoch +3.0 s)"
    )


def test_a_log_without_every_epoch_asked_is_refused(tmp_path: Path) -> None:
    plan = DRY.epoch
    write_history([_record(0, 1.5, math.nan), _record(1, 9.0, 8.0)], tmp_path)
    with pytest.raises(RuntimeError, match="train logged 2 epochs and 2 validations"):
        epoch_result(plan, [], tmp_path, _child(plan, [1.5, 1.0]), 25.0, 0.2)


def test_a_train_that_fails_is_an_error_with_its_last_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.gpu_suite import epoch

    def with_a_bad_lr(*args: Any) -> list[str]:
        return [*train_arguments(*args), "--lr", "-1"]

    monkeypatch.setattr(epoch, "train_arguments", with_a_bad_lr)
    deadline = Deadline(DRY.budget_s, DRY.first_guess_s)
    bench = Workbench(DRY, deadline, torch.device("cpu"), CLIP, ROOT, tmp_path)
    with pytest.raises(RuntimeError, match=r"train exited with status 2\n.*--lr") as raised:
        measure_epochs(bench)
    assert "error: " in str(raised.value)


def test_a_loss_that_was_not_finite_fails_the_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = DRY.epoch
    write_history(
        [_record(0, 1.5, math.nan), _record(1, 9.0, 8.0), _record(2, 6.0, math.inf)], tmp_path
    )
    diverged = epoch_result(plan, [], tmp_path, _child(plan, [1.5, 1.0, 0.75]), 25.0, 0.2)
    assert not diverged.loss_finite

    def measured(bench: Workbench) -> EpochResult:
        return diverged

    monkeypatch.setattr(cases, "measure_epochs", measured)
    deadline = Deadline(DRY.budget_s, DRY.first_guess_s)
    bench = Workbench(DRY, deadline, torch.device("cpu"), CLIP, ROOT, tmp_path)
    outcome = cases.TrainingEpochCase(plan.model).run(bench)
    assert outcome.problem == "the loss was not finite: 8.0, inf"
    assert outcome.headline.startswith("6.0 s an epoch of 4 images (0.7 images/s")


def test_an_epoch_plan_without_a_validation_image_is_refused() -> None:
    with pytest.raises(ValueError, match="one validation image at least"):
        replace(DRY.epoch, val_images=0)
