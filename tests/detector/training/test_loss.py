"""MultiBoxLoss: the SSD paper's matching, Smooth-L1 + hard-negative softmax loss."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder as TorchvisionBoxCoder
from torchvision.models.detection._utils import SSDMatcher
from torchvision.models.detection.ssd import SSD as TorchvisionSSD
from torchvision.ops import box_iou

from detector.box_coder import BoxCoder
from detector.training.loss import MultiBoxLoss

NUM_CLASSES = 4  # background + 3


def random_boxes(generator: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * 0.7
    wh = torch.rand(n, 2, generator=generator) * 0.25 + 0.05
    return torch.cat((xy, xy + wh), dim=-1)


def random_batch(
    seed: int, counts: list[int], num_anchors: int = 300
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """anchors [A, 4], box_regression [B, A, 4], class_logits [B, A, C], boxes, labels."""
    g = torch.Generator().manual_seed(seed)
    anchors = random_boxes(g, num_anchors)
    batch = len(counts)
    regression = torch.randn(batch, num_anchors, 4, generator=g)
    logits = torch.randn(batch, num_anchors, NUM_CLASSES, generator=g) * 2
    boxes = [random_boxes(g, n) for n in counts]
    labels = [torch.randint(1, NUM_CLASSES, (n,), generator=g) for n in counts]
    return anchors, regression, logits, boxes, labels


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target], per row of logits [N, C]."""
    return -torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]


def test_loss_equals_torchvision_compute_loss_for_torchvision_code_layout():
    anchors, regression, logits, boxes, labels = random_batch(0, [3, 1, 5])
    weights = (10.0, 10.0, 5.0, 5.0)
    ours = MultiBoxLoss(BoxCoder(weights), anchors)(regression, logits, boxes, labels)

    matcher = SSDMatcher(0.5)
    matched = [matcher(box_iou(b, anchors)) for b in boxes]
    owner = SimpleNamespace(box_coder=TorchvisionBoxCoder(weights), neg_to_pos_ratio=3)
    theirs = TorchvisionSSD.compute_loss(
        owner,  # compute_loss reads only these two attributes
        [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels, strict=True)],
        {"bbox_regression": regression, "cls_logits": logits},
        [anchors] * len(boxes),
        matched,
    )
    assert ours.localisation.item() > 0 and ours.confidence.item() > 0
    torch.testing.assert_close(ours.localisation, theirs["bbox_regression"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.confidence, theirs["classification"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.total, ours.localisation + ours.confidence)


def test_tf_yx_code_order_differs_from_torchvision_only_by_the_permutation():
    anchors, regression, logits, boxes, labels = random_batch(1, [2, 4])
    xy = MultiBoxLoss(BoxCoder((10.0, 8.0, 5.0, 4.0)), anchors)(regression, logits, boxes, labels)
    yx = MultiBoxLoss(BoxCoder((8.0, 10.0, 4.0, 5.0), yx_order=True), anchors)(
        regression[..., [1, 0, 3, 2]], logits, boxes, labels
    )
    torch.testing.assert_close(yx.localisation, xy.localisation)
    torch.testing.assert_close(yx.confidence, xy.confidence)
    unpermuted = MultiBoxLoss(BoxCoder((8.0, 10.0, 4.0, 5.0), yx_order=True), anchors)(
        regression, logits, boxes, labels
    )
    assert not torch.isclose(unpermuted.localisation, xy.localisation)


def test_each_ground_truth_takes_its_best_anchor_even_under_the_threshold():
    anchors = torch.tensor(
        [
            [0.10, 0.10, 0.30, 0.30],  # best for gt 0, IoU 0.14
            [0.70, 0.00, 0.90, 0.20],  # overlaps nothing
            [0.50, 0.50, 0.90, 0.88],  # gt 1, IoU 0.95
            [0.52, 0.50, 0.90, 0.90],  # gt 1, IoU 0.95
            [0.50, 0.50, 0.68, 0.90],  # gt 1, IoU 0.45: under the threshold
        ]
    )
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]])
    matched = MultiBoxLoss(BoxCoder(), anchors).match([boxes])
    assert matched.tolist() == [[0, -1, 1, 1, -1]]


def test_every_anchor_over_the_threshold_is_matched_to_its_best_ground_truth():
    anchors, _, _, boxes, _ = random_batch(2, [6], num_anchors=2000)
    matched = MultiBoxLoss(BoxCoder(), anchors, iou_threshold=0.5).match(boxes)[0]
    iou = box_iou(boxes[0], anchors)  # [N, A]
    best_iou, best_gt = iou.max(dim=0)
    over = best_iou >= 0.5
    assert over.sum() > 10  # the case is exercised
    assert torch.equal(matched[over], best_gt[over])
    best_anchor = iou.argmax(dim=1)
    assert torch.equal(matched[best_anchor], torch.arange(len(boxes[0])))
    others = torch.ones_like(over)
    others[over] = False
    others[best_anchor] = False
    assert (matched[others] == -1).all()


def disjoint_anchors(n: int) -> torch.Tensor:
    """n non-overlapping anchors in a row: a box equal to one overlaps no other."""
    x = torch.arange(n, dtype=torch.float32) / n
    return torch.stack((x, torch.zeros(n), x + 0.5 / n, torch.full((n,), 0.5)), dim=-1)


def test_three_hard_negatives_of_highest_loss_per_positive():
    anchors = disjoint_anchors(10)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 10, NUM_CLASSES, generator=g) * 3
    boxes, labels = [anchors[[4]]], [torch.tensor([2])]
    parts = MultiBoxLoss(BoxCoder(), anchors)(torch.zeros(1, 10, 4), logits, boxes, labels)

    targets = torch.zeros(10, dtype=torch.int64)
    targets[4] = 2
    per_anchor = cross_entropy(logits[0], targets)
    negatives = torch.cat((per_anchor[:4], per_anchor[5:]))
    expected = per_anchor[4] + negatives.topk(3).values.sum()
    torch.testing.assert_close(parts.confidence, expected)
    assert parts.localisation.item() == pytest.approx(0.0, abs=1e-6)  # codes 0 predicted


def test_all_negatives_count_when_fewer_than_the_ratio_asks():
    anchors = disjoint_anchors(4)
    logits = torch.randn(1, 4, NUM_CLASSES, generator=torch.Generator().manual_seed(4))
    boxes, labels = [anchors[[0, 2]]], [torch.tensor([1, 3])]
    parts = MultiBoxLoss(BoxCoder(), anchors)(torch.zeros(1, 4, 4), logits, boxes, labels)
    per_anchor = cross_entropy(logits[0], torch.tensor([1, 0, 3, 0]))
    torch.testing.assert_close(parts.confidence, per_anchor.sum() / 2)


def test_image_without_boxes_contributes_its_hardest_negatives_only():
    anchors = disjoint_anchors(10)
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 10, NUM_CLASSES, generator=g) * 3
    regression = torch.randn(2, 10, 4, generator=g)
    boxes = [anchors[[7]], torch.zeros(0, 4)]
    labels = [torch.tensor([1]), torch.zeros(0, dtype=torch.int64)]
    coder = BoxCoder()
    parts = MultiBoxLoss(coder, anchors)(regression, logits, boxes, labels)

    first = cross_entropy(logits[0], torch.tensor([0] * 7 + [1] + [0] * 2))
    second = cross_entropy(logits[1], torch.zeros(10, dtype=torch.int64))
    first_negatives = torch.cat((first[:7], first[8:]))
    expected = first[7] + first_negatives.topk(3).values.sum() + second.topk(3).values.sum()
    torch.testing.assert_close(parts.confidence, expected)
    target = coder.encode(anchors[7], anchors[7])  # zero codes: the box is its anchor
    expected_loc = F.smooth_l1_loss(regression[0, 7], target, reduction="sum")
    torch.testing.assert_close(parts.localisation, expected_loc)


def test_batch_without_any_box_gives_a_finite_confidence_only_loss():
    anchors, regression, logits, _, _ = random_batch(6, [0, 0])
    empty = [torch.zeros(0, 4), torch.zeros(0, 4)]
    no_labels = [torch.zeros(0, dtype=torch.int64)] * 2
    parts = MultiBoxLoss(BoxCoder(), anchors)(regression, logits, empty, no_labels)
    assert parts.localisation.item() == 0.0
    background = torch.zeros(len(anchors), dtype=torch.int64)
    expected = sum(cross_entropy(lg, background).topk(3).values.sum() for lg in logits)
    torch.testing.assert_close(parts.confidence, expected)


def test_gradients_reach_positives_and_exactly_three_negatives_per_positive():
    anchors, regression, logits, boxes, labels = random_batch(7, [2, 3], num_anchors=500)
    regression.requires_grad_(True)
    logits.requires_grad_(True)
    loss = MultiBoxLoss(BoxCoder(), anchors)
    loss(regression, logits, boxes, labels).total.backward()
    assert regression.grad is not None and logits.grad is not None

    positive = loss.match(boxes) >= 0
    moved_boxes = regression.grad.abs().sum(-1) > 0
    assert torch.equal(moved_boxes, positive)
    moved_scores = logits.grad.abs().sum(-1) > 0
    assert (moved_scores & positive).sum() == positive.sum()
    assert torch.equal((moved_scores & ~positive).sum(1), 3 * positive.sum(1))


def test_mismatched_shapes_are_reported_in_one_line():
    anchors, regression, logits, boxes, labels = random_batch(8, [1, 1])
    loss = MultiBoxLoss(BoxCoder(), anchors)
    with pytest.raises(ValueError, match=r"2 box and 1 label tensors for a batch of 2"):
        loss(regression, logits, boxes, labels[:1])
    with pytest.raises(ValueError, match=r"outputs per image for 300 anchors"):
        loss(regression[:, :10], logits[:, :10], boxes, labels)
