"""Model registry, weights choices, and the errors users see."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import detection as tvd

from detector import (
    ModelConfigError,
    WeightsUnavailableError,
    build_model,
    models,
    register_model,
)
from detector.box_coder import BoxCoder
from detector.checkpoints import CHECKPOINT_FORMAT
from detector.ssd import SSD
from pipeline.types import LabelMap

SSDLITE = "ssdlite320_mobilenet_v3_large"


def test_state_dict_path_loads_torchvision_weights(tmp_path: Path):
    torch.manual_seed(2)
    reference = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    path = tmp_path / "ssdlite.pth"
    torch.save(reference.state_dict(), path)

    model, labels = build_model(SSDLITE, str(path))
    assert labels.name(1) == "person"
    images = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        features = list(reference.backbone(reference.transform.normalize(images[0])[None]).values())
        expected = reference.head(features)
        box_regression, class_logits = model(images * 255)
    torch.testing.assert_close(box_regression, expected["bbox_regression"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(class_logits, expected["cls_logits"], rtol=1e-4, atol=1e-4)


def test_unknown_model_name_lists_known_models():
    with pytest.raises(ModelConfigError, match=r"unknown detector model 'ssd512'.*ssd300_vgg16"):
        build_model("ssd512", "none")


def test_missing_checkpoint_path_is_named(tmp_path: Path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelConfigError, match=r"model checkpoint not found: .*nope\.pt"):
        build_model(str(missing), "default")


def test_missing_weights_file_is_named(tmp_path: Path):
    missing = tmp_path / "absent.pth"
    with pytest.raises(WeightsUnavailableError, match=r"weights file not found: .*absent\.pth"):
        build_model(SSDLITE, str(missing))


def test_unreadable_weights_file_is_named(tmp_path: Path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsUnavailableError, match=r"cannot read weights file .*garbage\.pth"):
        build_model(SSDLITE, str(garbage))


def test_weights_for_another_architecture_are_rejected_with_the_path(tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(ModelConfigError) as info:
        build_model(SSDLITE, str(path))
    message = str(info.value)
    assert "other.pth" in message and SSDLITE in message and "missing keys" in message
    assert "\n" not in message


def test_checkpoint_given_as_weights_points_to_model_setting(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": SSDLITE, "labels": [], "state_dict": {}}, path)
    with pytest.raises(ModelConfigError, match=r"pipeline checkpoint.*detector.model"):
        build_model(SSDLITE, str(path))


def test_offline_default_weights_fail_with_the_url_and_the_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty hub cache
    requested: list[str] = []

    def offline_download(url: str, *args: object, **kwargs: object) -> None:
        requested.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline_download)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(SSDLITE, "default")
    url = tvd.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.url
    assert requested == [url]
    message = str(info.value)
    assert url in message and "name resolution" in message and "\n" not in message
    for fix in ("detector.weights: /path/to/", "person_ssdlite", "detector.weights: none"):
        assert fix in message


def test_ssd300_has_pixel_normalisation_and_the_ssd300_default_boxes():
    model, labels = build_model("ssd300_vgg16", "none")
    assert model.input_size == (300, 300)
    # torchvision: mean [0.48235, 0.45882, 0.40784], std 1/255 on 0..1 images.
    expected_mean = torch.tensor([123.0, 117.0, 104.0])
    torch.testing.assert_close(model.mean.flatten(), expected_mean, atol=0.01, rtol=0)
    torch.testing.assert_close(model.std.flatten(), torch.ones(3))
    assert len(labels.names) == 91 and labels.name(1) == "person"
    # 38x38x4 + 19x19x6 + 10x10x6 + 5x5x6 + 3x3x4 + 1x1x4 boxes; the first is centred on
    # the first 8-pixel cell with scale 0.07, the last is the tall 1:2 box of scale 0.87.
    assert model.anchors.shape == (8732, 4)
    c, s = 4 / 300, 0.07
    torch.testing.assert_close(
        model.anchors[0], torch.tensor([c - s / 2, c - s / 2, c + s / 2, c + s / 2])
    )
    half_w = 0.87 / 2**0.5 / 2
    torch.testing.assert_close(
        model.anchors[-1], torch.tensor([0.5 - half_w, 0.0, 0.5 + half_w, 1.0])
    )


def test_registered_builder_is_called_with_the_weights_choice(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    calls: list[str] = []

    def tiny(weights: str) -> tuple[SSD, LabelMap]:
        calls.append(weights)
        model = SSD(
            backbone=nn.Identity(),
            head=nn.Identity(),
            anchors=torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
            box_coder=BoxCoder(),
            input_size=(8, 8),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        )
        return model.train(), LabelMap(("bg", "thing"))

    register_model("tiny", tiny)
    model, labels = build_model("tiny", "none")
    assert calls == ["none"] and labels.names == ("bg", "thing") and not model.training
    with pytest.raises(ModelConfigError, match="tiny"):
        build_model("tinyy", "none")


def test_checkpoint_rejects_separate_weights(tmp_path: Path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"unused")
    with pytest.raises(ModelConfigError, match="holding its own weights"):
        build_model(str(path), "/some/weights.pth")
