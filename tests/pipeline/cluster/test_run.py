"""The driver's side of a cluster run, without a cluster: what it checks before it joins
one."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import pipeline.cluster.run
from pipeline.cluster.run import ClusterRun
from pipeline.config import parse_config
from sinks.base import SinkError
from tests.conftest import write_video


def test_the_driver_refuses_a_zmq_port_another_program_holds_before_joining_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")

    def connect(*args: object) -> bool:
        raise AssertionError("the driver joined the cluster")

    monkeypatch.setattr(pipeline.cluster.run, "connect", connect)
    clip = write_video(tmp_path / "gate.mp4", frames=2)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        endpoint = f"tcp://127.0.0.1:{held.getsockname()[1]}"
        config = parse_config(
            f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
            f"sinks:\n  - {{type: zmq, endpoint: '{endpoint}'}}\ncluster: {{engine: ray}}\n"
        )
        with pytest.raises(SinkError) as refused:
            ClusterRun(config).run()
    assert str(refused.value).startswith(f"zmq sink: cannot bind '{endpoint}': Address already")
