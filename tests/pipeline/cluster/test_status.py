"""`cluster status` without a cluster: the rates, the table and the JSON it prints, and the
one line it says when Ray is missing (the running cluster is in test_ray_cluster.py)."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.cluster import engine
from pipeline.cluster.engine import ClusterError
from pipeline.cluster.status import RateWindow, RunStatus, ShardReport, format_status, status_json

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
