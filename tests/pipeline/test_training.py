"""Setting up a training: a resumed run takes up how its class head started, and refuses
a training state it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detector.architectures import ARCHITECTURES
from detector.checkpoints import save_checkpoint
from detector.training.settings import TrainSettings
from detector.training.trainer import FRESH_CLASS_HEAD, LAST, Progress
from pipeline.training import TrainingSetupError, prepare
from pipeline.types import LabelMap
from tests.detector.training.datasets import make_shapes_dataset, write_coco


@pytest.mark.parametrize(
    ("recorded", "fresh"),
    [({FRESH_CLASS_HEAD: False}, False), ({FRESH_CLASS_HEAD: True}, True), ({}, True)],
    ids=["kept", "made anew", "saved before it was recorded"],
)
def test_a_resumed_run_keeps_whether_its_class_head_started_anew(
    recorded: dict[str, bool], fresh: bool, tmp_path: Path
) -> None:
    shapes = make_shapes_dataset(tmp_path / "shapes", images=3, val=1, seed=0)
    data = write_coco(shapes, tmp_path / "coco")
    out = tmp_path / "run"
    out.mkdir()
    extra = {
        "settings": TrainSettings(epochs=2).model_dump(),
        "base": "person_ssdlite",
        "epoch": 1,
        "progress": Progress(epoch=2).to_dict(),
        **recorded,
    }
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    save_checkpoint(out / LAST, model, "person_ssdlite", 300, LabelMap(shapes.class_names), extra)
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
    shapes = make_shapes_dataset(tmp_path / "shapes", images=3, val=1, seed=0)
    data = write_coco(shapes, tmp_path / "coco")
    out = tmp_path / "run"
    settings = {k: v for k, v in TrainSettings(epochs=2).model_dump().items() if k != "min_steps"}
    extra = {
        "settings": {**settings, **saved},
        "epoch": 1,
        "progress": Progress(epoch=2).to_dict(),
    }
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    save_checkpoint(out / LAST, model, "person_ssdlite", 300, LabelMap(shapes.class_names), extra)
    job, _, _ = prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    assert job.settings.min_steps == min_steps
    with pytest.raises(TrainingSetupError, match="drop min_steps"):
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={"min_steps": 9})


@pytest.mark.parametrize(
    ("settings", "progress", "said"),
    [
        ({"lr": "fast"}, Progress(epoch=2).to_dict(), "(lr: Input should be a valid number"),
        ({}, {**Progress(epoch=2).to_dict(), "epoch": "two"}, "(epoch: Input should be a valid"),
        ({"epoch": "one"}, Progress(epoch=2).to_dict(), "(epoch: str, not an integer)"),
        (
            {"warmup_epochs": 1.0},
            Progress(epoch=2).to_dict(),
            "(its warm-up was counted in epochs; it is now counted in steps)",
        ),
    ],
    ids=["settings", "progress", "epochs done", "warm-up counted in epochs"],
)
def test_a_last_checkpoint_with_a_damaged_training_state_is_refused_in_one_line(
    settings: dict[str, object], progress: dict[str, object], said: str, tmp_path: Path
) -> None:
    shapes = make_shapes_dataset(tmp_path / "shapes", images=3, val=1, seed=0)
    data = write_coco(shapes, tmp_path / "coco")
    out = tmp_path / "run"
    extra = {
        "settings": {
            **TrainSettings(epochs=2).model_dump(),
            **{k: v for k, v in settings.items() if k != "epoch"},
        },
        "epoch": settings.get("epoch", 1),
        "progress": progress,
    }
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    save_checkpoint(out / LAST, model, "person_ssdlite", 300, LabelMap(shapes.class_names), extra)
    with pytest.raises(TrainingSetupError) as info:  # the progress's raised TypeError in fit
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    message = str(info.value)
    assert message.startswith(f"--resume: {out / LAST} holds a training state this version")
    assert said in message and "\n" not in message


def test_resume_from_a_plain_state_dict_says_it_holds_no_training_state(
    tmp_path: Path,
) -> None:
    shapes = make_shapes_dataset(tmp_path / "shapes", images=3, val=1, seed=0)
    data = write_coco(shapes, tmp_path / "coco")
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
    shapes = make_shapes_dataset(tmp_path / "shapes", images=3, val=1, seed=0)
    data = write_coco(shapes, tmp_path / "coco")
    out = tmp_path / "run"
    (out / LAST).mkdir(parents=True)
    with pytest.raises(TrainingSetupError) as info:
        prepare(str(data), "person_ssdlite", out, resume=True, overrides={})
    assert str(info.value) == (
        f"--resume: {out / LAST} is a folder, not the checkpoint train saves there; move it "
        "away, or start without --resume into another --out"
    )
