"""The naive baseline: its post-processing finds what the batched one finds; it runs with the
libraries' default threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from detector.box_coder import BoxCoder
from detector.postprocess import postprocess
from detector.ssd import SSD, ScoreFn
from pipeline.bench import naive
from pipeline.bench.naive import naive_postprocess
from tests.conftest import VideoFactory


def test_naive_runs_with_the_libraries_default_threads_whatever_the_pipeline_set(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    seen: list[tuple[int, int]] = []

    def naive_run(*args, **kwargs):
        seen.append((torch.get_num_threads(), cv2.getNumThreads()))
        return 4, 1.0

    monkeypatch.setattr(naive, "run_naive", naive_run)
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    baseline = naive.NaiveBaseline(str(clip), "person_ssdlite", "none", torch.device("cpu"), 2)
    before = torch.get_num_threads(), cv2.getNumThreads()
    cv2.setNumThreads(-1)
    opencv_default = cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # what a pipeline run sets on 2 cores
    try:
        assert baseline.run_once() == 4.0
        assert seen == [(2, opencv_default)]
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)  # restored
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


@pytest.mark.parametrize("score_fn", ["softmax", "sigmoid"])
def test_naive_postprocess_finds_what_the_batched_postprocess_finds(score_fn: ScoreFn) -> None:
    g = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=g) * 0.8
    anchors = torch.cat((corners, corners + 0.05 + torch.rand(300, 2, generator=g) * 0.15), 1)
    model = SSD(nn.Identity(), nn.Identity(), anchors, BoxCoder(), (100, 100), (0.0,) * 3,
                (1.0,) * 3, score_fn=score_fn)  # fmt: skip
    regression = torch.randn(2, 300, 4, generator=g) * 0.3
    logits = torch.randn(2, 300, 4, generator=g) * 3
    batched = postprocess(
        regression, logits, anchors=anchors, box_coder=model.box_coder, score_fn=score_fn,
        background_class=0, score_threshold=0.4, nms_threshold=0.5, max_detections=30,
        pre_nms_top_k=10**6,
    ).to_detections()  # fmt: skip
    for image, expected in enumerate(batched):
        boxes, scores, labels = naive_postprocess(
            regression[image], logits[image], model, 0.4, 0.5, 30, topk_candidates=10**6
        )
        assert 0 < len(scores) == len(expected)
        np.testing.assert_array_equal(labels.numpy(), expected.label)
        np.testing.assert_allclose(scores.numpy(), expected.score, rtol=1e-6)
        np.testing.assert_allclose(boxes.numpy(), expected.xyxy, atol=1e-6)


def test_naive_postprocess_keeps_a_box_scoring_exactly_the_threshold() -> None:
    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]])
    model = SSD(nn.Identity(), nn.Identity(), anchors, BoxCoder(), (100, 100), (0.0,) * 3,
                (1.0,) * 3, score_fn="sigmoid")  # fmt: skip
    logits = torch.tensor([[-20.0, 0.0], [-20.0, 3.0]])  # scores 0.5 (exactly) and 0.95
    kept = naive_postprocess(torch.zeros(2, 4), logits, model, 0.5, 0.5, 10)[1]
    assert kept.tolist() == pytest.approx([0.9526, 0.5], abs=1e-4)
    just_above = float(np.nextafter(np.float32(0.5), np.float32(1)))
    assert len(naive_postprocess(torch.zeros(2, 4), logits, model, just_above, 0.5, 10)[1]) == 1
