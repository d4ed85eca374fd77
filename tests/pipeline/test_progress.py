"""The closing summary `run` prints."""

from __future__ import annotations

import io

import pytest

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


def summary_of(stats: CameraStats, **kwargs: object) -> str:
    out = io.StringIO()
    Progress([stats.camera_id], enabled=False).print_summary(
        RunSummary(cameras={stats.camera_id: stats}, elapsed_s=4.0, **kwargs),  # type: ignore[arg-type]
        out,
    )
    return out.getvalue()


def test_a_camera_that_never_connected_is_not_called_ok() -> None:
    gate = CameraStats("gate", "rtsp://192.0.2.10/stream1", live=True, reconnects=4)
    text = summary_of(gate)
    assert "FAILED: camera gate: never connected (4 retries)" in text
    assert " ok" not in text


def test_a_camera_that_opened_but_delivered_no_frame_says_so() -> None:
    gate = CameraStats("gate", "rtsp://192.0.2.10/stream1", live=True, reconnects=2, opened=True)
    assert "FAILED: camera gate: connected, but delivered no frames (2 retries)" in summary_of(gate)


def test_a_camera_that_delivered_frames_and_reconnected_is_ok_with_its_reconnections() -> None:
    gate = CameraStats("gate", "rtsp://192.0.2.10/stream1", frames=9, reconnects=1, opened=True)
    assert "ok (1 reconnections)" in summary_of(gate)


def test_frames_left_out_by_sampling_and_by_motion_gating_are_counted_apart() -> None:
    lobby = CameraStats("lobby", "lobby.mp4", frames=20, opened=True, skipped=3, motion_skipped=7)
    text = summary_of(lobby)
    assert "3 frames not detected (max_fps/detect_every)" in text
    assert "7 frames not detected (no motion)" in text


def test_a_failed_camera_says_why_whatever_it_delivered() -> None:
    gate = CameraStats("gate", "x.mp4", error="camera gate: x.mp4: no such file")
    assert "FAILED: camera gate: x.mp4: no such file" in summary_of(gate)


def test_summary_says_what_ran_the_detector_in_one_line() -> None:
    line = "detector: person_ssdlite on cpu, onnxruntime, int8, 1 worker(s); device: cpu: why"
    text = summary_of(CameraStats("lobby", "clip.mp4", frames=3, opened=True), detector=line)
    assert f"\n{line}\n" in text


def test_an_outputs_detail_lines_stand_under_its_line_indented() -> None:
    video = "video out/video: 2 file(s)\nlobby_1.mp4: 10 frames, cut short\nlobby_2.mp4: 5 frames"
    stats = CameraStats("lobby", "clip.mp4", frames=15, opened=True)
    text = summary_of(stats, outputs=[video, "sql sqlite:///d.db: 15 detections"])
    assert text.endswith(
        "  -> video out/video: 2 file(s)\n"
        "       lobby_1.mp4: 10 frames, cut short\n"
        "       lobby_2.mp4: 5 frames\n"
        "  -> sql sqlite:///d.db: 15 detections\n"
    )


def test_start_line_goes_to_stderr_even_without_progress_bars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Progress(["lobby"], enabled=False).started("detector: person_ssdlite on cpu")
    captured = capsys.readouterr()
    assert captured.err == "detector: person_ssdlite on cpu\n" and captured.out == ""


def test_start_lines_never_show_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    Progress(["gate"], enabled=False).started("live view: http://admin:hunter2@127.0.0.1:8080/")
    assert capsys.readouterr().err == "live view: http://admin:***@127.0.0.1:8080/\n"


def test_a_camera_added_while_running_gets_a_bar_below_the_others() -> None:
    progress = Progress(["lobby"], enabled=True)
    try:
        for camera in ("lobby", "added"):
            stats = CameraStats(camera, f"{camera}.mp4", total_frames=10)
            stats.frames = 4
            progress.update(stats)
        assert list(progress._bars) == ["lobby", "added"]  # a camera it was not told of
    finally:
        progress.close()
