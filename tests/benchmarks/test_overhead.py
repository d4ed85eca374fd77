"""The overhead benchmark runs the real pipeline with a free detector and counts every frame."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import overhead
from pipeline.types import Frame


def test_the_benchmark_runs_each_sink_set_and_prints_a_row_for_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    overhead.main(["--cameras", "2", "--frames", "6", "--repeat", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert "2 cameras x 6 frames of 160x96, 4 boxes a frame" in lines[1]
    assert [line[:18].strip() for line in lines[3:]] == ["no sink", "ZeroMQ", "ZeroMQ + SQLite"]
    assert all(float(line.split()[-1]) > 0 for line in lines[3:])  # CPU-ms a frame


def test_the_free_detector_finds_its_boxes_inside_every_frame() -> None:
    detector = overhead.InstantDetector(boxes=4)
    for index in (0, 49, 150):
        frame = Frame("cam", index, 0.0, 0.0, np.zeros((96, 160, 3), np.uint8))
        (found,) = detector.detect([frame])
        assert len(found) == 4
        assert (found.xyxy[:, 2] <= 160).all() and (found.xyxy[:, 3] <= 96).all()
