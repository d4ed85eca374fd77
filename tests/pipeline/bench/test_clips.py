"""Clip helpers: `--scale` re-encodes the clip that the end-to-end and naive runs read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.bench.clips import decode_ms_per_frame, frame_size, scaled_clip
from tests.conftest import VideoFactory


def test_scale_reencodes_the_clip_for_the_end_to_end_and_naive_runs(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(160, 120))
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--scale", "96x64", "--skip-model-only",
         "--repeat", "1", "--batch-size", "2", "--device", "cpu", "--runtime", "torch"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    e2e = report["end_to_end"]
    assert e2e["frame_size"] == "96x64" and e2e["frames"] == 6
    assert report["naive"]["frames"] == 6
    assert "--scale 96x64" in report["command"]


def test_scaled_clip_keeps_only_the_first_frames_asked_for(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(160, 120))
    short = scaled_clip(str(clip), (96, 64), tmp_path, max_frames=3)
    assert frame_size(short) == "96x64"
    assert decode_ms_per_frame(short)[1] == 3
