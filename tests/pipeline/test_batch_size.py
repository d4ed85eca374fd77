"""The batcher's batch size: the detector's own under `batch_size: auto`, the config's
where it names one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pipeline.config import parse_config
from pipeline.runner import Pipeline
from pipeline.types import Detections, Frame
from tests.conftest import VideoFactory
from tests.pipeline.test_pipelining import EagerDetector


class SizedDetector(EagerDetector):
    """Settles on `settled` frames per batch and records the size of every batch."""

    def __init__(self, settled: int) -> None:
        super().__init__()
        self.settled = settled
        self.batches: list[int] = []

    @property
    def batch_size(self) -> int:
        return self.settled

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        self.batches.append(len(frames))
        return super().detect(frames)


@pytest.mark.parametrize(("asked", "expected"), [("auto", [3, 3, 1]), ("2", [2, 2, 2, 1])])
def test_batches_take_the_detector_s_size_under_auto_and_the_config_s_otherwise(
    synthetic_video: VideoFactory, asked: str, expected: list[int]
) -> None:
    clip = synthetic_video("clip.mp4", frames=7, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        f"detector: {{batch_size: {asked}, max_wait_ms: 10000}}\n"  # batches fill up
    )
    detector = SizedDetector(settled=3)
    summary = Pipeline(config, detector=detector).run()
    assert summary.ok and summary.frames == 7
    assert detector.batches == expected
