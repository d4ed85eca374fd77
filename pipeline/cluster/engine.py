"""Ray itself: whether it is installed, joining the cluster, and how many shards fit."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.config.base import mb_bytes
from pipeline.config.cluster import ClusterConfig, ShardResourcesConfig
from pipeline.cores import usable_cores

INSTALL_HINT = "pip install -e '.[ray]' (or pip install 'ray>=2.9')"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""Where this copy of the project lives: shards on this machine import the same code."""


JOIN_POLL_S = 0.05
"""How often the driver, waiting for Ray to start or the cluster to answer, looks at the
run's stop."""
RAY_INIT_THREAD = "ray-init"
"""The name of the thread that joins the cluster, and leaves it."""
CONNECT_TIMEOUT_S = 5.0
"""Longest wait for the head of a cluster given by its address to answer at all (Ray
itself retries an address nothing answers at for minutes)."""


class ClusterError(RuntimeError):
    """The cluster cannot run this config (one line, said before any frame is read)."""


def ray_missing() -> str | None:
    """Why a `cluster:` config cannot run here (Ray not installed); None when it can."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return f"cluster: Ray is not installed; {INSTALL_HINT}"
    return None


def require_ray() -> ModuleType:
    """The `ray` module; raises ClusterError saying how to install it when it is missing."""
    if (missing := ray_missing()) is not None:
        raise ClusterError(missing)
    import ray

    return ray


def connect(ray: ModuleType, address: str, stop: threading.Event) -> Joined | None:
    """Joins the cluster at `address` ('local': starts one in this process, offering the
    cores this process may use, `local_cpus`); returns the connection this call made
    (`Joined.leave` at the end), or None for a driver already connected (an embedding
    program, the tests), which is used as it is. Raises ClusterError, in one line, when the
    cluster cannot be joined, and JoinStopped at once when `stop` is set first (`Joined`)."""
    if ray.is_initialized():
        return None
    # "local" given as such: without an address `ray.init` joins the cluster RAY_ADDRESS or
    # the last `ray start` on this machine names (waiting minutes for one that is gone)
    options: dict[str, Any] = {"runtime_env": runtime_env(), "address": address}
    if address == "local":
        options["include_dashboard"] = False
        options["num_cpus"] = local_cpus()
    joined = Joined(ray, address, options)
    try:
        joined.wait(stop)
    except ClusterError:
        raise
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cluster: cannot join Ray at {address!r}: {first}") from exc
    return joined


class JoinStopped(Exception):
    """The run's stop came while the driver joined the cluster (or started Ray)."""


class Joined:
    """The driver's connection to Ray. `ray.init` runs in a thread of its own, which lives
    as long as the connection: the processes of a Ray it starts (`address: local`) are
    killed when the thread that started them ends (Ray has Linux do so: PR_SET_PDEATHSIG).
    The thread shuts Ray down when told to (`leave`), and, should the run stop while Ray
    starts, as soon as it has started: a stop need not wait for it (`wait`). Ray sets no
    SIGTERM handler of its own from that thread (one that exits at once): the run's own
    stays, and the run stops well on SIGTERM."""

    def __init__(self, ray: ModuleType, address: str, options: dict[str, Any]) -> None:
        self._ray = ray
        self._address = address
        self._options = options
        self._joined = threading.Event()
        self._leaving = threading.Event()
        self._left = threading.Event()
        self._failed: list[BaseException] = []
        # a daemon: a run stopped while Ray starts ends without waiting for it
        threading.Thread(target=self._own, name=RAY_INIT_THREAD, daemon=True).start()

    def wait(self, stop: threading.Event) -> None:
        """Returns once Ray is joined, looking at `stop` every JOIN_POLL_S: JoinStopped as
        soon as it is set first (Ray, once started, is then shut down in its thread); what
        `ray.init` raised, or ClusterError when nothing answers at `address`."""
        while not self._joined.wait(JOIN_POLL_S):
            if stop.is_set():
                self._leaving.set()
                raise JoinStopped
        if self._failed:
            raise self._failed[0]

    def leave(self) -> None:
        """Shuts Ray down (`ray.shutdown`, in the thread that started it) and waits for it."""
        self._leaving.set()
        self._left.wait()

    def _own(self) -> None:
        try:
            if not self._init():
                return
            self._leaving.wait()
            self._ray.shutdown()
        finally:
            self._left.set()

    def _init(self) -> bool:
        """`ray.init`; whether it joined (else what it raised is in `_failed`)."""
        worker_log = logging.getLogger("ray._private.worker")
        worker_log.addFilter(_no_sigterm_warning)
        try:
            if (silent := unanswered(self._address)) is not None:
                raise ClusterError(f"cluster: cannot join Ray at {self._address!r}: {silent}")
            self._ray.init(logging_level="WARNING", **self._options)
            return True
        except BaseException as exc:  # the waiting thread raises it
            self._failed.append(exc)
            return False
        finally:
            worker_log.removeFilter(_no_sigterm_warning)
            self._joined.set()


def _no_sigterm_warning(record: logging.LogRecord) -> bool:
    """Leaves out Ray's warning that `ray.init` out of the main thread sets no SIGTERM
    handler: what `Joined` wants."""
    return not record.getMessage().startswith("SIGTERM handler is not set")


def local_cpus() -> int:
    """The CPUs a Ray started for `address: local` offers shards: the cores this process
    (and so Ray's processes, its children) may use (`usable_cores`). Ray's own count reads
    a container's cgroup quota, rounded down, and cgroup v1's cpuset, but not the affinity
    (`taskset`, docker --cpuset-cpus under cgroup v2): it would offer shards every core of
    a machine where their threads may use a few."""
    return usable_cores()


def join_as_client(ray: ModuleType, address: str) -> bool:
    """Joins the cluster at `address` as a short-lived client of a command that asks a
    running pipeline (`cluster status`, `cameras`): no workers of its own, nothing logged.
    Returns whether this call connected (then the caller calls `ray.shutdown()`); a process
    already connected asks its own cluster. Raises ClusterError, in one line, when no
    cluster answers there (within `CONNECT_TIMEOUT_S` for a `HOST:PORT` address)."""
    if ray.is_initialized():
        return False
    none_there = f"no Ray cluster at {address!r} (so no pipeline running there)"
    if (silent := unanswered(address)) is not None:
        raise ClusterError(f"{none_there}: {silent}")
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"{none_there}: {first}") from exc
    return True


def on_driver_node(ray: ModuleType) -> dict[str, Any]:
    """The Ray actor options that keep an actor on the node of this process (the driver),
    never moved elsewhere: the run's status board and desk must live as long as the driver,
    not die with a worker node while the run goes on."""
    strategies = ray.util.scheduling_strategies
    node_id = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)}


def unanswered(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at the head of the cluster `address` names (a TCP connection
    to it fails within `timeout_s`); None when something does, or for 'local' and an
    'auto' without RAY_ADDRESS (Ray finds those on this machine at once)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None  # local, auto, or not an address: Ray says what it makes of it
    host = host.strip("[]")  # an IPv6 address: [::1]:6379
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        return f"nothing answers at {host}:{port} within {timeout_s:g} s ({why})"
    return None


def runtime_env() -> dict[str, Any]:
    """The Ray runtime environment of a run's workers: this copy of the project first on
    their path, so that shards on this machine (and on nodes with the project at the same
    path) run the driver's code; elsewhere the installed project is used."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def shard_options(resources: ShardResourcesConfig) -> dict[str, Any]:
    """The Ray actor options that reserve `resources` for a shard."""
    options: dict[str, Any] = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus}
    if resources.memory_mb is not None:
        options["memory"] = mb_bytes(resources.memory_mb)
    if resources.resources:
        options["resources"] = dict(resources.resources)
    return options


def shard_count(
    config: ClusterConfig, cluster_resources: dict[str, float], nodes: int, cameras: int
) -> int:
    """How many shards run `cameras` cameras: the configured number, or for 'auto' one per
    GPU (per `num_gpus` of a shard) or, on a cluster without GPUs, one per node; never
    more than the cameras."""
    if config.shards != "auto":
        return max(1, min(config.shards, cameras))
    gpus = cluster_resources.get("GPU", 0.0)
    per_shard = config.resources_per_shard.num_gpus or 1.0
    slots = math.floor(gpus / per_shard) if gpus >= per_shard else nodes
    return max(1, min(slots, cameras))
