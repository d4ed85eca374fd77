"""`cluster status` without a cluster: the rates, the table and the JSON it prints, and the
one line it says when Ray is missing (the running cluster is in test_ray_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.cluster import engine
from pipeline.cluster.engine import ClusterError
from pipeline.cluster.status import RateWindow, RunStatus, ShardReport, format_status, status_json
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]

SHARDS = (
    ShardReport("shard-0", "10.0.0.7", "3f2a9c1b77", ("0",), ("gate", "hall"), 120, 24.5, 0),
    ShardReport("shard-1", "10.0.0.8", "9e8d7c6b55", (), ("yard",), 60, 12.0, 2),
)
RUN = RunStatus("cluster abc", "site.yaml", 1000.0, SHARDS)


def test_the_table_shows_each_shard_with_node_gpu_cameras_rate_and_restarts() -> None:
    lines = format_status([RUN], now=1003.0).splitlines()

    assert lines[0] == "cluster abc: site.yaml, 2 shards (as of 3 s ago)"
    assert lines[1].split() == ["SHARD", "NODE", "GPU", "CAMERAS", "FRAMES/S", "RESTARTS"]
    assert lines[2].split() == ["shard-0", "10.0.0.7", "(3f2a9c1b)", "0", "gate,hall", "24.5", "0"]
    assert lines[3].split() == ["shard-1", "10.0.0.8", "(9e8d7c6b)", "-", "yard", "12.0", "2"]


def test_the_table_ends_with_each_shard_that_died_and_where_its_cameras_went() -> None:
    moved = (
        "shard-2 on 10.0.0.9 (node 77aa, GPU 0, pid 12) died: gone; cameras dock moved to shard-1"
    )
    run = RunStatus("cluster abc", "site.yaml", 1000.0, SHARDS, (moved,))
    assert format_status([run], now=1000.0).splitlines()[-1] == f"lost {moved}"


def test_the_json_lists_runs_with_their_shards() -> None:
    (run,) = json.loads(status_json([RUN]))

    assert run["config"] == "site.yaml"
    assert [s["name"] for s in run["shards"]] == ["shard-0", "shard-1"]
    assert run["shards"][0]["cameras"] == ["gate", "hall"]
    assert run["shards"][1]["restarts"] == 2


def test_the_rate_is_frames_over_the_last_window_per_shard() -> None:
    rates = RateWindow(window_s=2.0)
    assert rates.update(0.0, {"a": 0}) == {"a": 0.0}
    assert rates.update(1.0, {"a": 10}) == {"a": 10.0}
    assert rates.update(2.0, {"a": 20, "b": 5}) == {"a": 10.0, "b": 0.0}
    # the first sample falls out of the window: only the last 2 s count
    assert rates.update(3.0, {"a": 60, "b": 9}) == {"a": 25.0, "b": 4.0}


def test_without_ray_it_says_what_to_install_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing() -> None:
        raise ClusterError("cluster: Ray is not installed; " + engine.INSTALL_HINT)

    monkeypatch.setattr(engine, "require_ray", missing)
    assert main(["cluster", "status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install" in err and "Ray is not installed" in err


def test_an_address_nothing_answers_at_is_one_line_and_a_failure_not_minutes_of_retries() -> None:
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # Ray alone retries such an address for minutes: the bound only makes that a failure
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "cluster", "status", "--address", address],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"no Ray cluster at '{address}'" in done.stderr
    assert "nothing answers at 127.0.0.1" in done.stderr
