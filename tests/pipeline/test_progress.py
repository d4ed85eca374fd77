"""The closing summary `run` prints."""

from __future__ import annotations

import io

from pipeline.progress import Progress
from pipeline.summary import CameraStats, RunSummary


def summary_text(setup_s: float) -> str:
    stats = CameraStats("lobby", "samples/pedestrians.mp4")
    stats.frames, stats.detections, stats.tracks = 200, 732, 37
    out = io.StringIO()
    Progress(["lobby"], enabled=False).print_summary(
        RunSummary(cameras={"lobby": stats}, elapsed_s=4.0, setup_s=setup_s), out
    )
    return out.getvalue()


def test_summary_gives_frames_per_second_of_reading_and_setup_time_apart() -> None:
    text = summary_text(setup_s=15.2)
    assert "lobby   200     50.0  732         37      ok" in text
    assert "200 frames in 4.0 s (50.0 frames/s), after 15.2 s of set-up" in text


def test_summary_leaves_out_a_setup_too_short_to_matter() -> None:
    text = summary_text(setup_s=0.4)
    assert "200 frames in 4.0 s (50.0 frames/s)\n" in text and "set-up" not in text
