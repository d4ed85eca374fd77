"""`run`'s exit status tells a run where a camera did nothing from one that did its job."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import VideoFactory, free_port
from tests.pipeline.cli_runs import ROOT
from tests.pipeline.without_detector import DETECTOR_BUILT


def test_a_live_camera_that_never_connected_fails_a_run_stopped_by_ctrl_c(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    # Reconnecting for ever, it never gives up: only the stop ends it, with no frame at all.
    port = free_port()
    config = tmp_path / "cams.yaml"
    config.write_text(
        "cameras:\n"
        f"  - id: lobby\n    source: {synthetic_video('lobby.mp4', frames=4, size=(64, 48))}\n"
        f"  - id: gate\n    source: rtsp://127.0.0.1:{port}/stream\n"
        "    reconnect: {initial_delay_s: 0.05, max_delay_s: 0.1, max_attempts: 0}\n"
        "detector:\n  model: person_ssdlite\n  weights: none\n  device: cpu\n  runtime: torch\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--log-level", "info", "run", str(config), "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    said: list[str] = []
    waiting_for = ["camera lobby stopped", "camera gate reconnecting"]  # the file is done
    while not all(any(what in line for line in said) for what in waiting_for):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(said)
        said.append(proc.stderr.readline())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, "".join(said) + err
    (gate,) = [line for line in out.splitlines() if line.startswith("gate ")]
    assert gate.split()[1] == "0"
    assert (
        f"FAILED: camera gate: never connected: cannot open rtsp://127.0.0.1:{port}/stream" in gate
    ), out
    (lobby,) = [line for line in out.splitlines() if line.startswith("lobby ")]
    assert lobby.split()[1] == "4" and lobby.endswith("ok"), out
    assert "interrupted" in out


def test_a_run_whose_only_camera_names_a_missing_file_fails_at_once_before_the_detector(
    tmp_path: Path,
) -> None:
    # A first run's ONNX export and calibration take many seconds: not before this is said.
    config = tmp_path / "cams.yaml"
    missing = tmp_path / "missing.mp4"
    config.write_text(f"cameras:\n  - id: cam\n    source: {missing}\n")
    done = subprocess.run(
        [sys.executable, "-m", "tests.pipeline.without_detector", "run", str(config), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    error = f"camera cam: file not found: '{missing}'"
    assert DETECTOR_BUILT not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr
    (said,) = done.stderr.splitlines()
    assert " ERROR " in said and said.endswith(f": {error}"), said
    (cam,) = [line for line in done.stdout.splitlines() if line.startswith("cam ")]
    assert cam.split()[1] == "0" and cam.endswith(f"FAILED: {error}"), done.stdout
