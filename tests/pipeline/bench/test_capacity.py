"""`bench --capacity`: the search stops at the largest number of cameras held, a trial
holds only without drops, at pace and under the latency limit, latencies are measured
from capture to the sink, and a trial runs the real pipeline on real-time looped cameras."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from pipeline import build, cli
from pipeline.bench import cli as bench_cli
from pipeline.bench.capacity import (
    LATENCY_LIMIT_S,
    OVERLOAD,
    PACE_TOLERANCE,
    CapacityResult,
    CapacityRun,
    LatencySink,
    Trial,
    find_capacity,
    format_capacity,
    percentile_ms,
)
from pipeline.bench.end_to_end import DetectorSetup
from pipeline.config.cameras import MotionConfig
from pipeline.types import Detections, Frame, FrameResult, StreamInfo
from tests.clock import Clock
from tests.conftest import VideoFactory
from tests.pipeline.test_pipelining import EagerDetector

LIMIT_MS = LATENCY_LIMIT_S * 1000


def trial(
    cameras: int, *, dropped: int = 0, p99_ms: float = 10.0, frames: int | None = None
) -> Trial:
    """A trial of 10 s at 10 fps per camera; every frame reached the sinks unless `frames`."""
    made = cameras * 100 if frames is None else frames
    return Trial(cameras, 10.0, 10.0, made, dropped, p99_ms / 2, p99_ms)


class ModelledPipeline:
    """Trials of a pipeline whose detector keeps up with `keeps_up` cameras: beyond, frames
    are dropped and latency exceeds the limit. Records the cameras of every trial."""

    def __init__(self, keeps_up: int) -> None:
        self.keeps_up = keeps_up
        self.asked: list[int] = []

    def __call__(self, cameras: int) -> Trial:
        self.asked.append(cameras)
        if cameras <= self.keeps_up:
            return trial(cameras)
        return trial(cameras, dropped=cameras - self.keeps_up, p99_ms=LIMIT_MS * 2)


@pytest.mark.parametrize("keeps_up", [0, 1, 2, 3, 5, 7, 8, 13, 63, 64])
def test_the_search_stops_at_the_most_cameras_held(keeps_up: int) -> None:
    model = ModelledPipeline(keeps_up)
    result = find_capacity(model, max_cameras=64)
    assert result.capacity == keeps_up
    assert [t.cameras for t in result.trials] == model.asked[:-1]
    assert all(t.held == (t.cameras <= keeps_up) for t in result.trials)
    assert result.overload is not None
    assert result.overload.cameras == model.asked[-1] == OVERLOAD * max(keeps_up, 1)


def test_the_search_doubles_then_bisects() -> None:
    model = ModelledPipeline(5)
    find_capacity(model, max_cameras=64)
    assert model.asked == [1, 2, 4, 8, 6, 5, 10]


def test_the_search_stops_at_the_most_cameras_it_may_try() -> None:
    model = ModelledPipeline(1000)
    result = find_capacity(model, max_cameras=6)
    assert model.asked == [1, 2, 4, 6, 12]
    assert result.capacity == 6
    assert "the most tried" in "\n".join(format_capacity(result))


def test_a_trial_holds_only_without_drops_at_pace_and_under_the_latency_limit() -> None:
    assert trial(4).held
    assert not trial(4, dropped=1).held
    assert not trial(4, p99_ms=LIMIT_MS).held
    assert trial(4, p99_ms=LIMIT_MS - 1).held
    assert not trial(4, p99_ms=math.nan).held  # no frame measured
    made = 4 * 100
    assert trial(4, frames=math.ceil(PACE_TOLERANCE * made)).held
    assert not trial(4, frames=math.ceil(PACE_TOLERANCE * made) - 1).held


def test_frames_motion_gating_left_out_count_towards_the_pace() -> None:
    made = 4 * 100
    short = math.ceil(PACE_TOLERANCE * made) - 1
    assert not trial(4, frames=short).held
    held = Trial(4, 10.0, 10.0, short, 0, 5.0, 10.0, skipped=1)
    assert held.held
    assert "1 not detected (no motion)" in format_capacity(find_capacity(lambda n: held, 1))[1]


def frame(wall_time: float) -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    return FrameResult(Frame("cam", 0, 0.0, wall_time, image), Detections.empty())


def test_latency_runs_from_capture_to_the_sink_after_the_warm_up() -> None:
    clock = Clock(1000.0)
    started: list[float] = []
    sink = LatencySink(warmup_s=2.0, clock=clock, on_reading=lambda: started.append(1))
    sink.write(frame(999.0))  # before any stream started: not measured
    sink.start(StreamInfo("cam", 4, 4, Fraction(10), "clip"))
    sink.start(StreamInfo("cam2", 4, 4, Fraction(10), "clip"))
    assert started == [1]  # once, at the first stream's start
    clock.now = 1001.5
    sink.write(frame(1001.0))  # captured within the warm-up: not measured
    latencies_ms = [3.0, 250.0, 40.0, 7.5]
    for i, ms in enumerate(latencies_ms):
        captured = 1002.0 + i
        clock.now = captured + ms / 1000
        sink.write(frame(captured))
    assert sink.frames == 6
    assert sink.latencies_s == pytest.approx([ms / 1000 for ms in latencies_ms])
    assert percentile_ms(sink.latencies_s, 50) == pytest.approx(np.median(latencies_ms))
    # linear interpolation: rank 0.99 * 3 = 2.97 between 40 and 250
    assert percentile_ms(sink.latencies_s, 99) == pytest.approx(40 + 0.97 * 210)
    assert math.isnan(percentile_ms([], 99))


class SlowDetector(EagerDetector):
    """Takes half a second a frame: slower than one camera's 10 frames/s."""

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        time.sleep(0.5 * len(frames))
        return super().detect(frames)


def run_trial(clip: str, detector: EagerDetector, motion: MotionConfig | None = None) -> Trial:
    setup = DetectorSetup("person_ssdlite", "default", "cpu")
    return CapacityRun(clip, setup, detector, None, seconds=2.0, fps=10.0, motion=motion)(1)


def test_bench_capacity_runs_trials_of_cameras_paced_in_real_time(
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(build, "build_run_detector", lambda config, announce: EagerDetector())
    clip = synthetic_video("clip.mp4", frames=5, size=(64, 48), fps=10)  # looped
    code = cli.main(
        ["bench", "--capacity", "--json", "--clip", str(clip), "--capacity-max", "1",
         "--trial-seconds", "2", "--device", "cpu", "--no-video"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert "--capacity --capacity-max 1 --trial-seconds 2" in report["command"]
    assert report["fps"] == 10 and report["max_cameras"] == 1
    (first,) = report["trials"]
    assert report["capacity"] == (1 if first["held"] else 0)
    assert report["overload"]["held"] in (True, False)
    assert report["overload"]["cameras"] == OVERLOAD
    for result in (first, report["overload"]):
        # Paced at 10 fps, looping a 5-frame clip: more than 5 frames a camera, and never
        # more than the clock allows.
        cameras, seconds = result["cameras"], result["seconds"]
        assert 5 * cameras < result["frames"] <= cameras * (10 * seconds + 1)
        assert 0 <= result["latency_p50_ms"] <= result["latency_p99_ms"]


def test_a_detector_slower_than_the_camera_drops_frames_and_is_not_held(
    synthetic_video: VideoFactory,
) -> None:
    clip = str(synthetic_video("clip.mp4", frames=5, size=(64, 48), fps=10))
    result = run_trial(clip, SlowDetector())
    assert result.dropped > 0
    assert not result.held


def test_motion_gating_lets_a_slow_detector_keep_up_with_a_still_camera(
    synthetic_video: VideoFactory,
) -> None:
    # One frame looped: nothing moves, so one frame a second is detected (0.5 s each).
    clip = str(synthetic_video("still.mp4", frames=1, size=(64, 48), fps=10))
    result = run_trial(
        clip, SlowDetector(), MotionConfig.model_validate({"enabled": True, "max_skip_s": 1.0})
    )
    assert result.dropped == 0
    assert result.skipped > result.frames > 0
    assert result.paced


@pytest.mark.parametrize(
    ("flags", "enabled", "regions"),
    [([], None, None), (["--motion"], True, False), (["--motion-regions"], True, True)],
)
def test_bench_capacity_motion_runs_its_trials_with_motion_gating_on(
    synthetic_video: VideoFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    enabled: bool | None,
    regions: bool | None,
) -> None:
    runs: list[CapacityRun] = []

    def recorded(*args: Any, **kwargs: Any) -> CapacityRun:
        runs.append(CapacityRun(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(build, "build_run_detector", lambda config, announce: EagerDetector())
    monkeypatch.setattr(bench_cli, "CapacityRun", recorded)
    monkeypatch.setattr(bench_cli, "find_capacity", lambda trial, most: CapacityResult(0, most))
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48), fps=10)
    code = cli.main(
        ["bench", "--capacity", "--clip", str(clip), "--capacity-max", "1", "--device", "cpu",
         "--no-video", *flags]
    )  # fmt: skip
    assert code == 0
    (run,) = runs
    assert (run.motion.enabled if run.motion is not None else None) == enabled
    assert (run.motion.regions if run.motion is not None else None) == regions
