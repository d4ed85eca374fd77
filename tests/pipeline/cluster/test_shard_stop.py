"""A shard's stop while its `mqtt` sink waits at the start for a broker that takes the
connection and never answers, without Ray: the `Shard` class in this process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import pipeline.build
from pipeline.cluster.shard import Shard
from pipeline.config import DetectorConfig, PipelineConfig, parse_config
from pipeline.summary import RunSummary
from tests.conftest import free_port, write_video
from tests.pipeline.cluster.test_shard import OneBox
from tests.sinks.mqtt.brokers import WAIT_S, SilentBroker
from tests.sinks.sql.silent_postgres import SilentPostgres


@pytest.fixture(autouse=True)
def one_box(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(config: DetectorConfig, announce: Any = None, sharing: int = 1) -> OneBox:
        return OneBox()

    monkeypatch.setattr(pipeline.build, "build_run_detector", build)


def ray_config(
    tmp_path: Path, cameras: tuple[str, ...] = ("gate",), sinks: str = ""
) -> PipelineConfig:
    """A cluster run's config: `cameras` reading one short video, with the `sinks` (YAML list
    items, one per line) when given."""
    video = write_video(tmp_path / "gate.mp4", frames=8)
    lines = "".join(f"  - {{id: {c}, source: '{video}'}}\n" for c in cameras)
    sections = f"sinks:\n{sinks}" if sinks else ""
    return parse_config(
        f"cameras:\n{lines}detector: {{model: person_ssdlite}}\n{sections}cluster: {{engine: ray}}\n"
    )


class ShardRun:
    """A shard running camera gate of `config` in a thread of this process, as the
    coordinator has a shard actor do."""

    def __init__(self, config: PipelineConfig) -> None:
        self.shard = Shard("shard-0")
        self.summaries: list[RunSummary] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self.thread.start()

    def _run(self, config: PipelineConfig) -> None:
        try:
            self.summaries.append(self.shard.run(config, ["gate"], "c (run 1 on shard-0)", None))
        except BaseException as exc:  # the test's thread reports it
            self.errors.append(exc)

    def stop(self, wait_s: float) -> None:
        """What the coordinator does at the run's stop; then waits up to `wait_s` for the end."""
        self.shard.stop()
        self.thread.join(wait_s)

    def summary(self, waiting_for: str) -> RunSummary:
        """The run's summary, once it ended without an error."""
        assert not self.thread.is_alive(), f"the shard still waits for {waiting_for}"
        assert not self.errors, self.errors
        (summary,) = self.summaries
        return summary


def test_a_shards_stop_ends_its_mqtt_sinks_wait_for_a_silent_broker_and_its_run_ends_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentBroker()  # takes the connection, never answers the login
    sinks = (
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{free_port()}'}}\n"
        f"  - {{type: mqtt, url: '{silent.url}', connect_timeout_s: 600}}\n"
    )
    run = ShardRun(ray_config(tmp_path, sinks=sinks))
    try:
        assert silent.connected.wait(WAIT_S), "the shard's sink never connected"
        run.stop(WAIT_S)  # not connect_timeout_s (600 s)
    finally:
        silent.close()

    summary = run.summary(waiting_for="the broker")
    assert summary.interrupted and summary.ok  # its file not read on: stopped, not failed
    (line,) = [o for o in summary.outputs if o.startswith("mqtt ")]
    assert line.endswith("never connected: the run stopped while waiting for the broker")
    assert "stopped while waiting for the broker" in caplog.text


def test_a_shards_stop_while_its_sql_sink_connects_to_a_silent_server_ends_its_run_stopped(
    tmp_path: Path,
) -> None:
    silent = SilentPostgres()
    sinks = f"  - {{type: sql, url: '{silent.url}', spool_dir: '{tmp_path / 'spool'}'}}\n"
    run = ShardRun(ray_config(tmp_path, sinks=sinks))
    try:
        assert silent.connected.wait(WAIT_S), "the shard's sink never connected"
        run.stop(WAIT_S)  # not the URL's connect_timeout (600 s)
    finally:
        silent.close()
    summary = run.summary(waiting_for="the database")
    assert summary.interrupted and summary.ok  # stopped, not failed


def test_a_shards_stop_while_it_builds_its_detector_ends_its_run_at_once_unstarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's stop reaches a shard as its run begins (the stop came while the driver
    handed it its cameras): a first run's ONNX export and int8 calibration, which look at
    nothing, are not waited for."""
    building, built = threading.Event(), threading.Event()

    def slow_build(config: DetectorConfig, announce: Any = None, sharing: int = 1) -> OneBox:
        building.set()
        built.wait(WAIT_S)
        return OneBox()

    monkeypatch.setattr(pipeline.build, "build_run_detector", slow_build)
    run = ShardRun(ray_config(tmp_path, cameras=("gate", "yard")))
    try:
        assert building.wait(WAIT_S), "the shard never built its detector"
        run.stop(3)  # the build would take until the test's end (WAIT_S)
        assert not run.thread.is_alive(), "the shard still waits for its detector"
    finally:
        built.set()
    summary = run.summary(waiting_for="its detector")
    assert summary.interrupted and summary.ok
    assert {c: s.status for c, s in summary.cameras.items()} == {
        "gate": "not started: stopped before it opened"
    }
