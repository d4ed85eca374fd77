"""Where fine-tuning starts: pretrained weights kept but for a new class head, checkpoints
gone on from, weights that are not there offline, and bases or sizes that cannot be."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import Tensor
from torchvision.models import VGG16_Weights
from torchvision.models import detection as tvd

from detector.architectures import ARCHITECTURES, SPECS
from detector.checkpoints import save_checkpoint
from detector.errors import ModelConfigError, WeightsUnavailableError
from detector.ssd import SSD
from detector.state_dicts import hub_cache_file
from detector.torchvision_models import COCO_WEIGHTS
from detector.training.bases import trainable_model
from pipeline.types import LabelMap

PETS = ("background", "cat", "dog")
SSDLITE = "ssdlite320_mobilenet_v3_large"


def split(state: dict[str, Tensor], arch: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(everything but the class head, the class head) of an `arch` state_dict."""
    head = SPECS[arch].class_head
    return (
        {k: v for k, v in state.items() if not k.startswith(head)},
        {k: v for k, v in state.items() if k.startswith(head)},
    )


def assert_same(ours: dict[str, Tensor], theirs: dict[str, Tensor]) -> None:
    assert ours.keys() == theirs.keys() and ours
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert different == []


@pytest.fixture(scope="module")
def pets_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight person_ssdlite for (background, cat, dog), saved at 300."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pets") / "best.pt"
    save_checkpoint(
        path, ARCHITECTURES["person_ssdlite"](3, 300), "person_ssdlite", 300, LabelMap(PETS)
    )
    return path


def test_the_seed_alone_chooses_the_weights_of_a_class_head_made_anew() -> None:
    torch.manual_seed(1)  # the process's own RNG, in another state before each call
    first = trainable_model("person_ssdlite", PETS, seed=7).model.state_dict()
    torch.manual_seed(2)
    before = torch.get_rng_state()
    again = trainable_model("person_ssdlite", PETS, seed=7).model.state_dict()
    assert torch.equal(torch.get_rng_state(), before)  # nothing drawn from it
    other = trainable_model("person_ssdlite", PETS, seed=8).model.state_dict()

    assert_same(first, again)
    kept, head = split(first, "person_ssdlite")
    other_kept, other_head = split(other, "person_ssdlite")
    assert_same(kept, other_kept)  # the bundled layers whatever the seed
    weights = [k for k in head if k.endswith("weight")]
    assert weights and all(not torch.equal(head[k], other_head[k]) for k in weights)


@pytest.mark.parametrize("size", [None, 512])
def test_person_base_keeps_the_bundled_backbone_and_box_head_and_makes_a_class_head(
    person: SSD, size: int | None
) -> None:
    start = trainable_model("person_ssdlite", PETS, size, seed=0)
    assert (start.arch, start.size) == ("person_ssdlite", size or 300)
    assert start.model.input_size == (start.size, start.size)
    kept, head = split(start.model.state_dict(), "person_ssdlite")
    bundled_kept, bundled_head = split(person.state_dict(), "person_ssdlite")
    assert_same(kept, bundled_kept)
    assert head.keys() == bundled_head.keys()
    # The first map's class predictor ends in a 1x1 conv to 3 boxes x 3 classes; a trained
    # model scores them with a softmax over background, cat and dog.
    assert head["head.cls.0.1.weight"].shape[0] == 3 * 3
    assert start.model.score_fn == "softmax" and person.score_fn == "sigmoid"


def test_checkpoint_base_with_the_same_classes_goes_on_with_every_weight(
    pets_checkpoint: Path,
) -> None:
    saved = torch.load(pets_checkpoint, weights_only=True)["state_dict"]
    start = trainable_model(str(pets_checkpoint), PETS, seed=0)
    assert (start.arch, start.size) == ("person_ssdlite", 300)
    assert_same(start.model.state_dict(), saved)
    assert start.fresh_class_head is False


@pytest.mark.parametrize("classes", [("background", "cat", "bird"), ("background", "cat")])
def test_checkpoint_base_for_other_classes_gets_a_new_class_head_and_keeps_the_rest(
    pets_checkpoint: Path, classes: tuple[str, ...]
) -> None:
    saved = torch.load(pets_checkpoint, weights_only=True)["state_dict"]
    start = trainable_model(str(pets_checkpoint), classes, seed=0)
    kept, head = split(start.model.state_dict(), "person_ssdlite")
    saved_kept, saved_head = split(saved, "person_ssdlite")
    assert_same(kept, saved_kept)
    assert start.fresh_class_head is True
    # The last 1x1 conv of each class predictor: 3 boxes (first map) or 6 per cell, a
    # column per class; made anew even where the shape did not change.
    last = "head.cls.0.1.weight"
    assert head[last].shape[0] == 3 * len(classes)
    assert head[last].shape != saved_head[last].shape or not torch.equal(
        head[last], saved_head[last]
    )


def test_checkpoint_base_at_another_size_lays_its_boxes_out_for_that_size(
    pets_checkpoint: Path,
) -> None:
    saved = torch.load(pets_checkpoint, weights_only=True)["state_dict"]
    start = trainable_model(str(pets_checkpoint), PETS, 512, seed=0)
    assert (start.size, start.model.input_size) == (512, (512, 512))
    assert start.model.num_anchors == ARCHITECTURES["person_ssdlite"](3, 512).num_anchors
    assert_same(start.model.state_dict(), saved)


def refuse_downloads(monkeypatch: pytest.MonkeyPatch, torch_home: Path) -> list[str]:
    """An empty (or test-made) hub cache in `torch_home`, and no network: the URLs asked
    for are listed."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    asked: list[str] = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        asked.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return asked


def test_torchvision_base_starts_from_the_coco_weights_in_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = refuse_downloads(monkeypatch, tmp_path)
    torch.manual_seed(3)
    coco = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).state_dict()
    cached = hub_cache_file(COCO_WEIGHTS[SSDLITE].url)  # as a download would have left it
    cached.parent.mkdir(parents=True)
    torch.save(coco, cached)

    start = trainable_model(SSDLITE, PETS, 300, seed=0)
    assert asked == [] and start.model.input_size == (300, 300)
    kept, head = split(start.model.state_dict(), SSDLITE)
    # Our SSD wraps torchvision's backbone and head, one level down.
    wrapped = {k.replace("backbone.", "backbone.body.", 1).replace("head.", "head.head.", 1): v
               for k, v in coco.items()}  # fmt: skip
    coco_kept, _ = split(wrapped, SSDLITE)
    assert_same(kept, coco_kept)
    # 6 boxes per cell x 3 classes from the first map's class predictor.
    assert head[f"{SPECS[SSDLITE].class_head}module_list.0.1.weight"].shape[0] == 6 * 3


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("ssd300_vgg16", COCO_WEIGHTS["ssd300_vgg16"].url),
        ("ssd512_vgg16", VGG16_Weights.IMAGENET1K_FEATURES.url),
    ],
)
def test_offline_base_without_cached_weights_says_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: str, url: str
) -> None:
    asked = refuse_downloads(monkeypatch, tmp_path)
    with pytest.raises(WeightsUnavailableError) as info:
        trainable_model(base, PETS, seed=0)
    message = str(info.value)
    assert asked == [url]
    assert url in message and "name resolution" in message and "\n" not in message
    assert str(hub_cache_file(url).parent) in message and "person_ssdlite" in message


def test_a_size_the_base_does_not_take_is_refused_before_any_weights_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = refuse_downloads(monkeypatch, tmp_path)
    with pytest.raises(ModelConfigError, match="ssd300_vgg16 takes 300x300 inputs only"):
        trainable_model("ssd300_vgg16", PETS, 512, seed=0)
    assert asked == []


def test_a_folder_as_the_base_is_refused_as_a_folder_not_as_an_unknown_name(
    tmp_path: Path,
) -> None:
    with pytest.raises(ModelConfigError, match=r"^model checkpoint .* is a folder, not a file"):
        trainable_model(str(tmp_path), PETS, seed=0)  # an earlier training's --out, say


def test_an_unknown_base_names_the_architectures(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=r"unknown base 'yolo'.*person_ssdlite"):
        trainable_model("yolo", PETS, seed=0)
    with pytest.raises(ModelConfigError, match=r"nope\.pt"):
        trainable_model(str(tmp_path / "nope.pt"), PETS, seed=0)


@pytest.mark.parametrize(
    "classes", [("cat", "dog"), ("background",), ("background", "cat", "cat"), ("background", "")]
)
def test_class_names_must_be_background_then_distinct_names(classes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="class"):
        trainable_model("person_ssdlite", classes, seed=0)


def test_person_base_for_person_starts_scoring_as_the_bundled_model_does(person: SSD) -> None:
    start = trainable_model("person_ssdlite", ("background", "person"), seed=0).model.eval()
    images = torch.randint(0, 256, (2, 3, 300, 300), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        boxes, logits = start(images.float())
        bundled_boxes, bundled_logits = person.eval()(images.float())
    assert start.score_fn == "softmax" and person.score_fn == "sigmoid"
    torch.testing.assert_close(boxes, bundled_boxes)
    torch.testing.assert_close(
        logits.softmax(-1)[..., 1], bundled_logits[..., 1].sigmoid(), atol=1e-5, rtol=1e-4
    )
