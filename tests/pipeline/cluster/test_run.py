"""The driver's side of a cluster run, without a cluster: what it checks before it joins
one, and a stop during its set-up (Ray's calls stood in for)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
from sqlalchemy import create_engine, text

import pipeline.cluster.run
from pipeline.cluster.coordinator import POLL_S
from pipeline.cluster.engine import ClusterError
from pipeline.cluster.lost_runs import LostRun, records_path
from pipeline.cluster.resume import prepare_database
from pipeline.cluster.run import PLACEMENT_TIMEOUT_S, ClusterRun
from pipeline.cluster.shard import ShardInfo
from pipeline.config import parse_config
from pipeline.summary import RunSummary
from sinks.base import SinkError
from sinks.sql.query import list_runs
from sinks.sql.sink import SqlSink
from tests.conftest import write_video
from tests.sinks.sql.builders import LABELS
from tests.sinks.sql.conftest import pg_schema, skip_without_pg
from tests.sinks.sql.silent_postgres import SilentPostgres


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


class FakeShard:
    """A shard actor as the driver calls it; each call's result is a callable (a ref)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.info = SimpleNamespace(remote=lambda: lambda: ShardInfo(name, "10.0.0.7", "n", 1, ()))
        self.problem_before_work = SimpleNamespace(remote=lambda config: lambda: None)


class FakeRay:
    """Ray as the driver's set-up calls it: `placed` says whether the shards are ever placed;
    `on_wait` runs at each wait for their placement (a signal coming then)."""

    def __init__(self, *, placed: bool = True, on_wait: Callable[[], None] = lambda: None) -> None:
        self.placed = placed
        self.on_wait = on_wait
        self.started: list[str] = []
        self.killed: list[object] = []
        self.waits: list[float] = []
        self.shut_down = False

    def is_initialized(self) -> bool:
        return False

    def shutdown(self) -> None:
        self.shut_down = True

    def nodes(self) -> list[dict[str, object]]:
        return [{"Alive": True}]

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 4.0}

    def remote(self, cls: type) -> Any:
        def start(name: str) -> FakeShard:
            self.started.append(name)
            return FakeShard(name)

        return SimpleNamespace(options=lambda **_: SimpleNamespace(remote=start))

    def wait(self, refs: list[Any], *, num_returns: int, timeout: float) -> tuple[list, list]:
        self.waits.append(timeout)
        self.on_wait()
        return (refs, []) if self.placed else ([], refs)

    def get(self, refs: list[Any]) -> list[Any]:
        return [ref() for ref in refs]

    def kill(self, actor: object) -> None:
        self.killed.append(actor)


def two_camera_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ray: FakeRay,
    *,
    joined: bool = True,
    sinks: str = "",
) -> ClusterRun:
    """A run of two cameras on `ray` at `address: auto`; joining it is the fake's `connect`
    (which says it joined when `joined`). The run's small actors are left out: they are
    not what these tests are about."""
    clip = write_video(tmp_path / "gate.mp4", frames=2)
    config = parse_config(
        f"cameras:\n  - {{id: gate, source: '{clip}'}}\n  - {{id: yard, source: '{clip}'}}\n"
        f"{sinks}cluster: {{engine: ray, address: auto, shards: 2}}\n"
    )
    run = ClusterRun(config)
    monkeypatch.setattr(pipeline.cluster.run, "require_ray", lambda: ray)
    monkeypatch.setattr(pipeline.cluster.run, "this_machine", lambda: None)
    left = SimpleNamespace(leave=ray.shutdown) if joined else None
    monkeypatch.setattr(pipeline.cluster.run, "connect", lambda ray, address, stop: left)
    monkeypatch.setattr(pipeline.cluster.run, "start_board", lambda ray, token: "board")
    monkeypatch.setattr(run.changes, "open", lambda ray, token: None)

    def begin(*args: object) -> NoReturn:
        raise AssertionError("the driver started the shards' cameras")

    monkeypatch.setattr(run.coordinator, "begin", begin)
    return run


def assert_stopped_before_any_camera(summary: RunSummary) -> None:
    """A stopped run that nothing failed in (exit status 130, or 143 after SIGTERM), each
    camera's line `not started: stopped before it opened`."""
    assert summary.interrupted and summary.ok
    assert {c: s.status for c, s in summary.cameras.items()} == {
        "gate": "not started: stopped before it opened",
        "yard": "not started: stopped before it opened",
    }


def test_a_stop_before_the_driver_joins_the_cluster_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = FakeRay()
    run = two_camera_run(tmp_path, monkeypatch, ray)

    def connect(*args: object) -> bool:
        raise AssertionError("the driver joined the cluster")

    monkeypatch.setattr(pipeline.cluster.run, "connect", connect)
    run.stop.set()
    assert_stopped_before_any_camera(run.run())
    assert ray.started == []


def test_a_stop_as_ray_has_started_places_no_shard_and_leaves_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = FakeRay()
    run = two_camera_run(tmp_path, monkeypatch, ray)

    def connect(ray: FakeRay, address: str, stop: object) -> SimpleNamespace:
        run.stop.set()  # Ctrl-C as `ray.init` returns
        return SimpleNamespace(leave=ray.shutdown)

    monkeypatch.setattr(pipeline.cluster.run, "connect", connect)
    assert_stopped_before_any_camera(run.run())
    assert ray.started == [] and ray.shut_down


def test_a_stop_while_the_shards_wait_to_be_placed_ends_the_wait_and_kills_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster without the shards' resources free keeps them waiting PLACEMENT_TIMEOUT_S
    (120 s); the driver waits in steps, so a stop ends the wait at the next one."""
    run = None

    def stop_at_third_wait() -> None:
        if len(ray.waits) == 3:
            assert run is not None
            run.stop.set()

    ray = FakeRay(placed=False, on_wait=stop_at_third_wait)
    run = two_camera_run(tmp_path, monkeypatch, ray)
    assert_stopped_before_any_camera(run.run())
    assert ray.started == ["shard-0", "shard-1"] and len(ray.waits) == 3
    assert max(ray.waits) <= POLL_S < PLACEMENT_TIMEOUT_S
    assert [getattr(a, "name", a) for a in ray.killed] == ["shard-0", "shard-1", "board"]
    assert ray.shut_down


def test_a_stop_while_the_driver_waits_for_its_mqtt_broker_starts_no_shard_s_cameras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the shards started, each would first build its detector (a first run's ONNX
    export and int8 calibration take many seconds) before it saw the stop."""
    ray = FakeRay()
    run = two_camera_run(tmp_path, monkeypatch, ray)
    closed: list[bool] = []

    class BrokerWaitStopped:
        """The driver's `<prefix>/status`, whose wait for a silent broker a stop ended."""

        def __init__(self, config: object, stop: threading.Event) -> None:
            stop.set()

        def camera_offline(self, camera_id: str) -> None:
            raise AssertionError("no camera was lost")

        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(pipeline.cluster.run, "PipelineStatus", BrokerWaitStopped)
    assert_stopped_before_any_camera(run.run())
    assert [getattr(a, "name", a) for a in ray.killed] == ["shard-0", "shard-1", "board"]
    assert closed == [True] and ray.shut_down


def test_a_stop_while_the_driver_connects_to_a_silent_database_starts_no_shard_s_cameras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver makes the tables before any shard starts its cameras; a server that takes
    the connection and never answers held it until the connect timeout, then failed."""
    silent = SilentPostgres()
    url = silent.url.replace("connect_timeout=600", "connect_timeout=5")  # fails, not hangs
    ray = FakeRay()
    run = two_camera_run(
        tmp_path,
        monkeypatch,
        ray,
        sinks=f"sinks:\n  - {{type: sql, url: '{url}', spool_dir: {tmp_path / 'spool'}}}\n",
    )

    def stop_once_connected() -> None:
        if silent.connected.wait(PLACEMENT_TIMEOUT_S):
            run.stop.set()  # Ctrl-C while the driver waits for the server's answer

    threading.Thread(target=stop_once_connected, daemon=True).start()
    try:
        assert_stopped_before_any_camera(run.run())
    finally:
        silent.close()  # the abandoned connect fails at once
    assert silent.connected.is_set()
    assert [getattr(a, "name", a) for a in ray.killed] == ["shard-0", "shard-1", "board"]
    assert ray.shut_down


def test_a_dead_shard_s_run_an_earlier_run_could_not_mark_is_marked_before_any_shard_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier run was stopped while PostgreSQL did not answer after a shard died: the
    next run marks that shard's run lost before any shard is given cameras (and replays its
    spool file, which leaves a lost run's rows out)."""
    skip_without_pg()
    dead = "c.yaml (cluster abc run 2 on shard-1)"
    spool = tmp_path / "spool"
    with pg_schema() as url:
        prepare_database(url)
        SqlSink(url, LABELS, run_config=dead, spool_dir=spool).close()
        engine = create_engine(url)
        with engine.begin() as conn:  # as a shard killed with its node leaves its run
            conn.execute(text("UPDATE runs SET status = 'running', ended_at = NULL"))
        engine.dispose()
        records = records_path(url, spool)
        records.parent.mkdir(parents=True)
        died = datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc)
        records.write_text(LostRun(dead, "shard-1 died: gone", died).to_line(), encoding="utf-8")
        run = two_camera_run(
            tmp_path,
            monkeypatch,
            FakeRay(),
            sinks=f"sinks:\n  - {{type: sql, url: '{url}', spool_dir: '{spool}'}}\n",
        )
        statuses: list[tuple[str, str | None, datetime | None]] = []

        def begin(*args: object) -> NoReturn:
            statuses.extend((r.status, r.reason, r.ended_at) for r in list_runs(url).rows)
            raise ClusterError("stopped here")

        monkeypatch.setattr(run.coordinator, "begin", begin)
        with pytest.raises(ClusterError, match="stopped here"):
            run.run()
    assert statuses == [("lost", "shard-1 died: gone", died)]
    assert not records.exists()
