"""A checkpoint in a config (`detector.model: DIR/best.pt`): `validate` checks `labels`
against its classes, `run` detects with it and its class names reach the sinks, and a
damaged one is one error line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detector.architectures import ARCHITECTURES
from detector.checkpoints import save_checkpoint
from pipeline.cli import main
from pipeline.types import LabelMap
from tests.conftest import VideoFactory
from tests.pipeline.cli_runs import ROOT

PETS = LabelMap(("background", "cat", "dog"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight person_ssdlite trained (as far as its file says) on cats and dogs."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("train") / "best.pt"
    model = ARCHITECTURES["person_ssdlite"](3, 300)
    save_checkpoint(path, model, "person_ssdlite", 300, PETS, {"epoch": 1})
    return path


def write_config(tmp_path: Path, clip: Path, detector: str) -> Path:
    config = tmp_path / "pets.yaml"
    config.write_text(
        f"cameras:\n  - id: yard\n    source: {clip}\n"
        f"detector:\n{detector}"
        # random weights score every class alike: keep the 3 best boxes a frame, confirmed
        "tracker:\n  sigma_h: 0.0\n  t_min: 1\n"
        f"sinks:\n  - type: sql\n    url: sqlite:///{tmp_path / 'det.db'}\n"
        f"  - type: video\n    dir: {tmp_path / 'video'}\n"
    )
    return config


@pytest.mark.parametrize(("labels", "code"), [("[cat]", 0), ("[cat, dog]", 0), ("[person]", 2)])
def test_validate_checks_labels_against_the_checkpoints_classes(
    checkpoint: Path,
    tmp_path: Path,
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
    labels: str,
    code: int,
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = write_config(tmp_path, clip, f"  model: {checkpoint}\n  labels: {labels}\n")
    assert main(["validate", str(config)]) == code
    out, err = capsys.readouterr()
    if code:
        assert err.count("\n") == 1
        assert "unknown label 'person' in `detector.labels`; valid labels include: cat, dog" in err
    else:
        assert out == (
            f"{config}: ok (1 camera(s), model {checkpoint} (2 classes), sinks: sql, video)\n"
        )


def test_a_damaged_checkpoint_in_a_config_is_one_error_line(
    checkpoint: Path,
    tmp_path: Path,
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    damaged = tmp_path / "best.pt"
    damaged.write_bytes(checkpoint.read_bytes()[:5000])
    config = write_config(tmp_path, synthetic_video("clip.mp4", frames=2), f"  model: {damaged}\n")
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}: detector: cannot read model checkpoint {damaged}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_run_detects_with_the_checkpoint_and_its_class_names_reach_the_sinks(
    checkpoint: Path, tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(96, 72))
    detector = (
        f"  model: {checkpoint}\n  device: cpu\n  runtime: torch\n"
        "  batch_size: 3\n  score_threshold: 0.0\n  max_detections: 3\n"
    )
    config = write_config(tmp_path, clip, detector)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(config), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with sqlite3.connect(tmp_path / "det.db") as db:
        rows = db.execute("SELECT label, count(*) FROM detections GROUP BY label").fetchall()
    assert rows and {label for label, _ in rows} <= {"cat", "dog"}
    assert sum(count for _, count in rows) == 6 * 3
    assert list((tmp_path / "video").glob("yard_*.mp4"))
