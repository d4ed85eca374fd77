"""Checkpoints: a saved model comes back the same, an interrupted save loses nothing, a save
that could not be loaded is refused, and a damaged or foreign file is one line."""

from __future__ import annotations

import errno
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from detector.architectures import ARCHITECTURES
from detector.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from detector.errors import ModelConfigError
from detector.models import build_model
from detector.options import DetectorOptions
from detector.request import DetectorRequest
from detector.ssd import SSD
from pipeline.types import LabelMap
from tests.sinks.small_disk import small_disk

PETS = LabelMap(("background", "cat", "dog"))
EXTRA = {"config": {"epochs": 2, "data": "pets/train.json"}, "epoch": 1, "metrics": {"map": 0.5}}


@pytest.fixture(scope="module")
def pets() -> SSD:
    """A person_ssdlite for background, cat and dog, with weights no fresh model has."""
    torch.manual_seed(0)
    model = ARCHITECTURES["person_ssdlite"](3, 300)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    return model


@pytest.fixture
def saved(pets: SSD, tmp_path: Path) -> Path:
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(path, pets, "person_ssdlite", 300, PETS, EXTRA)
    return path


def outputs(model: SSD) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(1, 3, *model.input_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return model(images * 255)


def test_a_saved_model_loads_back_with_the_same_outputs_labels_and_extra(
    pets: SSD, saved: Path
) -> None:
    loaded = load_checkpoint(saved)
    assert (loaded.arch, loaded.size, loaded.labels, loaded.extra) == (
        "person_ssdlite",
        300,
        PETS,
        EXTRA,
    )
    assert not loaded.model.training and loaded.model.score_fn == "softmax"
    for ours, theirs in zip(outputs(pets), outputs(loaded.model), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    model, labels = build_model(str(saved))  # what `detector.model: best.pt` runs
    assert labels == PETS
    our_state, their_state = model.state_dict(), pets.state_dict()
    assert all(torch.equal(our_state[k], their_state[k]) for k in their_state)
    torch.testing.assert_close(model.anchors, pets.anchors, rtol=0, atol=0)


def test_an_interrupted_save_leaves_the_previous_checkpoint_whole(
    pets: SSD, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(data: object, file: object) -> None:
        file.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(saved, pets, "person_ssdlite", 300, PETS, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(saved).extra["epoch"] == 1
    assert sorted(p.name for p in saved.parent.iterdir()) == ["best.pt"]


@pytest.mark.parametrize(
    ("arch", "size", "labels", "said"),
    [
        ("person_ssdlite", 300, LabelMap(("background", "cat")), "not person_ssdlite with 2"),
        ("person_ssdlite", 512, PETS, "takes 300x300 inputs, not the 512x512"),
        ("ssdlite320_mobilenet_v3_large", 300, PETS, "not ssdlite320_mobilenet_v3_large"),
    ],
)
def test_a_save_that_would_not_load_back_is_refused(
    pets: SSD, tmp_path: Path, arch: str, size: int, labels: LabelMap, said: str
) -> None:
    with pytest.raises(ValueError, match=said):
        save_checkpoint(tmp_path / "best.pt", pets, arch, size, labels)
    assert not list(tmp_path.iterdir())


def test_a_model_that_scores_otherwise_than_a_trained_one_is_refused(
    person: SSD, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="scores with sigmoid"):
        save_checkpoint(
            tmp_path / "best.pt", person, "person_ssdlite", 300, LabelMap(("background", "person"))
        )


def test_extra_takes_plain_data_and_numpy_scalars_become_numbers(pets: SSD, tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    extra = {
        "map": np.float32(0.25),
        "epoch": np.int64(3),
        "ok": np.bool_(True),
        "sizes": (300, 320),
    }
    save_checkpoint(path, pets, "person_ssdlite", 300, PETS, extra)
    assert load_checkpoint(path).extra == {"map": 0.25, "epoch": 3, "ok": True, "sizes": [300, 320]}
    with pytest.raises(TypeError, match=r"extra\['config'\]\['data'\] is a PosixPath"):
        save_checkpoint(path, pets, "person_ssdlite", 300, PETS, {"config": {"data": Path("x")}})


def test_a_truncated_checkpoint_is_refused_in_one_line(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelConfigError) as info:
        build_model(str(saved))
    message = str(info.value)
    assert message.startswith(f"cannot read model checkpoint {saved}") and "\n" not in message
    assert "damaged" in message
    assert "If you are seeing this error" not in message  # torch's paragraph of advice


def test_a_pickle_of_another_program_is_refused_without_torchs_warning(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warned of the protocol on stderr, before the error
        with pytest.raises(ModelConfigError, match=r"not a file of torch\.save"):
            load_checkpoint(path)


def test_a_file_holding_no_mapping_is_not_offered_the_state_dict_advice(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelConfigError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"{path} is not a checkpoint saved by this pipeline (`python -m pipeline train` writes them)"
    )


def test_a_full_disk_while_saving_names_the_checkpoint_and_leaves_the_previous_one(
    pets: SSD, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "16m") as disk:
        path = disk.path / "run" / "best.pt"
        save_checkpoint(path, pets, "person_ssdlite", 300, PETS, EXTRA)
        disk.fill(leave=100_000)  # torch.save's zip writer met ENOSPC as a RuntimeError
        with pytest.raises(OSError) as info:
            save_checkpoint(path, pets, "person_ssdlite", 300, PETS, {"epoch": 2})
        assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(path))
        assert load_checkpoint(path).extra["epoch"] == 1
        assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ({"weight": torch.zeros(2)}, "is not a checkpoint saved by this pipeline"),
        ({"format": "ssd-pipeline/9"}, "newer than this version reads"),
        ({"format": CHECKPOINT_FORMAT, "arch": "yolo", "size": 300, "labels": ["background", "x"],
          "state_dict": {}, "extra": {}}, "architecture 'yolo', which this version does not know"),
        ({"format": CHECKPOINT_FORMAT, "arch": "person_ssdlite", "size": "300"}, "its 'size' is a str"),
        ({"format": CHECKPOINT_FORMAT, "arch": "person_ssdlite", "size": 300, "labels": ["x"],
          "state_dict": {}, "extra": {}}, "its 'labels' must be 2 or more class names"),
        ({"format": CHECKPOINT_FORMAT, "arch": "person_ssdlite", "size": 300,
          "labels": ["background", "x"], "state_dict": {}, "extra": {}}, "missing keys"),
        ({"format": CHECKPOINT_FORMAT, "arch": "person_ssdlite", "size": 300,
          "labels": ["background", "x" * 129], "state_dict": {}, "extra": {}},
         "class name 'xxx.* is 129 characters long; the most is 128"),
        ({"format": "ssd-pipeline/1", "arch": "person_ssdlite", "labels": ["background", "y" * 200],
          "state_dict": {}}, "class name 'yyy.* is 200 characters long"),
    ],
)  # fmt: skip
def test_a_foreign_or_damaged_checkpoint_is_refused_in_one_line(
    tmp_path: Path, content: dict[str, object], said: str
) -> None:
    path = tmp_path / "best.pt"
    torch.save(content, path)
    with pytest.raises(ModelConfigError, match=said) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_checkpoint_without_an_int8_measurement_runs_in_float32_on_a_vnni_cpu(
    saved: Path, vnni: None
) -> None:
    trained = DetectorOptions.resolve(DetectorRequest(model=str(saved), device="cpu"))
    assert trained.precision == "fp32"
    assert trained.reasons["precision"].startswith(
        f"fp32: no int8 measurement beside it ({saved.stem}.int8.json)"
    )


def test_a_training_folder_given_as_the_model_is_refused_naming_its_best_pt(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ModelConfigError) as empty:
        build_model(str(run))
    assert str(empty.value) == f"model checkpoint {run} is a folder, not a file"
    model = ARCHITECTURES["person_ssdlite"](2, 300)
    save_checkpoint(run / "best.pt", model, "person_ssdlite", 300, LabelMap(("background", "x")))
    with pytest.raises(ModelConfigError) as trained:
        build_model(str(run))
    assert str(trained.value) == (
        f"model checkpoint {run} is a folder, not a file; the checkpoint a training keeps in "
        f"it is {run / 'best.pt'}"
    )


def test_an_onnx_file_given_as_the_model_is_refused_as_one_not_as_a_damaged_checkpoint(
    pets: SSD, tmp_path: Path
) -> None:
    from detector.onnx_export import write_onnx

    exported = write_onnx(pets, PETS, tmp_path / "pets.onnx")
    with pytest.raises(ModelConfigError) as info:
        build_model(str(exported))
    message = str(info.value)
    assert message.startswith(f"{exported} is an ONNX file ") and "\n" not in message
    assert "damaged" not in message
    assert "give the checkpoint it was exported from (a .pt file" in message
    assert message.endswith(
        "or a model name: person_ssdlite, ssd300_vgg16, ssdlite320_mobilenet_v3_large"
    )
