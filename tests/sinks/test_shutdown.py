"""Stopping a run whose outputs are busy: a second signal exits at once."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import zmq

from tests.conftest import VideoFactory, free_port
from tests.pipeline.cli_runs import run_cli, write_config


def test_second_signal_exits_at_once_while_the_database_is_away(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    video = synthetic_video("long.mp4", frames=1500, size=(160, 120), fps=25)
    port = free_port()
    config = write_config(tmp_path, {"long": video}, port)
    # wait a minute for the database at the end, so that only the second signal ends the run
    config.write_text(config.read_text() + "    close_timeout_s: 60\n")
    context = zmq.Context()
    events = context.socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"")
    events.connect(f"tcp://127.0.0.1:{port}")
    proc = run_cli(config)
    try:
        assert events.poll(120_000), "no event arrived"  # frames are flowing
    finally:
        events.close(linger=0)
        context.term()
    locker = sqlite3.connect(tmp_path / "det.db", isolation_level=None, timeout=30)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # the database goes away for the writer
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended although its rows could not be written"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        locker.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: stopping" in err and "forced exit" in err
