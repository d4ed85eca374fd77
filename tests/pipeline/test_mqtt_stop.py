"""The run's stop while the mqtt sink waits for its broker at the start."""

from __future__ import annotations

import signal

import pytest

from pipeline.cli.run import run_exit_status
from pipeline.config import parse_config
from pipeline.runner import Pipeline
from tests.conftest import VideoFactory
from tests.pipeline.stopped_runs import stopped_run
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.mqtt.brokers import WAIT_S, SilentBroker


def test_the_run_s_stop_ends_the_wait_for_a_silent_broker_and_the_run_ends_stopped(
    synthetic_video: VideoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentBroker()  # takes the connection, never answers the login
    clip = synthetic_video("lobby.mp4", frames=4)
    config = parse_config(
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        f"sinks:\n  - {{type: mqtt, url: '{silent.url}', connect_timeout_s: 600}}\n"
    )
    try:
        summary = stopped_run(
            Pipeline(config, detector=EagerDetector()),
            lambda: silent.connected.wait(WAIT_S),
            WAIT_S,  # not connect_timeout_s (600 s)
        )
    finally:
        silent.close()
    assert summary.interrupted and summary.ok
    assert run_exit_status(summary, signal.SIGINT) == 130
    assert "stopped while waiting for the broker" in caplog.text
    (line,) = [o for o in summary.outputs if o.startswith("mqtt ")]
    assert line.endswith("never connected: the run stopped while waiting for the broker")
