"""The architectures models are trained as: each builds at each of its sizes with one
prediction per default box, the paper's box counts, and the sizes each refuses."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch.func import functional_call

from detector.anchors import feature_map_sizes
from detector.architectures import ARCHITECTURES, DEFAULT_SIZE, SIZES, at_size, check_size
from detector.errors import ModelConfigError
from detector.ssd import SSD

# Default boxes: the cells of each feature map times the boxes per cell there.
EXPECTED_BOXES = {
    ("person_ssdlite", 300): 19 * 19 * 3 + 6 * (10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1),
    ("person_ssdlite", 320): 20 * 20 * 3 + 6 * (10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1),
    ("person_ssdlite", 512): 32 * 32 * 3 + 6 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1),
    ("ssdlite320_mobilenet_v3_large", 300): 6 * (19 * 19 + 10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1),
    ("ssdlite320_mobilenet_v3_large", 320): 6 * (20 * 20 + 10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1),
    ("ssdlite320_mobilenet_v3_large", 512): 6 * (32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1),
    ("ssd300_vgg16", 300): 8732,  # the SSD paper's SSD300
    ("ssd512_vgg16", 512): 24564,  # the SSD paper's SSD512
}


def meta_outputs(model: SSD) -> tuple[Tensor, Tensor]:
    """`model`'s outputs for one image, computed on the meta device: shapes only."""
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in (*model.named_parameters(), *model.named_buffers())
    }
    image = torch.empty(1, 3, *model.input_size, device="meta")
    with torch.no_grad():
        return functional_call(model, state, (image,))


def test_every_size_of_every_architecture_is_checked_here() -> None:
    assert sorted(EXPECTED_BOXES) == sorted((a, s) for a, sizes in SIZES.items() for s in sizes)
    assert all(DEFAULT_SIZE[arch] in sizes for arch, sizes in SIZES.items())


@pytest.mark.parametrize(("arch", "size"), sorted(EXPECTED_BOXES))
def test_each_architecture_builds_at_each_of_its_sizes_with_one_prediction_per_default_box(
    arch: str, size: int
) -> None:
    model = ARCHITECTURES[arch](3, size)
    assert model.input_size == (size, size) and not model.training
    assert (model.score_fn, model.background_class) == ("softmax", 0)
    assert model.num_anchors == EXPECTED_BOXES[arch, size]
    box_regression, class_logits = meta_outputs(model)
    assert box_regression.shape == (1, model.num_anchors, 4)
    assert class_logits.shape == (1, model.num_anchors, 3)


def test_ssd512_has_the_papers_seven_maps_and_coco_box_scales() -> None:
    model = ARCHITECTURES["ssd512_vgg16"](2, 512)
    maps = feature_map_sizes(model.backbone, (512, 512))
    assert maps == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    # The first box: centred on the first 8-pixel cell, scale 0.04; the next one, the extra
    # square of scale sqrt(0.04 * 0.1).
    c, s, s2 = 4 / 512, 0.04, (0.04 * 0.1) ** 0.5
    torch.testing.assert_close(model.anchors[0], torch.tensor([c - s / 2] * 2 + [c + s / 2] * 2))
    torch.testing.assert_close(model.anchors[1], torch.tensor([c - s2 / 2] * 2 + [c + s2 / 2] * 2))
    # The last: the 1x1 map's tall box of scale 0.9 and ratio 1:2, its height clipped to 1.
    half_w = 0.9 / 2**0.5 / 2
    torch.testing.assert_close(
        model.anchors[-1], torch.tensor([0.5 - half_w, 0.0, 0.5 + half_w, 1.0])
    )


@pytest.mark.parametrize(
    ("arch", "size", "said"),
    [
        ("ssd300_vgg16", 512, "ssd300_vgg16 takes 300x300 inputs only"),
        ("ssd512_vgg16", 300, "ssd512_vgg16 takes 512x512 inputs only"),
        ("person_ssdlite", 416, "person_ssdlite takes inputs of 300, 320, 512 pixels square"),
        ("yolo", 416, "unknown architecture 'yolo'; known: person_ssdlite, ssd300_vgg16"),
    ],
)
def test_a_size_the_architecture_does_not_take_is_refused_naming_what_it_takes(
    arch: str, size: int, said: str
) -> None:
    with pytest.raises(ModelConfigError, match=said):
        check_size(arch, size)


def test_building_at_a_size_the_architecture_does_not_take_is_refused() -> None:
    with pytest.raises(ModelConfigError, match="takes 300x300 inputs only"):
        ARCHITECTURES["ssd300_vgg16"](2, 512)


def test_no_size_means_the_default_size() -> None:
    assert check_size("ssdlite320_mobilenet_v3_large", None) == 320


def test_at_size_keeps_the_weights_and_scoring_and_lays_the_boxes_out_anew(person: SSD) -> None:
    resized = at_size(person, "person_ssdlite", 2, 512)
    assert person.input_size == (300, 300)  # the model given is left as it was
    assert resized.input_size == (512, 512) and resized.score_fn == person.score_fn == "sigmoid"
    ours, theirs = resized.state_dict(), person.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    torch.testing.assert_close(resized.anchors, ARCHITECTURES["person_ssdlite"](2, 512).anchors)
    box_regression, _ = meta_outputs(resized)
    assert box_regression.shape[1] == resized.num_anchors == EXPECTED_BOXES["person_ssdlite", 512]


def test_at_size_refuses_a_model_that_is_not_the_architecture_named(person: SSD) -> None:
    with pytest.raises(ModelConfigError, match="do not fit model person_ssdlite"):
        at_size(person, "person_ssdlite", 3, 512)  # it has 2 classes
