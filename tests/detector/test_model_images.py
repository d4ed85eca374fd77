"""Frames resized ahead for the detector (`Frame.model_image`, made on the readers' threads):
the same detections as frames the detector resizes itself, on every CPU path."""

from __future__ import annotations

import numpy as np
import pytest
from torchvision.models import detection as tvd

from detector.cached_onnx import CachedOnnxDetector
from detector.engine import Detector
from detector.request import DetectorRequest
from detector.resize import resize_rgb
from detector.ssd import SSD
from detector.torchvision_models import from_torchvision
from pipeline.types import Detections, Frame, LabelMap
from tests.detector.building import make_detector
from tests.detector.random_models import calibrated_ssdlite
from tests.detector.test_cached_onnx import sample_frames

LABELS = LabelMap(tuple(tvd.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.meta["categories"]))


@pytest.fixture(scope="module")
def ssdlite() -> SSD:
    return from_torchvision(calibrated_ssdlite(seed=0))


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _frame(image: np.ndarray, model_image: np.ndarray | None = None) -> Frame:
    return Frame("cam", 0, 0.0, 0.0, image, model_image)


def _assert_same(have: list[Detections], want: list[Detections]) -> None:
    assert [len(d) for d in have] == [len(d) for d in want]
    for a, b in zip(have, want, strict=True):
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.xyxy, b.xyxy)


def _resized_ahead(detector: Detector | CachedOnnxDetector, frames: list[Frame]) -> list[Frame]:
    return [_frame(f.image, detector.model_image(f.image)) for f in frames]


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_frames_resized_ahead_find_exactly_what_the_detector_finds_resizing_them(
    ssdlite: SSD, runtime: str
) -> None:
    detector = make_detector(
        ssdlite, LABELS, runtime=runtime, precision="fp32", score_threshold=0.0, max_detections=8
    )
    frames = [_frame(_image(480, 640, 0)), _frame(_image(240, 320, 1)), _frame(_image(96, 160, 2))]
    ahead = _resized_ahead(detector, frames)
    for f, prepared in zip(frames, ahead, strict=True):
        np.testing.assert_array_equal(prepared.model_image, resize_rgb(f.image, (320, 320)))
    _assert_same(detector.detect(ahead), detector.detect(frames))
    assert all(len(d) == 8 for d in detector.detect(ahead))
    # Boxes stay in the frame's own pixels, not the model image's.
    big = detector.detect(ahead[:1])[0]
    assert big.xyxy[:, 2].max() > 320 and (big.xyxy[:, 2] <= 640).all()


def test_the_detector_uses_a_frames_model_image_rather_than_resizing_its_image(
    ssdlite: SSD,
) -> None:
    """The model image is what the network sees: a frame carrying the model image of another
    picture of its size finds that picture's boxes."""
    detector = make_detector(ssdlite, LABELS, precision="fp32", score_threshold=0.0)
    shown, other = _image(240, 320, 3), _image(240, 320, 4)
    swapped = _frame(shown, detector.model_image(other))
    _assert_same(detector.detect([swapped]), detector.detect([_frame(other)]))
    assert len(detector.detect([swapped])[0]) > 0


def test_a_model_image_of_another_size_is_not_used(ssdlite: SSD) -> None:
    """Made for a network of another input size: the detector resizes the frame itself."""
    detector = make_detector(ssdlite, LABELS, precision="fp32", score_threshold=0.0)
    image = _image(240, 320, 5)
    stale = _frame(image, resize_rgb(_image(240, 320, 6), (300, 300)))
    _assert_same(detector.detect([stale]), detector.detect([_frame(image)]))


def test_exact_resize_resizes_on_the_device_and_makes_no_model_image(ssdlite: SSD) -> None:
    detector = make_detector(ssdlite, LABELS, exact_resize=True, score_threshold=0.0)
    image = _image(240, 320, 7)
    assert detector.model_image(image) is None
    given = _frame(image, resize_rgb(_image(240, 320, 8), (320, 320)))
    _assert_same(detector.detect([given]), detector.detect([_frame(image)]))


def test_the_cached_network_uses_model_images_as_the_detector_does() -> None:
    """The run's fast-start detector (the cached ONNX network) resizes ahead the same way."""
    built = Detector.build(DetectorRequest(device="cpu", runtime="onnxruntime", precision="fp32"))
    assert built.onnx_file is not None
    CachedOnnxDetector.keep(built.options, built.model, built.labels, built.onnx_file)
    cached = CachedOnnxDetector.open(built.options)
    assert cached is not None
    frames = sample_frames(4)
    _assert_same(cached.detect(_resized_ahead(cached, frames)), cached.detect(frames))
    _assert_same(built.detect(_resized_ahead(built, frames)), built.detect(frames))
    assert sum(len(d) for d in cached.detect(frames)) > 0  # the clip has people to find
