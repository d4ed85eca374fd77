"""A camera's status in the summary and whether the run is ok: they agree for every state a
camera can end in, and a camera that never delivered a frame is never ok."""

from __future__ import annotations

import io

import pytest

from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK
from pipeline.cli.run import run_exit_status
from pipeline.progress import Progress
from pipeline.summary import CameraStats, RunSummary

LOST = "cannot open rtsp://127.0.0.1:9/stream: Connection refused"

SHORT = "600 of the 800 frames clip.mp4 declares never came"

STATES = {
    "never connected": CameraStats("gate", "rtsp://x/1", live=True, reconnects=5, lost=LOST),
    "connected, no frame": CameraStats("gate", "rtsp://x/1", live=True, opened=True),
    "connected then lost": CameraStats(
        "gate", "rtsp://x/1", live=True, opened=True, frames=40, reconnects=3, lost=LOST
    ),
    "file stopped before it opened": CameraStats("lobby", "clip.mp4"),
    "file of undecodable frames": CameraStats("lobby", "clip.mp4", opened=True, decode_errors=7),
    "failed": CameraStats("gate", "rtsp://x/1", live=True, frames=9, error="camera gate: gave up"),
    "ended normally": CameraStats("lobby", "clip.mp4", opened=True, frames=200),
    "file cut short": CameraStats("lobby", "clip.mp4", opened=True, frames=200, short=SHORT),
}
FAILING = {
    "never connected",
    "connected, no frame",
    "file stopped before it opened",
    "file of undecodable frames",
    "failed",
}


def summary_line(stats: CameraStats) -> str:
    out = io.StringIO()
    Progress([stats.camera_id], enabled=False).print_summary(
        RunSummary(cameras={stats.camera_id: stats}, elapsed_s=4.0), out
    )
    (line,) = [row for row in out.getvalue().splitlines() if row.startswith(stats.camera_id)]
    return line


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("stop_signal", [None, 2, 15], ids=["ended", "SIGINT", "SIGTERM"])
def test_the_summary_line_and_the_exit_status_agree_for_every_camera_state(
    state: str, stop_signal: int | None
) -> None:
    stats = STATES[state]
    summary = RunSummary(
        cameras={stats.camera_id: stats}, elapsed_s=4.0, interrupted=stop_signal is not None
    )
    status = summary_line(stats).split(maxsplit=5)[5]
    code = run_exit_status(summary, stop_signal)
    if state in FAILING:
        assert not summary.ok and code == EXIT_FAILED
        assert status.startswith("FAILED: "), status
    else:
        assert summary.ok and code == (EXIT_OK if stop_signal is None else 128 + stop_signal)
        assert status.startswith("ok"), status


def test_a_camera_that_never_connected_says_why_it_could_not() -> None:
    line = summary_line(STATES["never connected"])
    assert line.endswith(f"FAILED: camera gate: never connected: {LOST} (5 retries)")


def test_a_camera_lost_before_the_end_says_so_after_its_frames() -> None:
    line = summary_line(STATES["connected then lost"])
    assert line.endswith(f"ok until lost: {LOST} (3 reconnections)")


def test_a_file_that_ended_short_of_the_frames_it_declares_says_so_and_did_not_fail() -> None:
    line = summary_line(STATES["file cut short"])
    assert line.endswith(f"ok, cut short: {SHORT}")


def test_one_camera_without_a_frame_makes_the_whole_run_not_ok() -> None:
    good, dead = STATES["ended normally"], STATES["never connected"]
    summary = RunSummary(cameras={"lobby": good, "gate": dead}, elapsed_s=4.0, interrupted=True)
    assert not summary.ok
    assert run_exit_status(summary, 2) == EXIT_FAILED
