"""Building a run from its config: queue policies by source kind, the detector and its log."""

from __future__ import annotations

import logging
import threading

import pytest

from pipeline.build import (
    FILE_QUEUE_SIZE,
    LIVE_QUEUE_SIZE,
    build_run_detector,
    make_queue,
)
from pipeline.config import CameraConfig, DetectorConfig
from pipeline.readers import QueuePolicy
from tests.conftest import VideoFactory


@pytest.mark.parametrize(
    ("live", "policy", "size"),
    [(False, QueuePolicy.BLOCK, FILE_QUEUE_SIZE), (True, QueuePolicy.DROP_OLDEST, LIVE_QUEUE_SIZE)],
)
def test_auto_queue_blocks_for_files_and_drops_the_oldest_frame_for_live_sources(
    synthetic_video: VideoFactory, live: bool, policy: QueuePolicy, size: int
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    camera = CameraConfig.model_validate({"id": "cam", "source": str(clip)})
    queue = make_queue(camera, live, threading.Condition())
    assert (queue.policy, queue.maxsize) == (policy, size)


def test_configured_queue_size_and_policy_win_over_auto(synthetic_video: VideoFactory) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    camera = CameraConfig.model_validate(
        {"id": "cam", "source": str(clip), "queue_size": 7, "queue_policy": "drop_oldest"}
    )
    queue = make_queue(camera, False, threading.Condition())
    assert (queue.policy, queue.maxsize) == (QueuePolicy.DROP_OLDEST, 7)


def test_the_run_detector_is_described_by_the_run_not_logged_again_by_its_builder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The run says it once (a start line, or the log without one): `--log-level info`
    # showed it twice.
    config = DetectorConfig(model="person_ssdlite", weights="none", device="cpu", runtime="torch")
    with caplog.at_level(logging.INFO, logger="pipeline.build"):
        detector = build_run_detector(config)
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.build"] == []
    line = detector.describe()
    assert line.startswith("detector: person_ssdlite on cpu, torch, fp32, 1 worker(s)")
    assert "; precision: fp32: " in line  # an auto choice comes with its reason
    assert detector.runtime == "torch" and detector.precision == "fp32"
