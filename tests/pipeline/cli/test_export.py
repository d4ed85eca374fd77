"""`export`: the ONNX file runs in ONNX Runtime as the model runs in torch, its metadata
decodes its outputs, and what cannot be exported (a full disk too) is one error line, nothing
written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from detector import models
from detector.architectures import ARCHITECTURES
from detector.box_coder import BoxCoder
from detector.checkpoints import save_checkpoint
from detector.onnx_export import METADATA_FORMAT
from detector.ssd import SSD
from pipeline.cli import main
from pipeline.types import LabelMap
from tests.sinks.small_disk import small_disk

ort = pytest.importorskip("onnxruntime")
PETS = LabelMap(("background", "cat", "dog"))


class TinyHead(nn.Module):
    """[B, 3, 16, 16] -> 16 boxes and 3 classes per image, from a 4x4 grid of cells."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 7, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells = nn.functional.avg_pool2d(self.conv(x), 4)  # [B, 7, 4, 4]
        out = cells.flatten(2).transpose(1, 2)  # [B, 16, 7]
        return out[..., :4], out[..., 4:]


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> SSD:
    """A registered model "tiny_pets" small enough to export in a moment."""
    torch.manual_seed(0)
    centres = (torch.arange(4) + 0.5) / 4
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    anchors = torch.stack([cx - 0.2, cy - 0.2, cx + 0.2, cy + 0.2], -1).reshape(-1, 4)
    model = SSD(
        nn.Identity(), TinyHead(), anchors, BoxCoder(), (16, 16), (127.0,) * 3, (64.0,) * 3
    ).eval()
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    models.register_model("tiny_pets", lambda weights: (model, PETS))
    return model


def test_the_exported_file_runs_in_onnxruntime_as_the_model_runs_in_torch(
    tiny: SSD, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deploy" / "tiny.onnx"
    code = main(["export", "--model", "tiny_pets", "--out", str(out)])
    said = capsys.readouterr().out
    assert code == 0
    assert said.startswith(f"{out}: ONNX; images uint8 [B, 3, 16, 16]")
    assert "class_logits [B, 16, 3]; labels: background, cat, dog" in said

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 16, 16), dtype=np.uint8)
    box_regression, class_logits = session.run(
        ["box_regression", "class_logits"], {"images": images}
    )
    with torch.inference_mode():
        expected = tiny(torch.from_numpy(images))
    torch.testing.assert_close(torch.from_numpy(box_regression), expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(class_logits), expected[1], rtol=1e-5, atol=1e-5)

    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["format"] == METADATA_FORMAT
    assert (meta["labels"], meta["input_size"]) == (list(PETS.names), [16, 16])
    assert (meta["score_fn"], meta["background_class"]) == ("softmax", 0)
    coder = BoxCoder(**meta["box_coder"])
    decoded = coder.decode(torch.from_numpy(box_regression), torch.tensor(meta["anchors"]))
    torch.testing.assert_close(decoded, tiny.box_coder.decode(expected[0], tiny.anchors))


@pytest.fixture
def pets_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "best.pt"
    save_checkpoint(path, ARCHITECTURES["person_ssdlite"](3, 300), "person_ssdlite", 300, PETS)
    return path


@pytest.mark.parametrize(
    ("model", "size", "said"),
    [
        ("{ckpt}", "416", "person_ssdlite takes inputs of 300, 320, 512 pixels square, not 416"),
        ("{ckpt}x", None, "model checkpoint not found"),
        ("tiny_pets", "320", "unknown architecture 'tiny_pets'"),
    ],
)
def test_what_cannot_be_exported_is_one_error_line_and_no_file(
    tiny: SSD,
    pets_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    size: str | None,
    said: str,
) -> None:
    out = tmp_path / "out.onnx"
    argv = ["export", "--model", model.format(ckpt=pets_checkpoint), "--out", str(out)]
    code = main(argv + (["--size", size] if size else []))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert said in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("model", "weights", "said"),
    [
        ("{ckpt}", "x.pth", "holding its own weights; remove `--weights` (got 'x.pth') or "),
        (
            "ssdlite320_mobilenet_v3_large",
            "{tmp}/missing.pth",
            "weights file not found: {tmp}/missing.pth; set `--weights` to an existing .pth file",
        ),
        (
            "ssdlite320_mobilenet_v3_large",
            "{ckpt}",
            "{ckpt} is a pipeline checkpoint, not a state_dict; set `--model {ckpt}` instead of "
            "`--weights`",
        ),
        ("{ckpt}x", "default", "model checkpoint not found: {ckpt}x; set `--model` to "),
    ],
    ids=["checkpoint-and-weights", "missing-weights", "checkpoint-as-weights", "no-checkpoint"],
)
def test_a_weights_or_model_error_names_the_option_not_the_config_key(
    pets_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    weights: str,
    said: str,
) -> None:
    def filled(text: str) -> str:
        return text.format(ckpt=pets_checkpoint, tmp=tmp_path)

    out = tmp_path / "out.onnx"
    code = main(
        ["export", "--model", filled(model), "--weights", filled(weights), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert filled(said) in err and "detector." not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--model", "{ckpt}", "--out", "{ckpt}"], "is the checkpoint --model reads"),
        (
            ["--model", "person_ssdlite", "--weights", "{weights}", "--out", "{link}"],
            "is the --weights file",
        ),
    ],
    ids=["over-the-checkpoint", "over-the-weights-by-a-link"],
)
def test_an_out_that_is_the_model_read_is_refused_and_the_model_kept(
    pets_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    said: str,
) -> None:
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"state")
    (tmp_path / "link.pth").symlink_to(weights)
    before = pets_checkpoint.read_bytes()
    place = {"ckpt": pets_checkpoint, "weights": weights, "link": tmp_path / "link.pth"}
    code = main(["export", *(arg.format(**place) for arg in args)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --out: ") and err.count("\n") == 1
    assert said in err  # was: the ONNX file written over the weights it was made from
    assert pets_checkpoint.read_bytes() == before and weights.read_bytes() == b"state"


def test_a_full_disk_is_one_error_line_naming_the_file_and_leaves_no_partial_file(
    tiny: SSD, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        disk.fill(leave=100)  # onnx.save's error named no file
        out = disk.path / "tiny.onnx"
        code = main(["export", "--model", "tiny_pets", "--out", str(out)])
        assert (code, capsys.readouterr().err) == (
            1,
            f"error: No space left on device: {out}\n",
        )
        assert sorted(p.name for p in disk.path.iterdir()) == ["filler"]
