"""The frame memory benchmark runs the real pipeline on 1080p frames in a fresh process and
prints a row for each figure."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import frame_memory


def test_the_benchmark_prints_every_figure_of_a_round_at_1080p(
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame_memory.main(["--cameras", "1", "--frames", "3", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert "1 cameras x 3 frames of 1920x1080 H.264" in lines[1]
    rows = {label: line for line in lines[3:] for _, label in frame_memory.ROWS if label in line}
    assert list(rows) == [label for _, label in frame_memory.ROWS]
    assert float(rows["frames/s"].split()[1]) > 0
    assert float(rows["peak MB"].split()[2]) > 0


def test_the_free_detector_s_frames_are_resized_as_a_network_s_input() -> None:
    detector = frame_memory.ResizingDetector(boxes=4)
    image = np.zeros((1080, 1920, 3), np.uint8)
    assert detector.model_image(image).shape == (*frame_memory.MODEL_SIZE, 3)
