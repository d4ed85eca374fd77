"""The vtest zones benchmark's core on synthetic detections: leave_frames splits a visit."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.vtest_zones import Detected, main, picture, scene_camera, stub, zone_counts
from pipeline.config import parse_config
from pipeline.types import Detections, Frame, LabelMap

CONFIG = """
cameras:
  - id: cam
    source: clip.mp4
    zones:
      - id: left
        polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
detector:
  model: person_ssdlite
"""


def person_missed_on(missed: range, frames: int = 24) -> Detected:
    """One person standing in the left half of a 100x100 picture, not detected on `missed`."""
    image = np.zeros((100, 100, 3), np.uint8)
    box = Detections(
        xyxy=np.array([[10, 40, 30, 80]], np.float32),
        score=np.array([0.9], np.float32),
        label=np.array([1], np.int64),
    )
    found = [Detections.empty() if i in missed else box for i in range(frames)]
    shown = [Frame("cam", i, i / 10, i / 10, stub(image)) for i in range(frames)]
    return Detected(shown, found, LabelMap(("background", "person")), 0)


def test_a_gap_of_four_frames_splits_the_visit_with_3_and_not_with_5() -> None:
    config = parse_config(CONFIG, check_sources=False)
    camera = scene_camera(config)
    detected = person_missed_on(range(10, 14))
    short = zone_counts(config, camera, detected, 3, [12, 20])["left"]
    default = zone_counts(config, camera, detected, 5, [12, 20])["left"]
    assert (short.visits, default.visits) == (2, 1)
    assert len(short.tracks) == len(default.tracks) == 1  # the same track, twice
    assert short.inside_at == {12: 0, 20: 1}  # left during the gap, entered again
    assert default.inside_at == {12: 1, 20: 1}


def test_the_picture_is_the_frame_with_its_zone_drawn() -> None:
    config = parse_config(CONFIG, check_sources=False)
    camera = scene_camera(config)
    image = np.zeros((100, 100, 3), np.uint8)
    drawn = picture(config, camera, person_missed_on(range(0)), 5, image)
    assert drawn.shape == image.shape
    assert drawn[:, 50].any()  # the zone's right edge, at half the width


def test_a_picture_without_a_file_to_write_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--picture", "289"])
    assert "--picture and --out go together" in capsys.readouterr().err
