"""The overhead benchmark runs the real pipeline with a free detector and counts every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import overhead
from pipeline.types import Frame


def test_the_benchmark_runs_each_sink_set_and_prints_its_frames_s_and_cpu_ms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    overhead.main(["--cameras", "2", "--frames", "6", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert "2 cameras x 6 frames of 160x96, 4 boxes a frame" in lines[1]
    rows = [line.split("  runs: ")[0] for line in lines[3:]]
    assert [row[:18].strip() for row in rows] == [
        sinks for sinks in ("no sink", "ZeroMQ", "ZeroMQ + SQLite") for _ in range(2)
    ]
    assert [row[19:34].strip() for row in rows[:2]] == ["frames/s", "CPU-ms a frame"]
    assert all(float(row.split()[-1]) > 0 for row in rows)


def test_a_round_gives_each_sink_set_s_figures(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    overhead.write_clip(clip, 4)
    figures = overhead.one_round(str(clip), 1, 2, ["no sink"])
    assert list(figures) == ["no sink"]
    assert figures["no sink"]["fps"] > 0 and figures["no sink"]["cpu_ms"] > 0


def test_the_free_detector_finds_its_boxes_inside_every_frame() -> None:
    detector = overhead.InstantDetector(boxes=4)
    for index in (0, 49, 150):
        frame = Frame("cam", index, 0.0, 0.0, np.zeros((96, 160, 3), np.uint8))
        (found,) = detector.detect([frame])
        assert len(found) == 4
        assert (found.xyxy[:, 2] <= 160).all() and (found.xyxy[:, 3] <= 96).all()


def test_the_free_detector_s_boxes_move_with_the_frame_and_come_back_every_50_frames() -> None:
    detector = overhead.InstantDetector(boxes=2)
    image = np.zeros((96, 160, 3), np.uint8)
    first, moved, again = detector.detect([Frame("cam", i, 0.0, 0.0, image) for i in (0, 1, 50)])
    np.testing.assert_array_equal(moved.xyxy[:, 0], first.xyxy[:, 0] + 1)
    np.testing.assert_array_equal(again.xyxy, first.xyxy)
    assert again is not first
