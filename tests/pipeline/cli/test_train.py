"""`train` and `evaluate` from the command line: a model trained on the user's classes is
saved with what deploying it needs, measured, and run by `run` under its own class names."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch

import detector.training.trainer as trainer_module
from detector.architectures import ARCHITECTURES
from detector.checkpoints import load_checkpoint, save_checkpoint
from detector.measured_int8 import MAX_MAP50_LOSS, Int8Measurement, measured_int8
from detector.training.images import CUT_SHORT
from detector.training.job import LAST, TrainingJob
from detector.training.progress import Progress
from detector.training.settings import RESUMABLE, TrainSettings
from detector.training.trainer import Trainer
from pipeline.cli import build_parser, main
from pipeline.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from pipeline.cli.train import _start_line
from pipeline.training import prepare
from pipeline.types import LabelMap
from tests.conftest import write_video
from tests.detector.training.corrupt import broken_huffman_tables
from tests.detector.training.datasets import (
    ShapesData,
    make_shapes_dataset,
    val_without_boxes,
    write_coco,
    write_yolo,
)
from tests.detector.training.stopping import StopAfter
from tests.pipeline.cli_runs import ROOT
from tests.sinks.small_disk import small_disk


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> ShapesData:
    """12 shapes images, the last 4 for validation."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), images=12, val=4, seed=0)


@pytest.fixture(scope="module")
def trained(shapes: ShapesData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one epoch of training on the shapes (COCO), as `train` leaves it."""
    root = tmp_path_factory.mktemp("train")
    data = write_coco(shapes, root / "coco")
    out = root / "run"
    done = cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--min-steps",
        "0",
        "--workers",
        "0",
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert " on cpu in float32 (--amp auto: mixed precision only on CUDA) for " in done.stderr
    assert "epoch 0 (the starting weights, before any step): val mAP" in done.stderr
    assert "epoch 1/1: loss" in done.stderr and "val mAP" in done.stderr
    assert f"detector.model: {out / 'best.pt'}" in done.stderr
    assert "int8: int8 mAP@.5 " in done.stderr and " on 4 validation images " in done.stderr
    return out


def test_train_leaves_the_best_checkpoint_its_history_and_a_plot(trained: Path) -> None:
    for name in ("best.pt", "last.pt", "history.csv", "history.json", "history.png"):
        assert (trained / name).stat().st_size > 0, name
    start, record = json.loads((trained / "history.json").read_text())
    assert start["epoch"] == 0 and start["loss"] is None and start["map"] >= 0
    assert record["epoch"] == 1 and record["loss"] > 0


def test_train_refuses_to_write_over_an_earlier_training_without_resume(
    trained: Path, shapes: ShapesData, tmp_path: Path
) -> None:
    data = write_yolo(shapes, tmp_path / "yolo")
    done = cli("train", "--data", str(data / "data.yaml"), "--out", str(trained), "--epochs", "1")
    assert done.returncode == 2
    assert "already holds a training" in done.stderr and "--resume" in done.stderr
    assert "Traceback" not in done.stderr


HELP_AND_REPORT = (
    "import sys\n"
    "from pipeline.cli import main\n"
    "try:\n"
    "    main(['train', '--help'])\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('torch imported:', 'torch' in sys.modules)\n"
)


def _resume_help() -> str:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    resume = next(a for a in sub.choices["train"]._actions if a.dest == "resume")
    assert resume.help is not None
    return resume.help


def test_resume_help_names_every_setting_a_resume_may_change() -> None:
    help_ = _resume_help()
    assert [n for n in RESUMABLE if f"--{n.replace('_', '-')}" not in help_] == []


def test_the_training_guide_names_exactly_the_settings_a_resume_may_change() -> None:
    guide = " ".join((ROOT / "docs" / "training.md").read_text().split())
    flags = [f"`--{n.replace('_', '-')}`" for n in RESUMABLE]
    assert f"only {', '.join(flags[:-1])} and {flags[-1]} may change" in guide


def test_train_help_never_imports_torch() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", HELP_AND_REPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--resume" in shown.stdout, shown.stderr
    assert "torch imported: False" in shown.stdout


def test_resume_of_a_finished_training_changes_nothing_and_refuses_other_settings(
    trained: Path, shapes: ShapesData, tmp_path: Path
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    done = cli("train", "--data", str(data), "--out", str(trained), "--resume", "--lr", "0.5")
    assert done.returncode == 2
    assert "drop lr" in done.stderr


def test_resume_with_more_epochs_trains_on_and_refuses_fewer_than_done(
    trained: Path, shapes: ShapesData, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    data = write_coco(shapes, tmp_path / "coco")
    more = cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--resume",
        "--epochs",
        "2",
        "--workers",
        "0",
        "--int8",
        "skip",
        "--amp",
        "off",
    )
    assert more.returncode == 0, more.stderr
    assert " on cpu in float32 (--amp off) " in more.stderr
    assert load_checkpoint(out / "last.pt").extra["settings"]["amp"] == "off"
    assert "epoch 2/2: loss" in more.stderr and "epoch 1/" not in more.stderr
    assert "epoch 0 (" not in more.stderr  # the start was scored once, by the first run
    assert "int8 not measured (--int8 skip)" in more.stderr and "int8: " not in more.stderr
    assert [r["epoch"] for r in json.loads((out / "history.json").read_text())] == [0, 1, 2]
    fewer = cli("train", "--data", str(data), "--out", str(out), "--resume", "--epochs", "1")
    assert fewer.returncode == 2 and "Traceback" not in fewer.stderr
    assert fewer.stderr.splitlines() == [
        f"error: --resume: {out / 'last.pt'} has 2 epoch(s) done, but --epochs 1 takes 1; "
        "--epochs must be 2 or more"
    ]


def test_a_run_stopped_mid_epoch_says_how_far_it_got_and_resume_finishes_that_epoch(
    shapes: ShapesData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class StoppedInEpoch2(trainer_module.Trainer):
        """Stops after the first batch of epoch 2, as a Ctrl-C there would."""

        def __init__(self, job: TrainingJob, device: Any, stop: Any, **kwargs: Any) -> None:
            begun: list[int] = []

            def bar(items: Iterable[Any], **_: Any) -> StopAfter:
                begun.append(len(begun) + 1)
                return StopAfter(items, stop, batches=1 if len(begun) == 2 else 0)  # 0: never

            super().__init__(job, device, stop, progress_bar=bar, **kwargs)

    data, out = str(write_coco(shapes, tmp_path / "coco")), str(tmp_path / "run")
    args = ["train", "--data", data, "--out", out, "--workers", "0", "--int8", "skip"]
    with monkeypatch.context() as patched:
        patched.setattr(trainer_module, "Trainer", StoppedInEpoch2)
        # 8 images in batches of 4: 2 steps an epoch
        code = main([*args, "--epochs", "3", "--batch-size", "4", "--min-steps", "0"])
    assert code == EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == (
        "stopped after 1 full epoch(s) and 1 of the 2 batches of epoch 2; continue with the "
        "same command and --resume"
    )

    assert main([*args, "--resume", "--epochs", "1"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        f"error: --resume: {out}/last.pt has 1 epoch(s) done and epoch 2 begun (1 of its 2 "
        "batches, already in the weights: resuming finishes it), but --epochs 1 takes 1; "
        "--epochs must be 2 or more"
    ]
    assert main([*args, "--resume", "--epochs", "2"]) == EXIT_OK
    err = capsys.readouterr().err
    assert (
        "resuming in epoch 2/2 at batch 2 of 2 (1 epoch(s) done; the stopped epoch is "
        "finished, not begun again)\n" in err
    )
    assert "epoch 2/2: loss" in err and "epoch 1/" not in err
    assert [r["epoch"] for r in json.loads(Path(out, "history.json").read_text())] == [0, 1, 2]


def test_a_set_too_small_for_min_steps_trains_the_epochs_that_reach_them(
    shapes: ShapesData, tmp_path: Path
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    out = tmp_path / "run"
    done = cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--min-steps",
        "3",
        "--workers",
        "0",
        "--int8",
        "skip",
    )
    assert done.returncode == 0, done.stderr
    # 8 images in batches of 4: 2 steps an epoch, so 2 epochs make the 3 steps
    assert "2 epoch(s) of 2 step(s), not 1: --min-steps 3;" in done.stderr
    assert "epoch 1/2: loss" in done.stderr and "epoch 2/2: loss" in done.stderr
    assert [r["epoch"] for r in json.loads((out / "history.json").read_text())] == [0, 1, 2]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("-1", "must be from 0 to 1000000, got '-1'"),
        ("1000001", "must be from 0 to 1000000, got '1000001'"),
        ("many", "not a whole number: 'many'"),
    ],
    ids=["negative", "too many", "not a number"],
)
def test_min_steps_out_of_bounds_is_one_error_line(
    given: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", ".", "--out", "run", "--min-steps", given])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == f"error: --min-steps: {said} (see `python -m pipeline train --help`)\n", err


def test_amp_other_than_auto_on_or_off_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", ".", "--out", "run", "--amp", "fast"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: --amp: invalid choice: 'fast' (choose from 'auto', 'on', 'off') "
        "(see `python -m pipeline train --help`)\n"
    )


def test_amp_on_for_a_training_on_the_cpu_is_one_error_line_and_trains_nothing(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--device", "cpu", "--amp", "on"]
    assert main(argv) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "error: --amp on: mixed precision needs a CUDA device, and this training runs on cpu; "
        "use --amp auto or off"
    ]
    assert not (out / "last.pt").exists()


def start_line_job(shapes: ShapesData, arch: str, tmp_path: Path, amp: str) -> TrainingJob:
    """A job of base `arch` as the start line reads it (its model, never run, is the person
    SSDLite's: the line reads the base's name, not the network)."""
    return TrainingJob(
        model=ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300),
        arch=arch,
        size=300,
        class_names=shapes.class_names,
        train=shapes.train,
        val=shapes.val,
        settings=TrainSettings.model_validate({"amp": amp, "batch_size": 4}),
        out=tmp_path / "run",
        base=arch,
        data="shapes",
        fresh_class_head=True,
    )


def _with_momentum_of_shape_7(groups: dict[str, Any]) -> dict[str, Any]:
    return {"state": {0: {"momentum_buffer": torch.zeros(7)}}, "param_groups": groups}


def _damaged_resume(shapes: ShapesData, tmp_path: Path, optimizer: Any) -> tuple[str, Path]:
    """A COCO set and an --out whose last.pt holds `optimizer(param_groups)` as its
    optimiser state; (the data, the folder)."""
    data = str(write_coco(shapes, tmp_path / "coco"))
    out = tmp_path / "run"
    settings = TrainSettings(epochs=2, batch_size=4, min_steps=0, workers=0, device="cpu")
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    extra = {"settings": settings.model_dump(), "progress": Progress(epoch=2).to_dict()}
    save_checkpoint(out / LAST, model, "person_ssdlite", 300, LabelMap(shapes.class_names), extra)
    job, _, _ = prepare(data, "person_ssdlite", out, resume=True, overrides={})
    groups = Trainer(job, torch.device("cpu"), threading.Event()).optimizer.state_dict()
    extra["progress"] = Progress(epoch=2, optimizer=optimizer(groups["param_groups"])).to_dict()
    save_checkpoint(out / LAST, model, "person_ssdlite", 300, LabelMap(shapes.class_names), extra)
    return data, out


@pytest.mark.parametrize(
    ("optimizer", "said"),
    [
        (lambda groups: {"state": {}, "param_groups": []}, "does not fit the model: loaded "),
        (lambda groups: {"state": {}}, "(its optimiser state has no 'param_groups')"),
        (_with_momentum_of_shape_7, "(its optimiser's momentum_buffer of shape [7] does not fit "),
    ],
    ids=["no parameter groups", "no param_groups key", "a momentum of another shape"],
)
def test_resume_from_an_optimiser_state_that_does_not_fit_the_model_is_one_error_line(
    optimizer: Any,
    said: str,
    shapes: ShapesData,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, out = _damaged_resume(shapes, tmp_path, optimizer)
    written = sorted(p.name for p in out.iterdir())

    code = main(["train", "--data", data, "--out", str(out), "--resume", "--int8", "skip"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    last_line = err.splitlines()[-1]
    assert last_line.startswith(f"error: --resume: {out / LAST} holds a training state ")
    assert said in last_line and last_line.endswith("start without --resume, into another --out")
    assert sorted(p.name for p in out.iterdir()) == written  # nothing trained nor saved


def test_a_damaged_resume_is_refused_before_the_training_start_line_is_printed(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = _damaged_resume(shapes, tmp_path, _with_momentum_of_shape_7)
    code = main(["train", "--data", data, "--out", str(out), "--resume", "--int8", "skip"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.count("\n") == 1 and err.startswith(f"error: --resume: {out / LAST} holds ")


@pytest.mark.parametrize(
    ("arch", "device", "amp", "said"),
    [
        (
            "person_ssdlite",
            "cuda",
            "auto",
            " on cuda in float32 (--amp auto: person_ssdlite trained faster in float32 than in "
            "mixed precision on CUDA) for ",
        ),
        (
            "ssdlite320_mobilenet_v3_large",
            "cuda",
            "auto",
            " on cuda in float32 (--amp auto: ssdlite320_mobilenet_v3_large trained faster in "
            "float32 than in mixed precision on CUDA) for ",
        ),
        (
            "ssd300_vgg16",
            "cuda",
            "auto",
            " on cuda in mixed precision (--amp auto: mixed precision on CUDA for ssd300_vgg16, "
            "not timed against float32 in training) for ",
        ),
        ("person_ssdlite", "cuda", "on", " on cuda in mixed precision (--amp on) for "),
        ("ssd512_vgg16", "cuda", "off", " on cuda in float32 (--amp off) for "),
        (
            "ssd512_vgg16",
            "cpu",
            "auto",
            " on cpu in float32 (--amp auto: mixed precision only on CUDA) for ",
        ),
    ],
)
def test_the_start_line_says_the_precision_and_why_in_one_line(
    shapes: ShapesData, tmp_path: Path, arch: str, device: str, amp: str, said: str
) -> None:
    """CUDA is only named here: the line is made, nothing runs on it."""
    line = _start_line(start_line_job(shapes, arch, tmp_path, amp), torch.device(device))
    assert said in line and line.startswith(f"training {arch} at 300x300")
    assert "\n" not in line


def test_train_names_every_bad_annotation_and_trains_nothing(
    shapes: ShapesData, tmp_path: Path
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    doc = json.loads((data / "train.json").read_text())
    doc["annotations"][0]["bbox"] = [0, 0, 0, 10]  # zero area
    doc["annotations"][1]["category_id"] = 99  # unknown class
    (data / "train.json").write_text(json.dumps(doc))
    done = cli("train", "--data", str(data), "--out", str(tmp_path / "out"), "--epochs", "1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "annotation id 1" in done.stderr and "annotation id 2" in done.stderr
    assert not (tmp_path / "out").exists()


def cut_short(data: Path, count: int) -> list[Path]:
    """The first `count` training images of the COCO folder `data`, cut short as a copy
    that did not finish leaves them (their header, with the size, still reads)."""
    images = json.loads((data / "train.json").read_text())["images"][:count]
    paths = [data / image["file_name"] for image in images]
    for path in paths:
        path.write_bytes(path.read_bytes()[:3000])
    return paths


def test_every_jpeg_cut_short_is_named_before_training_starts(
    shapes: ShapesData, tmp_path: Path
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    first, second = cut_short(data, 2)
    out = tmp_path / "out"
    done = cli("train", "--data", str(data), "--out", str(out), "--epochs", "1", "--int8", "skip")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == (
        f"error: dataset {data.resolve()}: 2 problems\n"
        f"  train.json: image id 1: {CUT_SHORT}: images/{first.name}\n"
        f"  train.json: image id 2: {CUT_SHORT}: images/{second.name}\n"
    )
    assert not out.exists()


@pytest.fixture
def no_detector_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Preparing a detector (an ONNX export, a quantization: half a minute) fails the test."""

    def prepared(*args: object, **kwargs: object) -> None:
        raise AssertionError("the detector was prepared before the data was checked")

    monkeypatch.setattr("detector.engine.Detector.__init__", prepared)


@pytest.mark.usefixtures("no_detector_prepared")
def test_evaluate_names_every_jpeg_cut_short_before_preparing_the_detector(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    first, second = cut_short(data, 2)
    assert main(["evaluate", "--model", "person_ssdlite", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"image id 1: {CUT_SHORT}: images/{first.name}\n" in err
    assert f"image id 2: {CUT_SHORT}: images/{second.name}\n" in err


@pytest.mark.usefixtures("no_detector_prepared")
def test_evaluate_refuses_data_without_the_models_classes_before_preparing_the_detector(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(shapes, tmp_path / "coco")  # discs, squares, triangles; no person
    assert main(["evaluate", "--model", "person_ssdlite", "--data", str(data)]) == 2
    assert capsys.readouterr().err == (
        "error: dataset: none of its classes (disc, square, triangle) is one the model "
        "detects (person); evaluate a model trained on them\n"
    )


@pytest.mark.parametrize("measure_int8", [False, True], ids=["evaluate", "measure-int8"])
def test_evaluate_of_an_onnx_file_says_it_cannot_and_what_to_give_not_a_damaged_checkpoint(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str], measure_int8: bool
) -> None:
    from detector.onnx_export import write_onnx

    data = str(write_coco(shapes, tmp_path / "coco"))
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    onnx = write_onnx(model, LabelMap(shapes.class_names), tmp_path / "shapes.onnx")
    more = ["--measure-int8"] if measure_int8 else []
    assert main(["evaluate", "--model", str(onnx), "--data", data, *more]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: {onnx} is an ONNX file ") and err.count("\n") == 1
    assert "damaged" not in err and "a .pt file" in err and "or a model name: " in err


@pytest.mark.parametrize("measure", [[], ["--measure-int8"]], ids=["map", "int8"])
def test_evaluate_on_images_without_a_box_is_one_error_line_not_a_traceback(
    measure: list[str], shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(val_without_boxes(shapes), tmp_path / "coco")
    args = ["evaluate", "--model", "person_ssdlite", "--data", str(data), *measure]
    assert main(args) == EXIT_USAGE
    assert capsys.readouterr().err == (
        f"error: none of the 4 images of {data} evaluated (--split auto) holds a box to score "
        "the model against\n"
    )


def test_measure_int8_beside_a_checkpoint_on_a_read_only_disk_is_refused_before_measuring(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    with small_disk(tmp_path / "disk", "16m") as disk:
        best = disk.path / "best.pt"
        save_checkpoint(best, model, "person_ssdlite", 300, LabelMap(shapes.class_names))
        disk.make_read_only()  # the int8 files were refused after minutes of measuring
        code = main(["evaluate", "--model", str(best), "--data", str(data), "--measure-int8"])
        assert (code, capsys.readouterr().err) == (
            2,
            f"error: --measure-int8 keeps its files beside {best}: cannot write in the folder "
            f"{disk.path}: read-only file system\n",
        )


def test_a_training_image_that_does_not_decode_stops_measure_int8_naming_it(
    shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    image = data / "images" / shapes.train[0].image.name  # a calibration image
    image.write_bytes(broken_huffman_tables(image.read_bytes()))
    best = tmp_path / "best.pt"
    model = ARCHITECTURES["person_ssdlite"](len(shapes.class_names), 300)
    save_checkpoint(best, model, "person_ssdlite", 300, LabelMap(shapes.class_names))
    code = main(["evaluate", "--model", str(best), "--data", str(data), "--measure-int8"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "unreadable image (OSError: " in err and str(image) in err
    assert "Traceback" not in err


def test_evaluate_json_reports_map_per_class_and_speed_of_the_deployed_engine(
    trained: Path, shapes: ShapesData, tmp_path: Path
) -> None:
    data = write_coco(shapes, tmp_path / "coco")
    done = cli(
        "evaluate",
        "--model",
        str(trained / "best.pt"),
        "--data",
        str(data),
        "--json",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0.0 <= report["map"] <= report["map50"] <= 1.0
    assert set(report["per_class"]) <= set(shapes.class_names[1:])
    assert report["images"] == len(shapes.val)  # the data's own validation split
    assert report["images_per_s"] > 0 and "onnxruntime" in report["detector"].lower()


@pytest.mark.parametrize("precision", ["fp32", "int8", "auto"])
def test_the_deployed_networks_score_what_train_measured_beside_the_checkpoint(
    trained: Path,
    shapes: ShapesData,
    tmp_path: Path,
    vnni: None,
    capsys: pytest.CaptureFixture[str],
    precision: str,
) -> None:
    best = trained / "best.pt"
    record = json.loads((trained / "best.int8.json").read_text())
    assert record["calibration_images"] == len(shapes.train) and record["images"] == 4
    data = write_coco(shapes, tmp_path / "coco")
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(best),
                "--data",
                str(data),
                "--json",
                "--device",
                "cpu",
                "--precision",
                precision,
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    int8 = precision == "int8" or (
        precision == "auto" and record["fp32_map50"] - record["int8_map50"] <= MAX_MAP50_LOSS
    )
    assert ("int8 (measured: best.int8.onnx)" in report["detector"]) is int8
    assert report["map50"] == pytest.approx(record["int8_map50" if int8 else "fp32_map50"])


def test_evaluate_measures_int8_of_a_checkpoint_trained_without_a_measurement(
    trained: Path, shapes: ShapesData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = tmp_path / "best.pt"
    shutil.copyfile(trained / "best.pt", best)  # alone: as from before int8 was measured
    data = write_coco(shapes, tmp_path / "coco")
    assert (
        main(["evaluate", "--model", str(best), "--data", str(data), "--measure-int8", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == len(shapes.val)
    assert report["calibration_images"] == len(shapes.train)
    assert measured_int8(best).measurement == Int8Measurement(
        **{k: v for k, v in report.items() if k not in ("model", "acceptable")}
    )
    assert (
        main(["evaluate", "--model", "person_ssdlite", "--data", str(data), "--measure-int8"]) == 2
    )
    assert "--measure-int8 measures a checkpoint file" in capsys.readouterr().err


def test_a_trained_checkpoint_runs_in_a_config_with_its_own_class_names(
    trained: Path, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "clip.mp4", frames=8)
    db = tmp_path / "det.db"
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: yard\n    source: {video}\n"
        # runtime torch: ONNX Runtime ran this checkpoint in the evaluate test already
        f"detector:\n  model: {trained / 'best.pt'}\n  device: cpu\n  runtime: torch\n"
        "  score_threshold: 0.0\n  max_detections: 5\n  labels: [square, disc]\n"
        f"sinks:\n  - type: sql\n    url: sqlite:///{db}\n"
    )
    checked = cli("validate", str(config))
    assert checked.returncode == 0, checked.stderr
    done = cli("run", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as con:
        labels = {row[0] for row in con.execute("SELECT DISTINCT label FROM detections")}
    assert labels and labels <= {"square", "disc"}
