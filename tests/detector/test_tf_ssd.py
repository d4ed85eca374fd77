"""The bundled person_ssdlite model against TensorFlow's own outputs (golden fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

import detector
from detector.checkpoints import V1_FORMAT
from detector.errors import ModelConfigError, WeightsUnavailableError
from detector.models import build_model
from detector.ssd import SSD
from detector.tf_ssd import BUNDLED_WEIGHTS, load_tf_ssd, person_ssdlite
from pipeline.types import Frame, LabelMap
from tests.detector.building import make_detector

GOLDEN = Path(__file__).parent / "fixtures" / "tf_person_ssdlite_golden.npz"

# Raw outputs: float32 through ~60 layers with batch norm folded differently from TF's
# kernels; measured max abs error 5e-5 on values up to |16|.
RTOL, ATOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def golden() -> dict[str, npt.NDArray[np.generic]]:
    with np.load(GOLDEN) as data:
        values = {k: data[k] for k in data.files}
    # Stored at 150x150 to keep the fixture small; TF was fed this 2x nearest upscale.
    values["images"] = values["images_150"].repeat(2, axis=1).repeat(2, axis=2)
    return values


@pytest.fixture(scope="module")
def model() -> SSD:
    net, _ = person_ssdlite("default")
    return net


def _raw_outputs(
    net: torch.nn.Module, images: npt.NDArray[np.uint8]
) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        codes, logits = net(torch.from_numpy(images).permute(0, 3, 1, 2))
    return codes.numpy(), logits.numpy()


def test_raw_box_codes_and_class_logits_match_tensorflow(model, golden) -> None:
    codes, logits = _raw_outputs(model, golden["images"])
    assert codes.shape == golden["raw_box_encodings"].shape == (3, 1917, 4)
    assert logits.shape == golden["raw_class_logits"].shape == (3, 1917, 2)
    np.testing.assert_allclose(codes, golden["raw_box_encodings"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(logits, golden["raw_class_logits"], rtol=RTOL, atol=ATOL)


def test_default_boxes_equal_tensorflow_anchors(model, golden) -> None:
    tf_yxyx = golden["anchors"]
    expected = tf_yxyx[:, [1, 0, 3, 2]]  # TF (ymin, xmin, ymax, xmax) -> xyxy
    # TF computes centres as i * (1/n) + 0.5/n, we as (i + 0.5)/n: float32 rounding only.
    np.testing.assert_allclose(model.anchors.numpy(), expected, rtol=0, atol=1e-6)


def test_random_person_architecture_has_the_converted_anchors(model) -> None:
    # `weights: none` and checkpoints saved by save_checkpoint rebuild from the default config.
    random_net, labels = person_ssdlite("none")
    assert labels.names == ("background", "person")
    torch.testing.assert_close(random_net.anchors, model.anchors, rtol=0, atol=1e-6)
    assert random_net.state_dict().keys() == model.state_dict().keys()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes a [N, 4] and b [M, 4]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def test_detector_finds_the_people_tensorflow_finds(model, golden) -> None:
    threshold = 0.3
    # Same settings as the TF graph's post-processing (NMS IoU 0.6, at most 100 boxes).
    det = make_detector(
        model,
        LabelMap(("background", "person")),
        score_threshold=threshold,
        nms_threshold=0.6,
        max_detections=100,
    )
    frames = [Frame("cam", i, 0.0, 0.0, img) for i, img in enumerate(golden["images"])]
    results = det.detect(frames)
    for i, found in enumerate(results):
        keep = golden["detection_scores"][i] > threshold
        tf_scores = golden["detection_scores"][i][keep]
        tf_boxes = golden["detection_boxes"][i][keep][:, [1, 0, 3, 2]] * 300.0
        assert len(found) == keep.sum() > 0, f"frame {i}"
        assert set(found.label.tolist()) == {1}
        np.testing.assert_allclose(found.score, tf_scores, rtol=0, atol=1e-3)
        best = _iou(found.xyxy, tf_boxes).max(axis=1)
        assert best.min() >= 0.99, f"frame {i}: IoU {best}"


def test_person_ssdlite_builds_by_name_after_importing_detector() -> None:
    request = detector.DetectorRequest(model="person_ssdlite", weights="default", device="cpu")
    det = detector.Detector.build(request)
    assert det.labels.names == ("background", "person")
    assert det.input_size == (300, 300)
    blank = Frame("cam", 0, 0.0, 0.0, np.full((120, 160, 3), 127, np.uint8))
    (found,) = det.detect([blank])
    assert len(found) == 0


def test_version_1_checkpoint_of_the_bundled_model_rebuilds_the_same_model(
    model, golden, tmp_path
) -> None:
    path = tmp_path / "person.pt"
    torch.save(  # as version 1 of the checkpoint format wrote it
        {
            "format": V1_FORMAT,
            "arch": "person_ssdlite",
            "labels": ["background", "person"],
            "state_dict": model.state_dict(),
        },
        path,
    )
    rebuilt, labels = build_model(str(path))
    assert rebuilt.score_fn == "sigmoid"  # the bundled model's, unlike trained ones
    assert labels.names == ("background", "person")
    images = golden["images"][:1]
    for ours, theirs in zip(
        _raw_outputs(rebuilt, images), _raw_outputs(model, images), strict=True
    ):
        # The rebuilt model uses the default config (mean 127.5, anchors from 0.2..0.95), the
        # converted one the graph's float32 constants: equal up to float32 rounding.
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_missing_weights_file_is_named_in_the_error(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(WeightsUnavailableError, match=r"nope\.pt"):
        person_ssdlite(str(missing))


def test_file_that_is_not_a_converted_model_is_refused(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ModelConfigError, match="not a converted TF SSD model"):
        load_tf_ssd(path)


def test_converted_file_with_wrong_shapes_is_refused(tmp_path) -> None:
    data = torch.load(BUNDLED_WEIGHTS, weights_only=True)
    data["state_dict"]["head.cls.0.1.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pt"
    torch.save(data, path)
    with pytest.raises(ModelConfigError, match="wrong shape"):
        load_tf_ssd(path)


def test_converted_file_with_a_class_name_too_long_for_the_sql_tables_is_refused(
    tmp_path,
) -> None:
    data = torch.load(BUNDLED_WEIGHTS, weights_only=True)
    data["labels"] = ["background", "p" * 129]
    path = tmp_path / "long.pt"
    torch.save(data, path)
    with pytest.raises(ModelConfigError) as info:
        load_tf_ssd(path)
    message = str(info.value)
    assert message.startswith(f"{path}: class name 'ppp") and "129 characters long" in message
