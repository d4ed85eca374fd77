"""Joining a cluster as a command's client, and where the run's small actors live, with a
stand-in for Ray's calls (the running cluster is in test_ray_cluster.py)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType, SimpleNamespace
from typing import Any

import pytest

from pipeline.cluster.desk import start_desk
from pipeline.cluster.engine import ClusterError, JoinStopped, connect, join_as_client
from pipeline.cluster.status import start_board
from tests.conftest import free_port
from tests.cores import pin_cores

DRIVER_NODE = "3f2a9c1b" * 7


class FakeRay:
    """Records the options actors are started with, and the `init` calls."""

    def __init__(self, *, initialized: bool = False) -> None:
        self.options: dict[str, dict[str, Any]] = {}
        self.inits: list[str] = []
        self.init_options: list[dict[str, Any]] = []
        self.shut_down = threading.Event()
        self._initialized = initialized
        self.util = pytest.importorskip("ray.util")

    def is_initialized(self) -> bool:
        return self._initialized

    def init(self, address: str, **options: Any) -> None:
        self.inits.append(address)
        self.init_options.append(options)

    def shutdown(self) -> None:
        self.shut_down.set()

    def get_runtime_context(self) -> Any:
        return SimpleNamespace(get_node_id=lambda: DRIVER_NODE)

    def remote(self, cls: type) -> Any:
        def options(**given: Any) -> Any:
            self.options[cls.__name__] = given
            return SimpleNamespace(remote=lambda: f"actor {given['name']}")

        return SimpleNamespace(options=options)


def test_the_status_board_and_the_desk_stay_on_the_drivers_node() -> None:
    strategies = pytest.importorskip("ray.util.scheduling_strategies")
    ray = FakeRay()
    assert start_board(ray, "abc") == "actor coordinator-abc"
    assert start_desk(ray, "abc") == "actor cameras-abc"
    for actor in ("StatusBoard", "CameraDesk"):
        strategy = ray.options[actor]["scheduling_strategy"]
        assert isinstance(strategy, strategies.NodeAffinitySchedulingStrategy)
        assert (strategy.node_id, strategy.soft) == (DRIVER_NODE, False)


def test_a_process_already_connected_asks_its_own_cluster_and_stays_connected() -> None:
    ray = FakeRay(initialized=True)
    assert join_as_client(ray, "auto") is False  # type: ignore[arg-type]
    assert ray.inits == []


def test_a_local_run_starts_a_ray_of_its_own_rather_than_join_one_ray_start_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an address, `ray.init` joins the cluster RAY_ADDRESS or the last `ray start`
    names, not the one-node Ray `address: local` promises (and the fit was checked for)."""
    monkeypatch.setenv("RAY_ADDRESS", "192.0.2.1:6379")
    ray = FakeRay()
    joined = connect(ray, "local", threading.Event())  # type: ignore[arg-type]
    assert joined is not None
    joined.leave()
    assert ray.inits == ["local"] and ray.shut_down.is_set()


@pytest.mark.parametrize(("address", "cpus"), [("local", 3), ("auto", None)])
def test_a_local_ray_is_given_the_cores_this_process_may_use_and_a_cluster_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch, address: str, cpus: int | None
) -> None:
    # Ray's own count reads neither taskset nor a cgroup v2 cpuset: it would offer the
    # shards the machine's 64 cores where their threads may use 3.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    pin_cores(monkeypatch, 3)
    ray = FakeRay()
    joined = connect(ray, address, threading.Event())  # type: ignore[arg-type]
    assert joined is not None
    joined.leave()
    assert [o.get("num_cpus") for o in ray.init_options] == [cpus]


def test_a_client_joins_the_address_it_is_given_and_says_it_must_leave() -> None:
    ray = FakeRay()
    assert join_as_client(ray, "auto") is True  # type: ignore[arg-type]
    assert ray.inits == ["auto"]


def test_a_client_given_an_address_nothing_answers_at_fails_in_one_line_without_joining() -> None:
    ray = FakeRay()
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClusterError) as error:
        join_as_client(ray, address)  # type: ignore[arg-type]
    assert str(error.value).startswith(f"no Ray cluster at '{address}' (so no pipeline running")
    assert "\n" not in str(error.value) and ray.inits == []


class RayTakingSigterm(FakeRay):
    """`init` sets a SIGTERM handler of its own, as Ray's does (one that exits at once),
    when called in the main thread (Python takes one from there only)."""

    def init(self, address: str = "local", **_: Any) -> None:
        super().init(address)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


def test_joining_the_cluster_keeps_the_run_s_own_sigterm_handler() -> None:
    """`run` stops well on SIGTERM (every shard finishes what it read) only while its own
    handler is the one called; Ray's `init` sets one that exits the driver at once."""

    def ours(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("not called here")

    before = signal.signal(signal.SIGTERM, ours)
    try:
        joined = connect(RayTakingSigterm(), "auto", threading.Event())  # type: ignore[arg-type]
        assert joined is not None
        assert signal.getsignal(signal.SIGTERM) is ours
        joined.leave()
    finally:
        signal.signal(signal.SIGTERM, before)


class SlowRay(FakeRay):
    """`init` takes until `started` is set, as Ray's does while it starts its processes."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def init(self, address: str, **_: Any) -> None:
        super().init(address)
        self.started.wait(10)


def test_a_stop_while_ray_starts_ends_the_wait_at_once_and_ray_is_shut_down_once_started() -> None:
    ray = SlowRay()
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(JoinStopped):
        connect(ray, "local", stop)  # type: ignore[arg-type]
    assert time.monotonic() - started < 2
    assert ray.inits == ["local"] and not ray.shut_down.is_set()
    ray.started.set()  # Ray is up after all: it is left at once
    assert ray.shut_down.wait(10)


def test_joining_an_address_nothing_answers_at_fails_in_one_line_without_init() -> None:
    ray = FakeRay()
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClusterError) as error:
        connect(ray, address, threading.Event())  # type: ignore[arg-type]
    assert str(error.value).startswith(f"cluster: cannot join Ray at '{address}': nothing answers")
    assert "\n" not in str(error.value) and ray.inits == []
