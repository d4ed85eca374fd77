"""The vectorised postprocess against torchvision's own `SSD.postprocess_detections`.

Both get the same raw head outputs: random ones, and those of a model run on a real
photo. torchvision keeps the `topk_candidates` best boxes per class, we the
`pre_nms_top_k` best (box, class) pairs per image; with both limits above the number of
candidates they must select exactly the same detections.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.models import detection as tvd
from torchvision.models.detection.image_list import ImageList

from detector.postprocess import postprocess
from detector.torchvision_models import from_torchvision
from tests.detector.random_models import calibrated_ssdlite

PHOTO = Path(__file__).resolve().parents[2] / "docs" / "images" / "lobby.jpg"
SIZE = 320


@pytest.fixture(scope="module")
def model() -> tvd.SSD:
    """Random SSDLite320 whose batch-norm statistics are measured on noise."""
    return calibrated_ssdlite(seed=1)


@pytest.fixture(scope="module")
def pixel_anchors(model: tvd.SSD) -> torch.Tensor:
    """torchvision's own anchors for a 320x320 input, xyxy pixels [A, 4]."""
    images = ImageList(torch.zeros(1, 3, SIZE, SIZE), [(SIZE, SIZE)])
    with torch.no_grad():
        features = list(model.backbone(images.tensors).values())
    return model.anchor_generator(images, features)[0]


def compare(
    model: tvd.SSD,
    pixel_anchors: torch.Tensor,
    regression: torch.Tensor,
    logits: torch.Tensor,
    score_threshold: float,
) -> int:
    """Assert both postprocesses give the same detections per image; returns how many."""
    batch, num_anchors, num_classes = logits.shape
    model.score_thresh = score_threshold
    model.topk_candidates = num_anchors  # no per-class cap
    model.detections_per_img = 10**6
    with torch.no_grad():
        expected = model.postprocess_detections(
            {"bbox_regression": regression, "cls_logits": logits},
            [pixel_anchors] * batch,
            [(SIZE, SIZE)] * batch,
        )
    ours_model = from_torchvision(model)
    ours = postprocess(
        regression,
        logits,
        anchors=ours_model.anchors,
        box_coder=ours_model.box_coder,
        score_fn="softmax",
        background_class=0,
        score_threshold=score_threshold,
        nms_threshold=model.nms_thresh,
        max_detections=10**6,
        pre_nms_top_k=num_anchors * num_classes,
    )
    sizes = torch.full((batch, 2), float(SIZE))
    total = 0
    for theirs, mine in zip(expected, ours.scaled(sizes).to_detections(), strict=True):
        assert len(mine) == len(theirs["scores"])
        # Same order: both sort by decreasing score (ties are vanishingly unlikely here).
        np.testing.assert_array_equal(mine.label, theirs["labels"].numpy())
        np.testing.assert_allclose(mine.score, theirs["scores"].numpy(), rtol=1e-5)
        np.testing.assert_allclose(mine.xyxy, theirs["boxes"].numpy(), atol=2e-3)
        total += len(mine)
    return total


def test_random_raw_outputs_give_torchvisions_detections(model, pixel_anchors):
    generator = torch.Generator().manual_seed(0)
    num_anchors = pixel_anchors.shape[0]
    regression = torch.randn(3, num_anchors, 4, generator=generator) * 0.5
    logits = torch.randn(3, num_anchors, 91, generator=generator) * 3
    logits[1, :, 0] += 2.0  # a mostly-background image beside busier ones
    found = compare(model, pixel_anchors, regression, logits, score_threshold=0.3)
    assert found > 50  # enough boxes, overlapping enough for NMS to matter


def test_raw_outputs_of_a_real_photo_give_torchvisions_detections(model, pixel_anchors):
    bgr = cv2.imread(str(PHOTO))
    assert bgr is not None, f"missing {PHOTO}"
    rgb = cv2.cvtColor(cv2.resize(bgr, (SIZE, SIZE)), cv2.COLOR_BGR2RGB)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        batch = model.transform([image, image.flip(-1)])[0]
        features = list(model.backbone(batch.tensors).values())
        head = model.head(features)
    scores = torch.softmax(head["cls_logits"], -1)[..., 1:]
    # A threshold in the widest gap among the best scores: rounding cannot move a box
    # across it, so both sides see the same candidates.
    top = scores.flatten().topk(400).values
    gap = int(torch.argmax(top[50:399] - top[51:400])) + 50
    threshold = float(top[gap] + top[gap + 1]) / 2
    found = compare(model, pixel_anchors, head["bbox_regression"], head["cls_logits"], threshold)
    assert found > 5
