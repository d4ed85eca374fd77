"""`validate` refuses what `run` would refuse before reading a frame, and passes the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detector.torchvision_models import COCO_WEIGHTS
from pipeline.cli import main
from tests.conftest import VideoFactory


@pytest.fixture
def config(tmp_path: Path, synthetic_video: VideoFactory) -> Path:
    """cams.yaml with one camera; `detector:` is appended by each test."""
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    path = tmp_path / "cams.yaml"
    path.write_text(f"cameras:\n  - id: lobby\n    source: {clip}\n")
    return path


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A torch hub cache with nothing downloaded, as on a fresh offline machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def validate(config: Path, detector: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with config.open("a") as f:
        f.write(detector)
    code = main(["validate", str(config)])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_config_without_detector_validates_offline_with_the_bundled_model(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = validate(config, "", capsys)
    assert code == 0
    assert said == f"{config}: ok (1 camera(s), model person_ssdlite (1 class), sinks: none)\n"


def test_an_unknown_model_name_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, said = validate(config, "detector:\n  model: yolo_v99\n", capsys)
    assert code == 2
    assert said.startswith(f"error: {config}: detector: unknown detector model 'yolo_v99'")
    assert said.count("\n") == 1


LABELS_ASKED = {
    "person_ssdlite": {"[person]": 0, "[person, car]": 2, "[background]": 2},
    "ssdlite320_mobilenet_v3_large": {"[person, car]": 0, "[persons]": 2},
}
"""Per model, `detector.labels` values and the exit status `validate` gives each."""


@pytest.mark.parametrize(
    ("model", "labels"), [(m, labels) for m, asked in LABELS_ASKED.items() for labels in asked]
)
def test_labels_the_model_does_not_have_are_refused(
    config: Path, capsys: pytest.CaptureFixture[str], model: str, labels: str
) -> None:
    code = LABELS_ASKED[model][labels]
    detector = f"detector:\n  model: {model}\n  weights: none\n  labels: {labels}\n"
    got, said = validate(config, detector, capsys)
    assert got == code, said
    if code:
        assert "unknown label" in said and "in `detector.labels`" in said


@pytest.mark.parametrize("model", sorted(COCO_WEIGHTS))
def test_weights_that_need_a_download_are_named_with_the_offline_ways_out(
    config: Path, capsys: pytest.CaptureFixture[str], model: str, empty_hub_cache: Path
) -> None:
    code, said = validate(config, f"detector:\n  model: {model}\n", capsys)
    assert code == 2
    url = COCO_WEIGHTS[model].url
    assert f"{model} weights are not downloaded yet ({empty_hub_cache}/hub/checkpoints/" in said
    assert f"run would download {url} first" in said
    assert "person_ssdlite" in said and said.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")
def test_a_device_that_is_not_there_is_refused(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = validate(config, "detector:\n  device: cuda\n", capsys)
    assert code == 2 and "CUDA is not available" in said
