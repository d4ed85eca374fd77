"""The training loop on a tiny shapes dataset, on the CPU: it learns, keeps the best
weights with what they need, logs every epoch, and resumes a stopped run exactly."""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import detector.training.trainer as trainer_module
from detector.architectures import SPECS, build
from detector.checkpoints import load_checkpoint
from detector.training.bases import trainable_model
from detector.training.evaluation import coco_metrics
from detector.training.history import read_history
from detector.training.job import BEST, FRESH_CLASS_HEAD, LAST, TrainingJob
from detector.training.loader import SampleDataset, SampleLoader
from detector.training.progress import Progress
from detector.training.samples import Sample
from detector.training.schedule import WARMUP_START, WarmupCosine
from detector.training.settings import TrainSettings, recipe_for
from detector.training.trainer import Trainer, TrainingDiverged
from detector.training.transforms import eval_transform, train_transform
from detector.training.validation import predict
from tests.detector.training.datasets import ShapesData, make_shapes_dataset
from tests.detector.training.stopping import StopAfter

CPU = torch.device("cpu")


def job_for(shapes: ShapesData, out: Path, train: int = 8, **settings: Any) -> TrainingJob:
    """A job on the first `train` training images of `shapes` (fewer: a quicker test), of
    `epochs` alone unless `min_steps` is given."""
    chosen = TrainSettings(**{"batch_size": 4, "workers": 0, "min_steps": 0, **settings})
    ready = trainable_model("person_ssdlite", shapes.class_names, None, seed=chosen.seed)
    return TrainingJob(
        model=ready.model,
        arch=ready.arch,
        size=ready.size,
        class_names=shapes.class_names,
        train=shapes.train[:train],
        val=shapes.val,
        settings=chosen,
        out=out,
        base="person_ssdlite",
        data="shapes",
        fresh_class_head=ready.fresh_class_head,
    )


LEARNED_MAP50 = 0.05
"""Validation mAP@.5 that 4 epochs on 24 shape images reach at least, augmented as in any
training (the best epoch measured 0.12-0.20 over three seeds on an AMD EPYC, 2026-12-02);
the untrained class head scores about 0."""


def test_training_lowers_the_loss_and_reaches_a_map_the_untrained_head_does_not(
    tmp_path: Path,
) -> None:
    shapes = make_shapes_dataset(tmp_path / "shapes", images=32, val=8, seed=0)
    job = job_for(shapes, tmp_path / "out", train=24, epochs=4, batch_size=4, warmup_steps=2)
    val = SampleLoader(
        SampleDataset(shapes.val, eval_transform(job.size)), 4, shuffle=False, seed=0
    )
    untrained = coco_metrics(
        shapes.val,
        predict(
            job.model,
            (b.images for b in val),
            [(s.width, s.height) for s in shapes.val],
            CPU,
            job.settings.eval_score_threshold,
        ),
        shapes.class_names,
    )
    heard: list[int] = []
    result = Trainer(job, CPU, threading.Event(), on_epoch=lambda r, _: heard.append(r.epoch)).fit()

    assert result.stopped_by == "finished" and result.epochs_done == 4
    assert heard == [0, 1, 2, 3, 4]  # epoch 0: the starting weights, scored first
    history = read_history(job.out)
    assert [r.epoch for r in history] == [0, 1, 2, 3, 4]
    assert history[0].map50 == pytest.approx(untrained.map50)
    assert math.isnan(history[0].loss) and history[0].lr == 0  # no step taken
    assert history[-1].loss < history[1].loss
    assert result.best_epoch > 0  # a head made anew: its random start never is `best.pt`
    best_map50 = max(r.map50 for r in history)
    assert best_map50 >= LEARNED_MAP50 > untrained.map50
    best = load_checkpoint(job.out / BEST)
    assert best.labels.names == shapes.class_names
    assert best.size == job.size and best.arch == "person_ssdlite"
    assert best.extra["settings"]["epochs"] == 4
    assert best.extra["epoch"] == result.best_epoch
    assert best.extra["metrics"]["map"] == pytest.approx(result.best_map)
    for name in ("history.csv", "history.json"):
        assert (job.out / name).stat().st_size > 0
    assert (job.out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, *rows = (job.out / "history.csv").read_text().splitlines()
    assert header.split(",")[:3] == ["epoch", "lr", "loss"] and len(rows) == 5
    assert rows[0].startswith("0,0.0,,")  # epoch 0's losses: not measured, left empty


def test_a_stopped_run_saves_the_batch_it_reached_and_resumes_there_with_its_optimiser(
    shapes: ShapesData, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    stop = threading.Event()
    first = Trainer(
        job_for(shapes, out, train=4, epochs=2, warmup_steps=0, batch_size=2),
        CPU,
        stop,
        progress_bar=lambda items, **_: StopAfter(items, stop, batches=1),
    )
    result = first.fit()
    assert result.stopped_by == "interrupted" and result.epochs_done == 0

    saved = load_checkpoint(out / LAST)
    progress = Progress.from_dict(saved.extra["progress"])
    assert (progress.epoch, progress.step) == (1, 1)
    assert saved.extra[FRESH_CLASS_HEAD] is True  # a resumed run keeps the head's rate
    momentum = first.optimizer.state_dict()["state"]
    assert momentum  # SGD's momentum buffers exist after a step

    again = replace(
        job_for(shapes, out, train=4, epochs=2, warmup_steps=0, batch_size=2), model=saved.model
    )
    second = Trainer(again, CPU, threading.Event())
    second.restore(progress)
    restored = second.optimizer.state_dict()["state"]
    assert restored.keys() == momentum.keys()
    for key in momentum:
        assert torch.equal(restored[key]["momentum_buffer"], momentum[key]["momentum_buffer"])
    assert second.scheduler.last_epoch == 1  # one step of the schedule was taken
    done = second.fit(progress)
    assert done.stopped_by == "finished" and done.epochs_done == 2
    assert [r.epoch for r in read_history(out)] == [0, 1, 2]  # epoch 0 scored once


def test_a_stop_while_the_starting_weights_are_scored_takes_no_step(
    shapes: ShapesData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C during epoch 0's validation used to train a batch of epoch 1 before stopping.
    out, stop = tmp_path / "out", threading.Event()
    trainer = Trainer(job_for(shapes, out, train=4, epochs=2, batch_size=2), CPU, stop)
    score_start = trainer._score_start

    def stopped_while_scoring(state: Progress) -> None:
        score_start(state)
        stop.set()

    monkeypatch.setattr(trainer, "_score_start", stopped_while_scoring)
    monkeypatch.setattr(trainer, "step", lambda *_: pytest.fail("a step after the stop"))
    result = trainer.fit()
    assert result.stopped_by == "interrupted" and result.epochs_done == 0
    progress = Progress.from_dict(load_checkpoint(out / LAST).extra["progress"])
    assert (progress.epoch, progress.step) == (1, 0)
    assert [r.epoch for r in read_history(out)] == [0]


def test_an_epoch_stopped_in_counts_among_the_epochs_a_resumed_run_must_take() -> None:
    assert Progress(epoch=5, step=0).least_epochs == 4  # stopped between epochs 4 and 5
    assert Progress(epoch=5, step=3).least_epochs == 5  # 3 batches of epoch 5 in the weights


def test_the_record_of_an_epoch_a_resumed_run_finishes_is_of_all_its_batches(
    shapes: ShapesData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    settings: dict[str, Any] = {"train": 4, "epochs": 1, "warmup_steps": 0, "batch_size": 2}
    stop = threading.Event()
    first = Trainer(
        job_for(shapes, out, **settings),
        CPU,
        stop,
        progress_bar=lambda items, **_: StopAfter(items, stop, batches=1),
    )
    assert first.fit().stopped_by == "interrupted"
    saved = load_checkpoint(out / LAST)
    stopped = Progress.from_dict(saved.extra["progress"])
    assert stopped.step == 1 and len(stopped.losses) == 1 and stopped.seconds > 0

    second = Trainer(
        replace(job_for(shapes, out, **settings), model=saved.model), CPU, threading.Event()
    )
    after: list[tuple[float, float]] = []
    take_step = second.step

    def step(batch: Any, state: Progress) -> tuple[float, float]:
        after.append(take_step(batch, state))
        return after[-1]

    monkeypatch.setattr(second, "step", step)
    assert second.fit(Progress.from_dict(saved.extra["progress"])).epochs_done == 1
    assert len(after) == 1  # the batch left, not the epoch begun again
    record = read_history(out)[1]
    (before,) = stopped.losses
    assert record.localisation == pytest.approx((before[0] + after[0][0]) / 2)
    assert record.confidence == pytest.approx((before[1] + after[0][1]) / 2)
    assert record.seconds > stopped.seconds  # the time before the stop counts in


def test_a_resumed_run_given_more_epochs_goes_on_to_them_on_the_longer_schedule(
    shapes: ShapesData, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = Trainer(
        job_for(shapes, out, train=4, epochs=1, warmup_steps=0, batch_size=2),
        CPU,
        threading.Event(),
    )
    assert first.fit().epochs_done == 1
    saved = load_checkpoint(out / LAST)
    progress = Progress.from_dict(saved.extra["progress"])

    longer = replace(
        job_for(shapes, out, train=4, epochs=3, warmup_steps=0, batch_size=2), model=saved.model
    )
    second = Trainer(longer, CPU, threading.Event())
    second.restore(progress)
    # 2 steps done of 6: the rate a 3-epoch run has there, not the 1-epoch run's zero
    lr = longer.settings.lr_for(longer.arch, longer.fresh_class_head)
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.75)
    done = second.fit(progress)
    assert done.stopped_by == "finished" and done.epochs_done == 3
    history = read_history(out)
    assert [r.epoch for r in history] == [0, 1, 2, 3]
    assert history[1].lr < history[2].lr  # the first run's rate had decayed to ~0


@pytest.mark.parametrize(
    ("classes", "fresh"),
    [(("background", "person"), False), (("background", "disc", "square", "triangle"), True)],
    ids=["person head kept", "head made anew"],
)
def test_a_head_made_anew_learns_faster_and_a_kept_head_at_the_recipes_kept_rate(
    classes: tuple[str, ...], fresh: bool, shapes: ShapesData, tmp_path: Path
) -> None:
    ready = trainable_model("person_ssdlite", classes, None, seed=0)
    assert ready.fresh_class_head is fresh
    job = replace(
        job_for(shapes, tmp_path, train=4),
        model=ready.model,
        class_names=classes,
        fresh_class_head=ready.fresh_class_head,
    )
    trainer = Trainer(job, CPU, threading.Event())
    rest, head = trainer.optimizer.param_groups
    head_names = {
        n
        for n, _ in ready.model.named_parameters()
        if n.startswith(SPECS["person_ssdlite"].class_head)
    }
    head_params = {id(p) for n, p in ready.model.named_parameters() if n in head_names}
    assert head_names and {id(p) for p in head["params"]} == head_params
    assert not head_params & {id(p) for p in rest["params"]}
    recipe = recipe_for("person_ssdlite")
    # a kept head already knows its classes: the whole model moves slower, head included
    lr, factor = (recipe.lr, recipe.head_lr_factor) if fresh else (recipe.kept_head_lr, 1.0)
    assert trainer.scheduler.base_lrs == pytest.approx([lr, lr * factor])
    # an explicit factor holds for a kept head too
    asked = Trainer(
        replace(job, settings=job.settings.model_copy(update={"head_lr_factor": 3})),
        CPU,
        threading.Event(),
    )
    assert asked.scheduler.base_lrs == pytest.approx([lr, lr * 3])
    # and an explicit rate for a head of either kind
    given = Trainer(
        replace(job, settings=job.settings.model_copy(update={"lr": 0.003})), CPU, threading.Event()
    )
    assert given.scheduler.base_lrs == pytest.approx([0.003, 0.003 * factor])


def test_a_kept_head_that_no_epoch_improves_leaves_the_starting_weights_as_best(
    shapes: ShapesData, tmp_path: Path
) -> None:
    """Fine-tuning a model for its own classes never leaves a `best.pt` that scores below
    the model it started from: the starting weights are epoch 0's candidate."""
    people = ("background", "person")
    ready = trainable_model("person_ssdlite", people, None, seed=0)
    assert not ready.fresh_class_head
    start = {k: v.clone() for k, v in ready.model.state_dict().items()}
    job = replace(
        job_for(shapes, tmp_path / "out", train=4, epochs=2, lr=1e-8, warmup_steps=0),
        model=ready.model,
        class_names=people,
        train=as_people(shapes.train[:4]),
        val=as_people(shapes.val),
        fresh_class_head=False,
    )
    # a rate of ~0: no epoch scores better than the start
    result = Trainer(job, CPU, threading.Event()).fit()
    assert result.stopped_by == "finished" and result.epochs_done == 2
    assert result.best_epoch == 0 and result.saved_best
    history = read_history(job.out)
    assert [r.epoch for r in history] == [0, 1, 2]
    best = load_checkpoint(job.out / BEST)
    assert best.extra["epoch"] == 0
    assert best.extra["metrics"]["map"] == pytest.approx(history[0].map)
    saved = best.model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in start.items())


def as_people(samples: tuple[Sample, ...]) -> tuple[Sample, ...]:
    """`samples` with every box a person (class 1)."""
    return tuple(replace(s, labels=np.ones_like(s.labels)) for s in samples)


def test_the_training_images_are_zoomed_out_no_further_than_the_models_smallest_default_box(
    shapes: ShapesData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, float]] = []

    def spy(size: int, smallest_box: float) -> Any:
        asked.append((size, smallest_box))
        return train_transform(size, smallest_box)

    monkeypatch.setattr(trainer_module, "train_transform", spy)
    Trainer(job_for(shapes, tmp_path, train=4), CPU, threading.Event())
    assert asked == [(300, pytest.approx(0.1))]  # the bundled model's 30 of 300 pixels


def rates(trainer: Trainer) -> list[float]:
    """The learning rate of each parameter group now."""
    return [group["lr"] for group in trainer.optimizer.param_groups]


@pytest.mark.parametrize("images", [4, 8], ids=["2 steps an epoch", "4 steps an epoch"])
def test_the_warmup_ramps_the_rate_over_its_steps_whatever_the_epoch_size(
    images: int, shapes: ShapesData, tmp_path: Path
) -> None:
    job = job_for(shapes, tmp_path / "out", train=images, batch_size=2, warmup_steps=3, epochs=20)
    trainer = Trainer(job, CPU, threading.Event())
    peak = list(trainer.scheduler.base_lrs)  # the rates after the warm-up
    batch = next(iter(trainer.train_batches.epoch(1)))
    seen = []
    for _ in range(4):
        seen.append(rates(trainer))
        trainer.step(batch, Progress())
    for step, factor in enumerate(
        [WARMUP_START, *(WARMUP_START + (1 - WARMUP_START) * k / 3 for k in (1, 2)), 1.0]
    ):
        assert seen[step] == pytest.approx([p * factor for p in peak]), step


def test_a_short_run_warms_up_over_a_tenth_of_its_steps_at_most(
    shapes: ShapesData, tmp_path: Path
) -> None:
    # 80 steps in all (4 an epoch): the default warm-up of hundreds of steps would leave
    # the whole run below its rate; a tenth of it is 8 steps, two epochs
    job = job_for(shapes, tmp_path / "out", train=8, batch_size=2, epochs=20)
    trainer = Trainer(job, CPU, threading.Event())
    peak = list(trainer.scheduler.base_lrs)
    trainer.restore(Progress(epoch=2))
    half = WARMUP_START + (1 - WARMUP_START) * 4 / 8
    assert rates(trainer) == pytest.approx([p * half for p in peak])
    trainer.restore(Progress(epoch=3))
    assert rates(trainer) == pytest.approx(peak)


WARMING_UP: dict[str, Any] = {"train": 8, "batch_size": 2, "warmup_steps": 4, "epochs": 10}
"""A job whose warm-up outlasts the 3 batches `stopped_after_three_batches` runs."""


def stopped_after_three_batches(shapes: ShapesData, out: Path) -> Trainer:
    """A trainer of a `WARMING_UP` job into `out` whose first epoch stops after 3 batches."""
    stop = threading.Event()
    return Trainer(
        job_for(shapes, out, **WARMING_UP),
        CPU,
        stop,
        progress_bar=lambda items, **_: StopAfter(items, stop, batches=3),
    )


def test_a_run_stopped_in_its_warmup_resumes_on_the_same_rate_for_its_next_steps(
    shapes: ShapesData, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = stopped_after_three_batches(shapes, out)
    peak = list(first.scheduler.base_lrs)
    assert first.fit().stopped_by == "interrupted"
    saved = load_checkpoint(out / LAST)
    progress = Progress.from_dict(saved.extra["progress"])
    assert (progress.epoch, progress.step) == (1, 3)

    second = Trainer(
        replace(job_for(shapes, out, **WARMING_UP), model=saved.model), CPU, threading.Event()
    )
    second.restore(progress)
    factor = WARMUP_START + (1 - WARMUP_START) * 3 / 4
    assert rates(second) == pytest.approx([p * factor for p in peak])
    batch = next(iter(second.train_batches.epoch(1)))
    second.step(batch, progress)
    assert rates(second) == pytest.approx(peak)  # the warm-up's 4 steps done: the full rate


def test_the_schedule_is_torchs_linear_warmup_then_cosine_step_for_step() -> None:
    warmup, total = 5, 20
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    torchs = torch.optim.lr_scheduler.SequentialLR(
        optimizer,
        [
            torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup
            ),
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup),
        ],
        milestones=[warmup],
    )
    ours = WarmupCosine(warmup, total)
    for step in range(total + 1):
        assert ours(step) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-9), step
        optimizer.step()
        torchs.step()


def test_training_stops_when_map_has_not_improved_for_patience_epochs(
    shapes: ShapesData, tmp_path: Path
) -> None:
    # a rate of ~0 leaves the weights, hence the mAP, where they are: no epoch improves
    job = job_for(shapes, tmp_path / "out", train=4, epochs=5, patience=1, lr=1e-8, warmup_steps=0)
    result = Trainer(job, CPU, threading.Event()).fit()
    assert result.stopped_by == "plateau"
    assert result.epochs_done == 2 and result.best_epoch == 1


@pytest.mark.parametrize(
    ("images", "batch_size", "epochs", "min_steps", "taken"),
    [
        (8, 4, 1, 3, (4, 2, 2)),
        (8, 4, 1, 0, (4, 2, 1)),
        (5, 4, 1, 0, (4, 1, 1)),
        (3, None, 30, 100, (3, 1, 100)),
        (1600, None, 30, 100, (16, 100, 30)),
        (640, None, 3, 100, (16, 40, 3)),
    ],
    ids=[
        "small set: more epochs for min-steps",
        "min-steps 0: the epochs alone",
        "whole batches only",
        "fewer images than the recipe's batch",
        "large set: the epochs make the steps",
        "min-steps reached in the epochs asked",
    ],
)
def test_a_job_takes_its_batch_then_its_steps_an_epoch_then_the_epochs_min_steps_need(
    shapes: ShapesData,
    tmp_path: Path,
    images: int,
    batch_size: int | None,
    epochs: int,
    min_steps: int,
    taken: tuple[int, int, int],
) -> None:
    job = job_for(shapes, tmp_path, batch_size=batch_size, epochs=epochs, min_steps=min_steps)
    job = replace(job, train=(shapes.train * images)[:images])  # recipe batch: 16
    assert (job.batch_size, job.steps_per_epoch, job.epochs) == taken
    trainer = Trainer(job, CPU, threading.Event())
    assert (trainer.batch_size, trainer.steps_per_epoch, trainer.epochs) == taken


def test_a_set_too_small_for_min_steps_trains_more_epochs_to_reach_them_on_one_schedule(
    shapes: ShapesData, tmp_path: Path
) -> None:
    # 4 images in batches of 2: 2 steps an epoch, so 1 epoch would be 2 steps of 5
    job = job_for(shapes, tmp_path / "out", train=4, batch_size=2, epochs=1, min_steps=5)
    trainer = Trainer(job, CPU, threading.Event())
    assert trainer.epochs == 3
    result = trainer.fit()
    assert result.stopped_by == "finished" and result.epochs_done == 3
    assert trainer.scheduler.last_epoch == 6  # optimiser steps taken, the 5 at least
    history = read_history(job.out)
    assert [r.epoch for r in history] == [0, 1, 2, 3]
    # the cosine ends at the last of the 6 steps, not at the 2 that 1 epoch would have made
    assert history[1].lr > history[2].lr > history[3].lr == pytest.approx(0, abs=1e-12)
    assert history[1].lr > 0.5 * trainer.scheduler.base_lrs[0]  # the rest of the model


def _never_improving(shapes: ShapesData, out: Path, epochs: int) -> TrainingJob:
    """A job of 2 steps an epoch, 6 at least (`min_steps`), and patience 1, at a rate of ~0:
    no epoch improves on the last."""
    return job_for(
        shapes,
        out,
        train=4,
        batch_size=2,
        epochs=epochs,
        patience=1,
        lr=1e-8,
        warmup_steps=0,
        min_steps=6,
    )


def test_early_stop_does_not_fire_before_min_steps_are_done(
    shapes: ShapesData, tmp_path: Path
) -> None:
    # a patience of 1 would stop after epoch 2 (4 steps); 6 steps at least take 3 epochs first
    job = _never_improving(shapes, tmp_path / "out", epochs=10)
    result = Trainer(job, CPU, threading.Event()).fit()
    assert result.stopped_by == "plateau"
    assert result.epochs_done == 3 and result.best_epoch == 1


def test_a_run_whose_patience_runs_out_at_its_last_epoch_finished_rather_than_stopped_early(
    shapes: ShapesData, tmp_path: Path
) -> None:
    # 6 steps take all 3 epochs, after which patience 1 is long spent, yet no epoch was left
    job = _never_improving(shapes, tmp_path / "out", epochs=1)
    result = Trainer(job, CPU, threading.Event()).fit()
    assert result.stopped_by == "finished" and result.epochs_done == 3


def test_a_run_stopped_before_its_min_steps_resumes_at_its_step_and_goes_on_to_them(
    shapes: ShapesData, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    settings: dict[str, Any] = {
        "train": 4,
        "batch_size": 2,
        "epochs": 1,
        "min_steps": 6,
        "warmup_steps": 0,
    }
    stop = threading.Event()
    epochs_begun: list[int] = []

    def stop_in_epoch_2(items: Iterable[Any], **_: Any) -> StopAfter:
        epochs_begun.append(len(epochs_begun) + 1)
        return StopAfter(items, stop, batches=1 if len(epochs_begun) == 2 else 0)  # 0: never

    first = Trainer(job_for(shapes, out, **settings), CPU, stop, progress_bar=stop_in_epoch_2)
    assert first.fit().stopped_by == "interrupted"
    saved = load_checkpoint(out / LAST)
    progress = Progress.from_dict(saved.extra["progress"])
    assert (progress.epoch, progress.step) == (2, 1)  # 3 steps of the 6 done
    assert saved.extra["settings"]["min_steps"] == 6

    second = Trainer(
        replace(job_for(shapes, out, **settings), model=saved.model), CPU, threading.Event()
    )
    second.restore(progress)
    assert second.epochs == 3 and second.scheduler.last_epoch == 3
    done = second.fit(progress)
    assert done.stopped_by == "finished" and done.epochs_done == 3
    assert second.scheduler.last_epoch == 6
    assert [r.epoch for r in read_history(out)] == [0, 1, 2, 3]


def test_a_model_with_batch_norms_trains_on_a_set_that_leaves_one_image_over(
    shapes: ShapesData, tmp_path: Path
) -> None:
    # 5 images in batches of 4 would leave a batch of one, which batch norm cannot take
    # (one value per channel on the 1x1 feature map): whole batches only
    arch = "ssdlite320_mobilenet_v3_large"
    job = replace(
        job_for(shapes, tmp_path / "out", train=5, epochs=1, warmup_steps=0),
        model=build(arch, len(shapes.class_names), 320),
        arch=arch,
        size=320,
    )
    trainer = Trainer(job, CPU, threading.Event())
    assert trainer.steps_per_epoch == 1
    assert trainer.fit().stopped_by == "finished"


def test_mixed_precision_is_off_on_the_cpu_and_refused_there_when_asked(
    shapes: ShapesData, tmp_path: Path
) -> None:
    job = job_for(shapes, tmp_path / "out", train=4, batch_size=2)
    trainer = Trainer(job, CPU, threading.Event())
    assert not trainer.amp and not trainer.scaler.is_enabled()
    assert not Trainer(job, CPU, threading.Event(), amp=False).amp
    with pytest.raises(ValueError, match="mixed precision needs a CUDA device, not cpu"):
        Trainer(job, CPU, threading.Event(), amp=True)
    on = job_for(shapes, tmp_path / "out", train=4, batch_size=2, amp="on")
    with pytest.raises(ValueError, match="mixed precision needs a CUDA device, not cpu"):
        Trainer(on, CPU, threading.Event())  # the job's --amp on, as the trainer takes it


def test_the_trainer_runs_the_precision_resolved_for_its_device_and_base(
    shapes: ShapesData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No CUDA here: the resolution is faked to choose mixed precision for this job's base
    on the CPU alone, and the trainer, following it, refuses the CPU."""
    job = job_for(shapes, tmp_path / "out", train=4, batch_size=2)
    asked: list[tuple[str, str]] = []

    def choice(settings: TrainSettings, device_type: str, arch: str) -> tuple[bool, str]:
        asked.append((device_type, arch))
        return arch == job.arch, "faked"

    monkeypatch.setattr(TrainSettings, "amp_choice", choice)
    with pytest.raises(ValueError, match="mixed precision needs a CUDA device, not cpu"):
        Trainer(job, CPU, threading.Event())
    assert asked == [("cpu", "person_ssdlite")]


def test_two_runs_with_one_seed_take_the_same_first_step_and_another_seed_does_not(
    shapes: ShapesData, tmp_path: Path
) -> None:
    def first_step(seed: int) -> tuple[float, float]:
        job = job_for(shapes, tmp_path / str(seed), train=2, batch_size=2, seed=seed)
        trainer = Trainer(job, CPU, threading.Event())
        return trainer.step(next(iter(trainer.train_batches.epoch(1))), Progress())

    torch.manual_seed(1)  # the process's own RNG, in another state before each run
    first = first_step(3)
    torch.manual_seed(2)
    assert first_step(3) == first
    assert first_step(4) != first


def test_a_step_on_a_batch_lowers_its_loss_and_advances_the_schedule_by_one(
    shapes: ShapesData, tmp_path: Path
) -> None:
    job = job_for(shapes, tmp_path / "out", train=2, batch_size=2, warmup_steps=0, epochs=50)
    trainer = Trainer(job, CPU, threading.Event())
    batch = next(iter(trainer.train_batches.epoch(1)))
    state = Progress()
    first = sum(trainer.step(batch, state))
    second = sum(trainer.step(batch, state))
    assert second < first
    assert trainer.scheduler.last_epoch == 2 and state == Progress()  # the caller counts steps


def test_a_loss_gone_nan_is_one_error_without_a_warning_from_torch_before_it(
    shapes: ShapesData, tmp_path: Path
) -> None:
    job = job_for(shapes, tmp_path / "out", train=2, batch_size=2)
    trainer = Trainer(job, CPU, threading.Event())
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.fill_(math.nan)
    batch = next(iter(trainer.train_batches.epoch(1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "Converting a tensor with requires_grad=True"
        with pytest.raises(TrainingDiverged, match=r"^the loss became nan at epoch 1, batch 1; "):
            trainer.step(batch, Progress())


LARGEST_SCALE = torch.finfo(torch.float32).max
BACKOFF = 2.0**-112
"""The scale after one backoff is then about 2**16, mixed precision's usual."""


def overflowing_scaler() -> torch.amp.GradScaler:
    """A loss scaler, on the CPU, whose first scale is the largest float32: a gradient above
    1 overflows (the shapes' first step has a few, up to 1.28), and the scaler skips the
    step as mixed precision's first steps on a GPU often do. Backed off, it overflows none."""
    return torch.amp.GradScaler("cpu", init_scale=LARGEST_SCALE, backoff_factor=BACKOFF)


def test_a_step_the_loss_scaler_skips_leaves_the_weights_and_the_schedule_where_they_were(
    shapes: ShapesData, tmp_path: Path
) -> None:
    job = job_for(shapes, tmp_path / "out", train=2, batch_size=2, warmup_steps=4, epochs=50)
    trainer = Trainer(job, CPU, threading.Event())
    trainer.scaler = overflowing_scaler()
    batch = next(iter(trainer.train_batches.epoch(1)))
    weights = [p.detach().clone() for p in trainer.model.parameters()]
    first_rates = rates(trainer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "lr_scheduler.step() before optimizer.step()"
        trainer.step(batch, Progress())
        assert trainer.scaler.get_scale() == pytest.approx(LARGEST_SCALE * BACKOFF)  # inf found
        assert all(
            torch.equal(p, w) for p, w in zip(trainer.model.parameters(), weights, strict=True)
        )
        assert trainer.scheduler.last_epoch == 0 and rates(trainer) == first_rates
        trainer.step(batch, Progress())
    assert not all(
        torch.equal(p, w) for p, w in zip(trainer.model.parameters(), weights, strict=True)
    )
    assert trainer.scheduler.last_epoch == 1
    assert all(now > then for now, then in zip(rates(trainer), first_rates, strict=True))


def test_a_run_resumed_after_a_skipped_step_takes_up_the_schedule_where_it_was(
    shapes: ShapesData, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = stopped_after_three_batches(shapes, out)
    first.scaler = overflowing_scaler()
    assert first.fit().stopped_by == "interrupted"
    assert first.scheduler.last_epoch == 2  # 3 batches, the first one's step skipped
    progress = Progress.from_dict(load_checkpoint(out / LAST).extra["progress"])
    assert (progress.step, progress.skipped_steps) == (3, 1)

    second = Trainer(job_for(shapes, out, **WARMING_UP), CPU, threading.Event())
    second.restore(progress)
    assert second.scheduler.last_epoch == 2
    assert rates(second) == pytest.approx(rates(first))
