"""End-to-end runs: the options reach the pipeline's detector and sinks, stage timing on
CUDA, failures reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import pytest

from pipeline import cli
from pipeline.bench.end_to_end import DetectorSetup, bench_end_to_end
from tests.conftest import VideoFactory


def end_to_end_report(
    capsys: pytest.CaptureFixture[str], clip: Path, *options: str
) -> dict[str, Any]:
    """The JSON report of one end-to-end run of `clip` on the CPU (no model-only measurement,
    no naive baseline) with `options` added."""
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--skip-model-only", "--skip-naive",
         "--repeat", "1", "--device", "cpu", *options]
    )  # fmt: skip
    assert code == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_video_preset_and_crf_reach_the_video_sink(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=8, size=(160, 120))
    options = ("--batch-size", "4", "--runtime", "torch", "--video-preset", "ultrafast")
    reports = [
        end_to_end_report(capsys, clip, *options, "--video-crf", crf) for crf in ("10", "45")
    ]
    fine, coarse = (r["end_to_end"] for r in reports)
    assert fine["video"] == "libx264 ultrafast crf 10"
    assert coarse["video"] == "libx264 ultrafast crf 45"
    assert coarse["video_kb_per_frame"] < fine["video_kb_per_frame"]
    assert "--video-preset ultrafast --video-crf 45" in reports[1]["command"]


def test_no_video_runs_end_to_end_without_the_video_sink(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(96, 64))
    report = end_to_end_report(
        capsys, clip, "--batch-size", "2", "--runtime", "torch", "--no-video"
    )
    e2e = report["end_to_end"]
    assert e2e["frames"] == 6 and e2e["video"] == "none" and e2e["video_kb_per_frame"] == 0
    assert "sink_video" not in e2e["stages_ms_per_frame"]
    assert e2e["stages_ms_per_frame"]["sink_sql"] > 0
    assert "--no-video" in report["command"]


def test_workers_reach_the_detector(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    report = end_to_end_report(capsys, clip, "--batch-size", "2", "--workers", "2")
    assert report["end_to_end"]["workers"] == 2 and "--workers 2" in report["command"]


def test_no_pipelining_collects_each_batch_before_the_next(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    options = ("--batch-size", "2", "--workers", "2", "--no-video")
    on = end_to_end_report(capsys, clip, *options)
    off = end_to_end_report(capsys, clip, *options, "--no-pipelining")
    assert on["end_to_end"]["pipelined"] and not off["end_to_end"]["pipelined"]
    assert on["end_to_end"]["frames"] == off["end_to_end"]["frames"] == 4
    assert "--no-pipelining" in off["command"] and "--no-pipelining" not in on["command"]


def test_on_cuda_stages_are_timed_in_a_run_of_their_own(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import build

    built: list[object] = []
    real_build = build.build_detector

    def cpu_detector(config):
        detector = real_build(config.model_copy(update={"device": "cpu"}))
        built.append(detector)
        return detector

    monkeypatch.setattr(build, "build_detector", cpu_detector)
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    setup = DetectorSetup("person_ssdlite", "default", "cuda", runtime="torch", batch_size=2)
    result = bench_end_to_end(str(clip), 1, setup, repeat=2)
    assert len(result.runs) == 2 and len(built) == 3  # two counted runs, one timed
    assert [d.stage_times is not None for d in built] == [False, False, True]  # type: ignore[attr-defined]
    assert result.stages_ms_per_frame["detect_forward"] > 0


@pytest.mark.skipif(
    "h264_nvenc" not in av.codecs_available or shutil.which("nvidia-smi") is not None,
    reason="needs FFmpeg with NVENC on a machine without an NVIDIA GPU",
)
def test_a_sink_failing_in_the_end_to_end_run_is_reported_not_raised(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    code = cli.main(
        ["bench", "--clip", str(clip), "--skip-model-only", "--skip-naive", "--repeat", "1",
         "--device", "cpu", "--runtime", "torch", "--video-codec", "h264_nvenc"]
    )  # fmt: skip
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "error: bench run failed: video sink: " in err
    assert "NVENC needs an NVIDIA GPU" in err and "Traceback" not in err
