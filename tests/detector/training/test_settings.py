"""The training settings' rules: how many epochs a run takes, when it may stop early, and
whether it trains in mixed precision."""

from __future__ import annotations

import pytest

from detector.architectures import SPECS
from detector.training.settings import (
    FALLBACK_RECIPE,
    RECIPES,
    RESUMABLE,
    TrainSettings,
    as_options,
)


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


SSDLITE_BASES = ("person_ssdlite", "ssdlite320_mobilenet_v3_large")
VGG_BASES = ("ssd300_vgg16", "ssd512_vgg16")


@pytest.mark.parametrize("arch", SSDLITE_BASES)
def test_auto_trains_the_ssdlite_bases_in_float32_on_cuda_where_they_stepped_faster(
    arch: str,
) -> None:
    assert TrainSettings().amp_choice("cuda", arch) == (
        False,
        f"--amp auto: {arch} trained faster in float32 than in mixed precision on CUDA",
    )


@pytest.mark.parametrize("arch", VGG_BASES)
def test_auto_trains_the_vgg_bases_in_mixed_precision_on_cuda_and_says_it_is_untimed(
    arch: str,
) -> None:
    assert TrainSettings().amp_choice("cuda", arch) == (
        True,
        f"--amp auto: mixed precision on CUDA for {arch}, not timed against float32 in training",
    )


@pytest.mark.parametrize("arch", SSDLITE_BASES + VGG_BASES)
def test_auto_trains_every_base_in_float32_on_the_cpu(arch: str) -> None:
    assert TrainSettings().amp_choice("cpu", arch) == (
        False,
        "--amp auto: mixed precision only on CUDA",
    )


@pytest.mark.parametrize("arch", SSDLITE_BASES + VGG_BASES)
@pytest.mark.parametrize("device_type", ["cuda", "cpu"])
def test_amp_on_or_off_overrides_the_recipe_and_says_it_was_asked(
    arch: str, device_type: str
) -> None:
    assert TrainSettings(amp="on").amp_choice(device_type, arch) == (True, "--amp on")
    assert TrainSettings(amp="off").amp_choice(device_type, arch) == (False, "--amp off")
    assert TrainSettings(amp="on").amp_on(device_type, arch)
    assert not TrainSettings(amp="off").amp_on(device_type, arch)


def test_every_base_model_has_a_recipe_of_its_own_not_the_fallback() -> None:
    assert set(RECIPES) == set(SPECS) == {*SSDLITE_BASES, *VGG_BASES}


def test_an_architecture_without_a_recipe_follows_the_person_models_and_says_so() -> None:
    assert not FALLBACK_RECIPE.amp_on_cuda
    assert TrainSettings().amp_choice("cuda", "unknown_arch") == (
        False,
        "--amp auto: unknown_arch follows person_ssdlite, which trained faster in float32 "
        "than in mixed precision on CUDA",
    )


def test_mixed_precision_is_auto_unless_asked_and_takes_no_other_word() -> None:
    assert TrainSettings().amp == "auto"
    with pytest.raises(ValueError, match="amp"):
        TrainSettings.model_validate({"amp": "fast"})


def test_settings_read_as_the_commands_options_in_a_list() -> None:
    assert as_options(("epochs",)) == "--epochs"
    assert as_options(("batch_size", "amp", "epochs")) == "--batch-size, --amp and --epochs"


def test_every_setting_a_resume_may_change_is_a_setting() -> None:
    assert set(RESUMABLE) <= set(TrainSettings.model_fields)
