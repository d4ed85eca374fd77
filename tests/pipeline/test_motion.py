"""Motion gating: frames where nothing moved are not detected, one is at least every
`max_skip_s`, and the run publishes and counts them as sampling's skipped frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.build import make_motion_gate
from pipeline.config import CameraConfig, ConfigError, parse_config
from pipeline.motion import MotionGate
from pipeline.regions import RegionRule
from pipeline.runner import Pipeline
from pipeline.types import Detections, Frame, FrameResult
from sinks.base import Sink
from tests.pipeline.test_pipelining import EagerDetector, box
from tests.pipeline.test_regions import DarkSquares

FPS = 10


def scene(seed: int = 0) -> npt.NDArray[np.uint8]:
    """A textured 320x240 RGB background."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (240, 320, 3), np.uint8)


def noisy(image: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """`image` with a camera's sensor noise (+-4 grey levels)."""
    return np.clip(image + rng.integers(-4, 5, image.shape), 0, 255).astype(np.uint8)


def with_square(x: int, background: npt.NDArray[np.uint8], grey: int = 0) -> npt.NDArray[np.uint8]:
    """A 30-pixel square of `grey` at column `x` on `background`."""
    image = background.copy()
    image[100:130, x : x + 30] = grey
    return image


def detected(gate: MotionGate, images: list[npt.NDArray[np.uint8]]) -> list[int]:
    return [i for i, image in enumerate(images) if gate.take(image, i / FPS)]


def test_a_static_scene_is_detected_only_every_max_skip_s() -> None:
    rng = np.random.default_rng(1)
    images = [noisy(scene(), rng) for _ in range(30)]
    assert detected(MotionGate(25, 0.001, 0.5), images) == [0, 5, 10, 15, 20, 25]


def test_cameras_watching_still_scenes_force_their_detections_at_different_moments() -> None:
    rng = np.random.default_rng(1)
    images = [noisy(scene(), rng) for _ in range(12)]
    assert detected(MotionGate(25, 0.001, 0.5, phase_s=0.2), images) == [0, 3, 8]
    gates = [make_motion_gate(camera(name)) for name in ("gate", "lobby", "yard")]
    phases = {g.phase_s for g in gates if g is not None}
    assert len(phases) == 3 and all(0 <= p < 1.0 for p in phases)
    again = make_motion_gate(camera("gate"))
    assert again is not None and again.phase_s == gates[0].phase_s  # type: ignore[union-attr]


def camera(name: str) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": name, "source": "rtsp://192.0.2.1/s", "motion": {"enabled": True}}
    )


def test_an_object_moving_a_little_every_frame_is_detected_on_every_frame() -> None:
    rng = np.random.default_rng(2)
    background = scene()
    images = [noisy(with_square(20 + 6 * i, background), rng) for i in range(30)]
    assert detected(MotionGate(25, 0.001, 10.0), images) == list(range(30))


def test_a_change_smaller_than_min_area_is_not_motion_and_a_larger_one_is() -> None:
    background = scene()
    gate = MotionGate(25, 0.05, 10.0)  # 5 % of the picture: more than the 30x30 square
    assert gate.take(background, 0.0)
    assert not gate.take(with_square(100, background), 0.1)
    assert MotionGate(25, 0.005, 10.0).take(background, 0.0)
    small_area = MotionGate(25, 0.005, 10.0)
    small_area.take(background, 0.0)
    assert small_area.take(with_square(100, background), 0.1)


def test_slow_motion_is_caught_once_it_adds_up_since_the_last_detected_frame() -> None:
    # A faint square creeping one pixel a frame changes too little from one frame to the
    # next, but not against the frame last detected.
    background = np.full((240, 320, 3), 200, np.uint8)
    images = [with_square(50 + i, background, grey=160) for i in range(40)]
    taken = detected(MotionGate(25, 0.001, 100.0), images)
    assert taken[0] == 0 and 1 < len(taken) < 40


def test_a_new_scene_is_detected_at_once() -> None:
    gate = MotionGate(25, 0.001, 100.0)
    assert gate.take(scene(0), 0.0)
    assert not gate.take(scene(0), 0.1)
    assert gate.take(scene(1), 0.2)


def test_a_restarted_stream_is_detected_at_once_whatever_its_pts() -> None:
    gate = MotionGate(25, 0.001, 100.0)
    assert gate.take(scene(), 5.0)
    assert gate.take(scene(), 1.0)  # pts went back: a new stream


class EveryFrame(Sink):
    """Keeps every frame's result, those not detected included."""

    name = "every"
    wants_every_frame = True

    def __init__(self) -> None:
        self.results: list[FrameResult] = []

    def write(self, result: FrameResult) -> None:
        self.results.append(result)

    def close(self) -> None:
        return None


def static_folder(folder: Path, frames: int) -> Path:
    folder.mkdir()
    image = cv2.cvtColor(scene(), cv2.COLOR_RGB2BGR)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:03}.png"), image)
    return folder


@pytest.mark.parametrize("full_rate_video", [True, False])
def test_a_static_camera_skips_detection_publishes_last_boxes_and_counts_the_frames(
    tmp_path: Path, full_rate_video: bool
) -> None:
    folder = static_folder(tmp_path / "frames", 12)
    config = parse_config(
        "cameras:\n"
        f"  - id: cam\n    source: {{type: images, path: {folder}, fps: {FPS}}}\n"
        f"    full_rate_video: {str(full_rate_video).lower()}\n"
        "    motion: {enabled: true, max_skip_s: 0.5}\n"
    )
    gate = make_motion_gate(config.cameras[0])
    assert gate is not None
    # The camera's phase moves its first forced detection earlier; then one every 5 frames.
    first = 5 - int(gate.phase_s * FPS)
    wanted = [0, *range(first, 12, 5)]
    sink = EveryFrame()
    summary = Pipeline(config, detector=EagerDetector(), extra_sinks=[sink]).run()
    stats = summary.cameras["cam"]
    assert summary.ok and (stats.motion_skipped, stats.skipped) == (12 - len(wanted), 0)
    assert [r.frame.index for r in sink.results if r.detected] == wanted
    if not full_rate_video:
        assert len(sink.results) == len(wanted)
        return
    assert len(sink.results) == 12
    for result in sink.results:
        last_detected = max(i for i in wanted if i <= result.frame.index)
        expected = box(Frame("cam", last_detected, 0.0, 0.0, result.frame.image))
        np.testing.assert_array_equal(result.detections.xyxy, expected.xyxy)


def test_motion_gating_is_off_unless_asked(tmp_path: Path) -> None:
    folder = static_folder(tmp_path / "frames", 4)
    config = parse_config(f"cameras:\n  - id: cam\n    source: {{type: images, path: {folder}}}\n")
    assert not config.cameras[0].motion.enabled
    summary = Pipeline(config, detector=EagerDetector()).run()
    assert summary.cameras["cam"].motion_skipped == 0 and summary.cameras["cam"].detections == 4


@pytest.mark.parametrize(
    ("motion", "problem"),
    [
        (
            "{threshold: 0}",
            "cameras[0].motion.threshold (camera cam, line 4): Input should be greater",
        ),
        ("{min_area: 1.5}", "cameras[0].motion.min_area (camera cam, line 4): "),
        ("{max_skip_s: 0}", "cameras[0].motion.max_skip_s (camera cam, line 4): "),
        (
            "{enable: true}",
            "cameras[0].motion.enable (camera cam, line 4): unknown key (did you mean",
        ),
        (
            "{regions: true}",
            "cameras[0].motion (camera cam, line 4): regions: true needs enabled: true",
        ),
        (
            "{enabled: true, regions: true, regions_max_share: 1.5}",
            "cameras[0].motion.regions_max_share (camera cam, line 4): Input should be less",
        ),
    ],
)
def test_bad_motion_settings_are_named_at_their_yaml_path(
    tmp_path: Path, motion: str, problem: str
) -> None:
    folder = static_folder(tmp_path / "frames", 1)
    text = f"cameras:\n  - id: cam\n    source: {{type: images, path: {folder}}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text + f"    motion: {motion}\n", source="cams.yaml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(problem), info.value.problems


REGIONS = RegionRule(min_size=(100, 100), max_share=0.5)


def test_regions_around_a_moving_square_hold_where_it_was_and_where_it_is() -> None:
    rng = np.random.default_rng(3)
    background = scene()
    gate = MotionGate(25, 0.001, 10.0, regions=REGIONS)
    assert gate.choose(noisy(with_square(40, background), rng), 0.0) == ()  # the first: whole
    (region,) = gate.choose(noisy(with_square(60, background), rng), 0.1)  # type: ignore[misc]
    assert region.x <= 40 and region.x + region.width >= 90  # its old and new columns
    assert region.y <= 100 and region.y + region.height >= 130
    assert region.width == region.height >= 100  # the detector's aspect and size
    assert gate.choose(noisy(with_square(60, background), rng), 0.2) is None  # it stopped


def test_with_regions_the_whole_frame_is_still_detected_every_max_skip_s() -> None:
    background = scene()
    gate = MotionGate(25, 0.001, 0.5, regions=REGIONS)
    chosen = [gate.choose(with_square(20 + 8 * i, background), i / FPS) for i in range(11)]
    assert [i for i, c in enumerate(chosen) if c == ()] == [0, 5, 10]
    assert all(c for i, c in enumerate(chosen) if i % 5)  # regions in between


def test_with_regions_slow_change_elsewhere_adds_up_until_it_counts() -> None:
    # A square moving fast on the left is detected in regions; a faint one creeping on the
    # right is compared with the picture as it was when that part was last detected.
    background = np.full((240, 320, 3), 200, np.uint8)
    gate = MotionGate(25, 0.001, 100.0, regions=RegionRule((60, 60), max_share=0.9))
    seen_right = []
    for i in range(30):
        image = with_square(10 + (i % 2) * 20, background)
        image[100:130, 220 + i : 250 + i] = 160
        chosen = gate.choose(image, i / FPS) or ()
        seen_right.append(any(r.x + r.width > 220 for r in chosen))
    assert any(seen_right[1:]) and not all(seen_right[1:])


def moving_square_folder(folder: Path, frames: int) -> Path:
    """A still dark square at the left and one moving right, on a bright picture."""
    folder.mkdir()
    for i in range(frames):
        image = np.full((240, 320, 3), 220, np.uint8)
        image[20:40, 20:40] = 0
        image[150:170, 100 + 10 * i : 120 + 10 * i] = 0
        cv2.imwrite(str(folder / f"{i:03}.png"), image)
    return folder


class Recording(DarkSquares):
    """Records the size of every image it is given."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        self.sizes += [(f.height, f.width) for f in frames]
        return super().detect(frames)


def run_squares(tmp_path: Path, motion: str) -> tuple[list[FrameResult], Recording]:
    folder = moving_square_folder(tmp_path / f"frames-{len(motion)}", 8)
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {{type: images, path: {folder}, fps: {FPS}}}\n"
        f"    motion: {motion}\n"
        "tracker: {t_min: 1}\n"
    )
    sink, detector = EveryFrame(), Recording()
    summary = Pipeline(config, detector=detector, extra_sinks=[sink]).run()
    assert summary.ok
    return sink.results, detector


def test_a_camera_detecting_regions_publishes_the_boxes_whole_frames_give_with_less_work(
    tmp_path: Path,
) -> None:
    whole, whole_detector = run_squares(tmp_path, "{enabled: true, max_skip_s: 100}")
    regions, region_detector = run_squares(
        tmp_path, "{enabled: true, max_skip_s: 100, regions: true}"
    )
    assert [r.frame.index for r in regions] == [r.frame.index for r in whole] == list(range(8))
    for a, b in zip(whole, regions, strict=True):
        order_a, order_b = np.lexsort(a.detections.xyxy.T), np.lexsort(b.detections.xyxy.T)
        np.testing.assert_array_equal(a.detections.xyxy[order_a], b.detections.xyxy[order_b])
        assert len(b.detections) == 2  # the still square kept, the moving one found again
    assert whole_detector.sizes == [(240, 320)] * 8
    assert region_detector.sizes == [(240, 320)] + [(100, 100)] * 7
