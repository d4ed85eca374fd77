"""Building a run from its config: queue policies by source kind, the detector and its log."""

from __future__ import annotations

import logging
import threading

import pytest

from detector import Detector
from pipeline.build import (
    FILE_QUEUE_SIZE,
    LIVE_QUEUE_SIZE,
    build_detector,
    build_run_detector,
    make_queue,
    stream_scene,
    torch_cpu_threads,
)
from pipeline.config import AnalyticsConfig, CameraConfig, DetectorConfig
from pipeline.config.cameras import QUEUE_MB
from pipeline.frame_queue import QueuePolicy
from pipeline.types import LineShape, ZoneShape
from tests.conftest import VideoFactory
from tests.cores import pin_cores


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


def test_a_cameras_queue_is_bounded_by_its_queue_mb_in_decimal_bytes(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    default = CameraConfig.model_validate({"id": "cam", "source": str(clip)})
    assert make_queue(default, False, threading.Condition()).max_bytes == QUEUE_MB * 1_000_000
    camera = default.model_copy(update={"queue_mb": 2.5})
    assert make_queue(camera, True, threading.Condition()).max_bytes == 2_500_000


def test_the_run_detector_is_described_by_the_run_not_logged_again_by_its_builder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The run says it once (a start line, or the log without one): `--log-level info`
    # showed it twice.
    config = DetectorConfig(model="person_ssdlite", weights="none", device="cpu", runtime="torch")
    with caplog.at_level(logging.INFO, logger="pipeline.build"):
        detector = build_run_detector(config)
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.build"] == []
    assert isinstance(detector, Detector)  # runtime torch: never the cached ONNX one
    line = detector.describe()
    assert line.startswith("detector: person_ssdlite on cpu, torch, fp32, 1 worker(s)")
    assert "; precision: fp32: " in line  # an auto choice comes with its reason
    assert detector.runtime == "torch" and detector.precision == "fp32"


def test_a_streams_scene_is_its_zones_and_lines_in_pixels_with_the_rules_anchor(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    camera = CameraConfig.model_validate(
        {
            "id": "cam",
            "source": str(clip),
            "zones": [{"id": "z", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1]]}],
            "lines": [
                {
                    "id": "l",
                    "points": [[10, 20], [30, 20]],
                    "units": "pixel",
                    "directions": {"left_to_right": "in", "right_to_left": "out"},
                },
            ],
        }
    )
    scene = stream_scene(camera, AnalyticsConfig(anchor="center"), 640, 480)
    assert scene.zones == (ZoneShape("z", ((320.0, 240.0), (640.0, 240.0), (640.0, 480.0))),)
    assert scene.lines == (LineShape("l", (10.0, 20.0), (30.0, 20.0), "in", "out"),)
    assert scene.anchor == (0.5, 0.5)


def test_a_detector_built_for_a_run_is_warmed_up_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from detector.options import DetectorOptions

    warmed: list[int] = []
    said: list[str] = []
    monkeypatch.setattr(DetectorOptions, "warm_up_batches", lambda self: [1, 2])
    monkeypatch.setattr(
        Detector, "warm_up", lambda self: warmed.extend(self.options.warm_up_batches())
    )
    config = DetectorConfig.model_validate({"runtime": "torch", "precision": "fp32"})
    build_detector(config, said.append).close()
    assert warmed == [1, 2]
    assert [line for line in said if "each size a run uses (1, 2)" in line] != []


def test_a_cpu_detector_built_for_a_run_is_not_warmed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Detector, "warm_up", lambda self: pytest.fail("warmed up on the CPU"))
    said: list[str] = []
    config = DetectorConfig.model_validate({"runtime": "torch", "precision": "fp32"})
    build_detector(config, said.append).close()
    assert not any("each size a run uses" in line for line in said)


@pytest.mark.parametrize(("sharing", "threads"), [(1, 7), (2, 3), (4, 1), (8, 1)])
def test_torch_s_cpu_threads_leave_a_core_of_the_process_s_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch, sharing: int, threads: int
) -> None:
    pin_cores(monkeypatch, 8)  # `sharing` shards of a cluster on one machine, given 8 cores
    assert torch_cpu_threads(sharing) == threads


def test_a_run_detector_built_for_one_of_two_processes_sets_torch_s_threads_for_its_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    pin_cores(monkeypatch, 8)
    config = DetectorConfig(model="person_ssdlite", weights="none", device="cpu", runtime="torch")
    before = torch.get_num_threads()
    try:
        detector = build_run_detector(config, None, sharing=2)
        assert detector.options.sharing == 2
        assert torch.get_num_threads() == 3  # 4 cores of its own, one left to the pipeline
    finally:
        torch.set_num_threads(before)
