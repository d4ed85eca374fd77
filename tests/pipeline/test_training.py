"""Setting up a training: a resumed run takes up how its class head started, weighs
`--epochs` as the run takes it, and refuses a training state it cannot use."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from detector.architectures import ARCHITECTURES
from detector.checkpoints import save_checkpoint
from detector.training.history import read_history
from detector.training.job import FRESH_CLASS_HEAD, LAST
from detector.training.progress import Progress
from detector.training.settings import TrainSettings
from detector.training.trainer import Trainer
from pipeline.training import TrainingSetupError, prepare
from pipeline.types import LabelMap
from tests.detector.training.datasets import (
    ShapesData,
    make_shapes_dataset,
    val_without_boxes,
    write_coco,
)
from tests.detector.training.stopping import StopAfter

CPU = torch.device("cpu")


def coco_shapes(tmp_path: Path, images: int) -> tuple[ShapesData, str]:
    """A shapes dataset of `images` images (one of them for validation) and the path of its
    COCO file, in `tmp_path`."""
    shapes = make_shapes_dataset(tmp_path / "shapes", images=images, val=1, seed=0)
    return shapes, str(write_coco(shapes, tmp_path / "coco"))


def save_last(out: Path, shapes: ShapesData, extra: dict[str, Any]) -> None:
    """A person_ssdlite checkpoint for `shapes`' classes saved as `out`'s last, with `extra`
    (the training state `train` keeps)."""
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    save_checkpoint(out / LAST, model, "person_ssdlite", 300, LabelMap(shapes.class_names), extra)


@pytest.mark.parametrize(
    ("recorded", "fresh"),
    [({FRESH_CLASS_HEAD: False}, False), ({FRESH_CLASS_HEAD: True}, True), ({}, True)],
    ids=["kept", "made anew", "saved before it was recorded"],
)
def test_a_resumed_run_keeps_whether_its_class_head_started_anew(
    recorded: dict[str, bool], fresh: bool, tmp_path: Path
) -> None:
    shapes, data = coco_shapes(tmp_path, images=3)
    out = tmp_path / "run"
    out.mkdir()
    extra = {
        "settings": TrainSettings(epochs=2).model_dump(),
        "base": "person_ssdlite",
        "epoch": 1,
        "progress": Progress(epoch=2).to_dict(),
        **recorded,
    }
    save_last(out, shapes, extra)
    job, progress, _ = prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    assert job.fresh_class_head is fresh
    assert progress is not None and progress.epoch == 2


@pytest.mark.parametrize(
    ("saved", "min_steps"),
    [({"min_steps": 7}, 7), ({}, 0)],
    ids=["its own", "saved before the setting: its epochs alone"],
)
def test_a_resumed_run_keeps_the_min_steps_it_started_with(
    saved: dict[str, int], min_steps: int, tmp_path: Path
) -> None:
    shapes, data = coco_shapes(tmp_path, images=3)
    out = tmp_path / "run"
    settings = {k: v for k, v in TrainSettings(epochs=2).model_dump().items() if k != "min_steps"}
    extra = {
        "settings": {**settings, **saved},
        "epoch": 1,
        "progress": Progress(epoch=2).to_dict(),
    }
    save_last(out, shapes, extra)
    job, _, _ = prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    assert job.settings.min_steps == min_steps
    with pytest.raises(TrainingSetupError, match="drop min_steps"):
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={"min_steps": 9})


@pytest.mark.parametrize(
    ("settings", "progress", "said"),
    [
        ({"lr": "fast"}, Progress(epoch=2).to_dict(), "(lr: Input should be a valid number"),
        ({}, {**Progress(epoch=2).to_dict(), "epoch": "two"}, "(epoch: Input should be a valid"),
        (
            {"warmup_epochs": 1.0},
            Progress(epoch=2).to_dict(),
            "(its warm-up was counted in epochs; it is now counted in steps)",
        ),
        (
            {},
            {**Progress(epoch=2).to_dict(), "epoch": 0},
            "(progress.epoch is 0; epochs count from 1)",
        ),
        (
            {},
            {**Progress(epoch=1).to_dict(), "step": 5},
            "(progress.step is 5, but an epoch of this data is 1 batch(es): did the data change?)",
        ),
        (
            {},
            {**Progress(epoch=2).to_dict(), "skipped_steps": 9},
            "(progress.skipped_steps is 9, not from 0 to the 1 step(s) done)",
        ),
    ],
    ids=[
        "settings",
        "progress",
        "warm-up counted in epochs",
        "epoch before the first",
        "step beyond the epoch's batches",
        "more skipped steps than done",
    ],
)
def test_a_last_checkpoint_with_a_damaged_training_state_is_refused_in_one_line(
    settings: dict[str, object], progress: dict[str, object], said: str, tmp_path: Path
) -> None:
    shapes, data = coco_shapes(tmp_path, images=3)
    out = tmp_path / "run"
    extra = {
        "settings": {
            **TrainSettings(epochs=2).model_dump(),
            **settings,
        },
        "epoch": 1,
        "progress": progress,
    }
    save_last(out, shapes, extra)
    with pytest.raises(TrainingSetupError) as info:  # the progress's raised TypeError in fit
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    message = str(info.value)
    assert message.startswith(f"--resume: {out / LAST} holds a training state this version")
    assert said in message and "\n" not in message


def test_resume_from_a_plain_state_dict_says_it_holds_no_training_state(
    tmp_path: Path,
) -> None:
    shapes, data = coco_shapes(tmp_path, images=3)
    out = tmp_path / "run"
    out.mkdir()
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    torch.save(model.state_dict(), out / LAST)
    with pytest.raises(TrainingSetupError) as info:
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    assert str(info.value) == (
        f"--resume: {out / LAST} is not a checkpoint train saved (a plain state_dict?): it "
        "holds no training state to resume; start without --resume, into another --out"
    )  # not the advice to set a config's `detector.weights` to it


def test_resume_from_a_folder_named_last_pt_says_it_is_a_folder_not_missing(
    tmp_path: Path,
) -> None:
    _shapes, data = coco_shapes(tmp_path, images=3)
    out = tmp_path / "run"
    (out / LAST).mkdir(parents=True)
    with pytest.raises(TrainingSetupError) as info:
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    assert str(info.value) == (
        f"--resume: {out / LAST} is a folder, not the checkpoint train saves there; move it "
        "away, or start without --resume into another --out"
    )


def test_resume_with_fewer_epochs_than_done_goes_on_to_the_epochs_min_steps_raised_them_to(
    tmp_path: Path,
) -> None:
    _shapes, data = coco_shapes(tmp_path, images=5)
    out = tmp_path / "run"
    # 4 images in batches of 2: 2 steps an epoch, so 8 steps take 4 epochs, not the 1 asked
    asked = {"epochs": 1, "batch_size": 2, "min_steps": 8, "workers": 0, "warmup_steps": 0}
    job, _, _ = prepare(data, "person_ssdlite", out, resume=False, overrides=asked)
    assert job.epochs == 4
    stop = threading.Event()
    begun: list[int] = []

    def stop_at_the_end_of_epoch_3(items: Iterable[Any], **_: Any) -> StopAfter:
        begun.append(len(begun) + 1)
        return StopAfter(items, stop, batches=2 if len(begun) == 3 else 0)  # 0: never

    first = Trainer(job, CPU, stop, progress_bar=stop_at_the_end_of_epoch_3).fit()
    assert first.stopped_by == "interrupted" and first.epochs_done == 3

    # --epochs 2: fewer than the 3 done, more than the 1 asked; with --min-steps 8 it takes 4
    job, progress, _ = prepare(data, "person_ssdlite", out, resume=True, overrides={"epochs": 2})
    assert job.settings.epochs == 2 and job.epochs == 4
    assert progress is not None and (progress.epoch, progress.step) == (4, 0)
    trainer = Trainer(job, CPU, threading.Event())
    done = trainer.fit(progress)
    assert done.stopped_by == "finished" and done.epochs_done == 4
    assert trainer.scheduler.last_epoch == 8  # the 8 steps of one schedule, not 2 more epochs
    assert [r.epoch for r in read_history(out)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("saved", "epochs", "takes"),
    [({"min_steps": 4}, 3, "3"), ({"min_steps": 8}, 1, "4 (--min-steps 8)")],
    ids=["min-steps made no more epochs", "min-steps raised them, to fewer than done"],
)
def test_resume_with_epochs_the_run_takes_fewer_of_than_done_is_refused_in_one_line(
    saved: dict[str, int], epochs: int, takes: str, tmp_path: Path
) -> None:
    shapes, data = coco_shapes(tmp_path, images=5)
    out = tmp_path / "run"
    # 4 images in batches of 2: 2 steps an epoch; the 6 epochs asked were more than min-steps
    settings = TrainSettings(epochs=6, batch_size=2, workers=0, **saved).model_dump()
    extra = {"settings": settings, "epoch": 5, "progress": Progress(epoch=6).to_dict()}
    save_last(out, shapes, extra)
    with pytest.raises(TrainingSetupError) as info:
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={"epochs": epochs})
    assert str(info.value) == (
        f"--resume: {out / LAST} has 5 epoch(s) done, but --epochs {epochs} takes {takes}; "
        "--epochs must be 5 or more"
    )
    job, _, _ = prepare(str(data), "person_ssdlite", out, resume=True, overrides={"epochs": 5})
    assert job.epochs == 5


def test_resume_counts_the_epoch_a_run_stopped_in_as_begun_not_done_and_finishes_it(
    tmp_path: Path,
) -> None:
    _shapes, data = coco_shapes(tmp_path, images=5)
    out = tmp_path / "run"
    # 4 images in batches of 2: 2 steps an epoch; stopped after the first batch of epoch 2
    asked = {"epochs": 3, "batch_size": 2, "min_steps": 0, "workers": 0, "warmup_steps": 0}
    job, _, _ = prepare(data, "person_ssdlite", out, resume=False, overrides=asked)
    stop = threading.Event()
    begun: list[int] = []

    def stop_in_epoch_2(items: Iterable[Any], **_: Any) -> StopAfter:
        begun.append(len(begun) + 1)
        return StopAfter(items, stop, batches=1 if len(begun) == 2 else 0)  # 0: never

    first = Trainer(job, CPU, stop, progress_bar=stop_in_epoch_2).fit()
    assert (first.stopped_by, first.epochs_done, first.step) == ("interrupted", 1, 1)

    # --epochs 1 would end with a step of epoch 2 in the weights, trained but never validated
    with pytest.raises(TrainingSetupError) as info:
        prepare(data, "person_ssdlite", out, resume=True, overrides={"epochs": 1})
    assert str(info.value) == (
        f"--resume: {out / LAST} has 1 epoch(s) done and epoch 2 begun (1 of its 2 batches, "
        "already in the weights: resuming finishes it), but --epochs 1 takes 1; "
        "--epochs must be 2 or more"
    )
    job, progress, _ = prepare(data, "person_ssdlite", out, resume=True, overrides={"epochs": 2})
    assert progress is not None and (progress.epoch, progress.step) == (2, 1)
    trainer = Trainer(job, CPU, threading.Event())
    trainer.restore(progress)
    assert trainer.scheduler.last_epoch == 3
    done = trainer.fit(progress)
    assert (done.stopped_by, done.epochs_done, done.step) == ("finished", 2, 0)
    assert trainer.scheduler.last_epoch == 4  # the one batch left, not epoch 2 begun again
    assert [r.epoch for r in read_history(out)] == [0, 1, 2]


def test_mixed_precision_asked_of_a_training_on_the_cpu_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    _shapes, data = coco_shapes(tmp_path, images=3)
    with pytest.raises(TrainingSetupError) as refused:
        prepare(
            str(data),
            "person_ssdlite",
            tmp_path / "run",
            resume=False,
            overrides={"amp": "on", "device": "cpu"},
        )
    assert str(refused.value) == (
        "--amp on: mixed precision needs a CUDA device, and this training runs on cpu; "
        "use --amp auto or off"
    )


@pytest.mark.parametrize(
    ("overrides", "amp"),
    [({}, "auto"), ({"amp": "off"}, "off")],
    ids=["as saved before it was recorded", "changed"],
)
def test_a_resumed_run_may_change_its_precision(
    overrides: dict[str, Any], amp: str, tmp_path: Path
) -> None:
    shapes, data = coco_shapes(tmp_path, images=3)
    out = tmp_path / "run"
    settings = {k: v for k, v in TrainSettings(epochs=2).model_dump().items() if k != "amp"}
    extra = {"settings": settings, "epoch": 1, "progress": Progress(epoch=2).to_dict()}
    save_last(out, shapes, extra)
    job, _, _ = prepare(str(data), "person_ssdlite", out, resume=True, overrides=overrides)
    assert job.settings.amp == amp


def test_training_images_without_a_box_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    shapes = make_shapes_dataset(tmp_path / "shapes", images=4, val=2, seed=0)
    empty = val_without_boxes(replace(shapes, train=shapes.val, val=shapes.train))
    data = str(write_coco(replace(empty, train=empty.val, val=empty.train), tmp_path / "coco"))
    out = tmp_path / "run"
    with pytest.raises(TrainingSetupError) as refused:  # was: 100 epochs learning nothing
        prepare(data, "person_ssdlite", out, resume=False, overrides={})
    assert str(refused.value).startswith(
        "none of the 2 training image(s) holds a box, so the model would learn to find nothing"
    )
    assert not out.exists()


def test_validation_images_without_a_box_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    shapes = val_without_boxes(make_shapes_dataset(tmp_path / "shapes", images=4, val=2, seed=0))
    data = str(write_coco(shapes, tmp_path / "coco"))
    out = tmp_path / "run"
    with pytest.raises(TrainingSetupError) as refused:
        prepare(data, "person_ssdlite", out, resume=False, overrides={})
    assert str(refused.value) == (
        "none of the 2 validation image(s) holds a box, so no mAP can be measured on them to "
        "choose best.pt: label boxes in the data's validation images"
    )
    assert not out.exists()
