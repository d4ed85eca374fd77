"""The training settings' rules: how many epochs a run takes, and when it may stop early."""

from __future__ import annotations

import pytest

from detector.training.settings import TrainSettings


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs"),
    [(1, 60), (2, 30), (3, 30), (7, 30), (18, 30), (5000, 30)],
    ids=["25 images at 16", "2 an epoch", "3 an epoch", "7 an epoch", "300 images", "large"],
)
def test_min_steps_add_epochs_only_to_a_set_whose_epochs_make_fewer(
    steps_per_epoch: int, epochs: int
) -> None:
    settings = TrainSettings(epochs=30, min_steps=60)
    assert settings.epochs_for(steps_per_epoch) == epochs
    assert settings.epochs_for(steps_per_epoch) * steps_per_epoch >= 60


def test_min_steps_of_zero_leave_the_epochs_as_asked() -> None:
    assert TrainSettings(epochs=3, min_steps=0).epochs_for(1) == 3


def test_min_steps_round_up_to_whole_epochs() -> None:
    assert TrainSettings(epochs=1, min_steps=7).epochs_for(2) == 4


@pytest.mark.parametrize(
    ("stale", "steps_done", "stops"),
    [(10, 59, False), (10, 60, True), (9, 600, False), (10, 180, True)],
    ids=["before min_steps", "at min_steps", "patience not reached", "a large set"],
)
def test_early_stop_needs_patience_stale_epochs_and_min_steps_done(
    stale: int, steps_done: int, stops: bool
) -> None:
    settings = TrainSettings(patience=10, min_steps=60)
    assert settings.may_stop_early(stale, steps_done) is stops


def test_a_patience_of_zero_never_stops_early() -> None:
    assert not TrainSettings(patience=0, min_steps=0).may_stop_early(1000, 1000)


def test_the_default_leaves_a_few_hundred_images_training_and_stopping_as_before() -> None:
    settings = TrainSettings()
    steps_per_epoch = 300 // 16  # the first figure of docs/training.md
    assert settings.epochs_for(steps_per_epoch) == settings.epochs
    earliest = settings.patience + 1  # epoch 1 the best, then `patience` stale ones
    assert settings.may_stop_early(settings.patience, earliest * steps_per_epoch)


@pytest.mark.parametrize(
    ("amp", "device_type", "on"),
    [
        ("auto", "cuda", True),
        ("auto", "cpu", False),
        ("off", "cuda", False),
        ("off", "cpu", False),
        ("on", "cuda", True),
    ],
)
def test_mixed_precision_is_on_where_asked_or_by_default_on_a_cuda_device(
    amp: str, device_type: str, on: bool
) -> None:
    assert TrainSettings.model_validate({"amp": amp}).amp_on(device_type) is on


def test_mixed_precision_is_auto_unless_asked_and_takes_no_other_word() -> None:
    assert TrainSettings().amp == "auto"
    with pytest.raises(ValueError, match="amp"):
        TrainSettings.model_validate({"amp": "fast"})
