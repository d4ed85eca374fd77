"""`Pipeline.run`'s process-wide settings for the libraries it drives."""

from __future__ import annotations

import os

import cv2
import pytest

from pipeline.config import parse_config
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
