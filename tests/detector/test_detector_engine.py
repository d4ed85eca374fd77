"""Detector on synthetic frames with a random-weights SSDLite320 (CPU)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from torchvision.models import detection as tvd

from detector import Detector, DetectorRequest, ModelConfigError
from detector.ssd import SSD
from detector.torchvision_models import from_torchvision
from pipeline.types import Frame, LabelMap
from tests.detector.building import make_detector
from tests.detector.random_models import calibrated_ssdlite

LABELS = LabelMap(tuple(tvd.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.meta["categories"]))


@pytest.fixture(scope="module")
def torchvision_ssdlite() -> tvd.SSD:
    return calibrated_ssdlite(seed=0)


@pytest.fixture(scope="module")
def ssdlite(torchvision_ssdlite: tvd.SSD) -> SSD:
    return from_torchvision(torchvision_ssdlite)


def frame(height: int, width: int, seed: int, index: int = 0) -> Frame:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Frame(camera_id=f"cam{seed}", index=index, pts=0.0, wall_time=0.0, image=image)


def test_one_detections_per_frame_inside_each_frame_for_mixed_sizes(ssdlite: SSD):
    detector = make_detector(ssdlite, LABELS, score_threshold=0.0, max_detections=5)
    frames = [frame(240, 320, 0), frame(150, 200, 1), frame(320, 320, 2), frame(240, 320, 3)]
    results = detector.detect(frames)
    assert len(results) == len(frames)
    for f, det in zip(frames, results, strict=True):
        assert len(det) == 5
        assert det.xyxy.dtype == np.float32 and det.score.dtype == np.float32
        assert det.label.dtype == np.int64 and (det.track_id == -1).all()
        x1, y1, x2, y2 = det.xyxy.T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x1 <= x2).all() and (y1 <= y2).all()
        assert (x2 <= f.width).all() and (y2 <= f.height).all()
        assert (det.label != 0).all()  # background
        assert (np.diff(det.score) <= 0).all()
    assert detector.input_size == (320, 320) and detector.device == torch.device("cpu")


def test_mixed_size_batch_equals_frames_detected_one_at_a_time(ssdlite: SSD):
    detector = make_detector(ssdlite, LABELS, score_threshold=0.0, max_detections=10)
    frames = [frame(240, 320, 0), frame(150, 200, 1), frame(240, 320, 3)]
    together = detector.detect(frames)
    for f, batched in zip(frames, together, strict=True):
        (alone,) = detector.detect([f])
        np.testing.assert_array_equal(batched.label, alone.label)
        np.testing.assert_allclose(batched.score, alone.score, rtol=1e-4)
        np.testing.assert_allclose(batched.xyxy, alone.xyxy, atol=1e-2)


def test_detections_match_torchvision_running_the_same_weights(
    torchvision_ssdlite: tvd.SSD, ssdlite: SSD
):
    f = frame(240, 320, 5)
    image = torch.from_numpy(f.image).permute(2, 0, 1).float() / 255
    with torch.no_grad():
        scores = torch.softmax(ssdlite(ssdlite_input(image))[1], -1)[0, :, 1:].flatten()
    # Few enough boxes for torchvision's per-class top-k, and a threshold in the widest gap
    # between scores so that rounding differences do not move boxes across it.
    top = scores.topk(300).values
    gap = int(torch.argmax(top[100:299] - top[101:300])) + 100
    threshold = float(top[gap] + top[gap + 1]) / 2
    torchvision_ssdlite.score_thresh = threshold
    torchvision_ssdlite.detections_per_img = 1000
    with torch.no_grad():
        expected = torchvision_ssdlite([image])[0]
    detector = make_detector(
        ssdlite,
        LABELS,
        score_threshold=threshold,
        nms_threshold=torchvision_ssdlite.nms_thresh,
        max_detections=1000,
        pre_nms_top_k=10**6,
        exact_resize=True,  # torchvision resizes in float; the fast uint8 resize rounds
    )
    (ours,) = detector.detect([f])
    assert len(ours) == len(expected["boxes"]) > 10
    # Pair every box with its nearest box of the same label in the other result.
    distance = np.abs(ours.xyxy[:, None] - expected["boxes"].numpy()[None]).max(-1)
    distance[ours.label[:, None] != expected["labels"].numpy()[None]] = np.inf
    assert distance.min(0).max() < 0.05 and distance.min(1).max() < 0.05
    np.testing.assert_allclose(
        ours.score, expected["scores"].numpy()[distance.argmin(1)], rtol=1e-4
    )


def ssdlite_input(image: torch.Tensor) -> torch.Tensor:
    """0..1 [3, H, W] -> 0..255 [1, 3, 320, 320], resized as torchvision does."""
    return torch.nn.functional.interpolate(
        image[None] * 255, size=(320, 320), mode="bilinear", align_corners=False
    )


def test_label_filter_reports_only_named_classes():
    request = DetectorRequest(
        model="ssdlite320_mobilenet_v3_large",
        weights="none",
        device="cpu",
        score_threshold=0.0,
        max_detections=20,
        labels=["person", "Car"],
        runtime="torch",  # unseeded random weights: nothing for onnxruntime to cache
    )
    detector = Detector.build(request)
    (det,) = detector.detect([frame(120, 160, 0)])
    assert len(det) > 0
    assert set(det.label.tolist()) <= {LABELS.names.index("person"), LABELS.names.index("car")}
    assert detector.labels == LABELS


def test_unknown_label_name_is_a_config_error_naming_it(ssdlite: SSD):
    with pytest.raises(
        ModelConfigError, match=r"unknown label 'persn'.*valid labels include: person"
    ):
        make_detector(ssdlite, LABELS, labels=["person", "persn"])


def test_background_and_placeholder_names_are_not_valid_labels(ssdlite: SSD):
    for name in ("__background__", "N/A"):
        with pytest.raises(ModelConfigError, match="unknown label"):
            make_detector(ssdlite, LABELS, labels=[name])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_a_config_error(ssdlite: SSD):
    with pytest.raises(ModelConfigError, match=r"CUDA is not available.*detector.device: cpu"):
        make_detector(ssdlite, LABELS, device="cuda:0")


def test_invalid_device_name_is_a_config_error(ssdlite: SSD):
    with pytest.raises(ModelConfigError, match="invalid device 'gpu0'"):
        make_detector(ssdlite, LABELS, device="gpu0")


def test_no_frames_gives_no_results(ssdlite: SSD):
    assert make_detector(ssdlite, LABELS).detect([]) == []


def test_a_box_the_network_gives_as_nan_is_dropped_and_said_once_naming_the_model(
    ssdlite: SSD, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    detector = make_detector(ssdlite, LABELS, score_threshold=0.0, max_detections=5)
    frames = [frame(240, 320, 0), frame(240, 320, 1)]
    before = detector.detect(frames)
    forward = detector.forward

    def nan_for_the_best_anchor_of_the_first_frame(
        images: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        box_regression, class_logits = (t.clone() for t in forward(images))
        assert ssdlite.score_fn == "softmax" and ssdlite.background_class == 0
        best = torch.softmax(class_logits[0], -1)[:, 1:].max(-1).values.argmax()
        box_regression[0, best] = torch.nan  # the anchor of the first frame's best box
        return box_regression, class_logits

    monkeypatch.setattr(detector, "forward", nan_for_the_best_anchor_of_the_first_frame)
    with caplog.at_level(logging.WARNING, logger="detector"):
        after = detector.detect(frames)
        again = detector.detect(frames)
    for got in (after, again):
        # the best box is gone; every other box still comes out (the first frame may gain
        # one: a box the best one suppressed, or the next best)
        kept = got[0].xyxy.tolist()
        assert before[0].xyxy[0].tolist() not in kept
        assert all(box in kept for box in before[0].xyxy[1:].tolist())
        np.testing.assert_array_equal(got[1].xyxy, before[1].xyxy)  # the other frame's
    (said,) = [r.getMessage() for r in caplog.records]  # two batches, one warning
    assert re.fullmatch(
        r"model ssdlite320_mobilenet_v3_large produced \d+ boxes with non-finite coordinates "
        r"or scores \(NaN or infinity\); they were dropped, as any later ones will be "
        r"\(said once\)",
        said,
    )
