"""A shard's stop while its `mqtt` sink waits at the start for a broker that takes the
connection and never answers, without Ray: the `Shard` class in this process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import pipeline.build
from pipeline.cluster.shard import Shard
from pipeline.config import DetectorConfig, parse_config
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


def test_a_shards_stop_ends_its_mqtt_sinks_wait_for_a_silent_broker_and_its_run_ends_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = SilentBroker()  # takes the connection, never answers the login
    video = write_video(tmp_path / "gate.mp4", frames=8)
    config = parse_config(
        f"cameras:\n  - {{id: gate, source: '{video}'}}\n"
        "detector: {model: person_ssdlite}\n"
        "sinks:\n"
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{free_port()}'}}\n"
        f"  - {{type: mqtt, url: '{silent.url}', connect_timeout_s: 600}}\n"
        "cluster: {engine: ray}\n"
    )
    shard = Shard("shard-0")
    summaries: list[RunSummary] = []
    run = threading.Thread(
        target=lambda: summaries.append(shard.run(config, ["gate"], "c (run 1 on shard-0)", None)),
        daemon=True,
    )
    run.start()
    try:
        assert silent.connected.wait(WAIT_S), "the shard's sink never connected"
        shard.stop()  # what the coordinator does at the run's stop
        run.join(WAIT_S)  # not connect_timeout_s (600 s)
    finally:
        silent.close()

    assert not run.is_alive(), "the shard still waits for the broker"
    (summary,) = summaries
    assert summary.interrupted and summary.ok  # its file not read on: stopped, not failed
    (line,) = [o for o in summary.outputs if o.startswith("mqtt ")]
    assert line.endswith("never connected: the run stopped while waiting for the broker")
    assert "stopped while waiting for the broker" in caplog.text


def test_a_shards_stop_while_its_sql_sink_connects_to_a_silent_server_ends_its_run_stopped(
    tmp_path: Path,
) -> None:
    silent = SilentPostgres()
    video = write_video(tmp_path / "gate.mp4", frames=8)
    config = parse_config(
        f"cameras:\n  - {{id: gate, source: '{video}'}}\n"
        "detector: {model: person_ssdlite}\n"
        f"sinks:\n  - {{type: sql, url: '{silent.url}', spool_dir: '{tmp_path / 'spool'}'}}\n"
        "cluster: {engine: ray}\n"
    )
    shard = Shard("shard-0")
    summaries: list[RunSummary] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            summaries.append(shard.run(config, ["gate"], "c (run 1 on shard-0)", None))
        except BaseException as exc:  # the test's thread reports it
            errors.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        assert silent.connected.wait(WAIT_S), "the shard's sink never connected"
        shard.stop()  # what the coordinator does at the run's stop
        runner.join(WAIT_S)  # not the URL's connect_timeout (600 s)
    finally:
        silent.close()
    assert not runner.is_alive(), "the shard still waits for the database"
    assert not errors, errors
    (summary,) = summaries
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
    video = write_video(tmp_path / "gate.mp4", frames=8)
    config = parse_config(
        f"cameras:\n  - {{id: gate, source: '{video}'}}\n  - {{id: yard, source: '{video}'}}\n"
        "detector: {model: person_ssdlite}\ncluster: {engine: ray}\n"
    )
    shard = Shard("shard-0")
    summaries: list[RunSummary] = []
    run = threading.Thread(
        target=lambda: summaries.append(shard.run(config, ["gate"], "c (run 1 on shard-0)", None)),
        daemon=True,
    )
    run.start()
    try:
        assert building.wait(WAIT_S), "the shard never built its detector"
        shard.stop()  # what the coordinator does at the run's stop
        run.join(3)  # the build would take until the test's end (WAIT_S)
        assert not run.is_alive(), "the shard still waits for its detector"
    finally:
        built.set()
    (summary,) = summaries
    assert summary.interrupted and summary.ok
    assert {c: s.status for c, s in summary.cameras.items()} == {
        "gate": "not started: stopped before it opened"
    }
