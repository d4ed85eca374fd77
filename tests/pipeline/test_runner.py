"""`Pipeline.run`'s process-wide settings for the libraries it drives."""

from __future__ import annotations

import os
import time

import cv2
import pytest

from pipeline import runner
from pipeline.config import DetectorConfig, parse_config
from pipeline.runner import Pipeline
from tests.conftest import VideoFactory
from tests.pipeline.test_pipelining import EagerDetector


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (8, 3)])
def test_opencv_keeps_to_the_calling_thread_on_machines_of_two_cores(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    # OpenCV's pool spins after every call; on 2 cores that takes the CPU detection needs.
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    before = cv2.getNumThreads()
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    cv2.setNumThreads(3)
    try:
        summary = Pipeline(config, detector=EagerDetector()).run()  # type: ignore[arg-type]
        assert summary.ok and summary.frames == 3
        assert cv2.getNumThreads() == expected
    finally:
        cv2.setNumThreads(before)


def test_elapsed_time_starts_when_reading_does_and_setup_is_counted_apart(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first run exports and quantizes the network before reading: that is not frames/s.
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")

    def slow_build(config: DetectorConfig) -> EagerDetector:
        time.sleep(1.0)
        return EagerDetector()

    monkeypatch.setattr(runner, "build_run_detector", slow_build)
    started = time.monotonic()
    summary = Pipeline(config).run()
    wall = time.monotonic() - started
    assert summary.ok and summary.frames == 3
    assert summary.setup_s >= 1.0
    assert summary.elapsed_s <= wall - 1.0


def test_run_says_what_runs_the_detector_at_start_and_in_the_summary(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        "detector:\n  model: person_ssdlite\n  weights: none\n  device: cpu\n  runtime: torch\n"
    )
    started: list[str] = []
    summary = Pipeline(config).run(on_start=started.append)
    assert summary.ok and summary.frames == 2
    assert started == [summary.detector]
    assert summary.detector.startswith("detector: person_ssdlite on cpu, torch, fp32, 1 worker(s)")
    assert "; precision: fp32: " in summary.detector  # an auto choice comes with its reason


def test_a_camera_whose_source_opened_is_marked_opened(synthetic_video: VideoFactory) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    summary = Pipeline(config, detector=EagerDetector()).run()  # type: ignore[arg-type]
    assert summary.cameras["cam"].opened
