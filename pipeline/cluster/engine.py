"""Ray itself: whether it is installed, joining the cluster, and how many shards fit."""

from __future__ import annotations

import math
import os
import signal
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


def connect(ray: ModuleType, address: str) -> bool:
    """Joins the cluster at `address` ('local': starts one in this process, offering the
    cores this process may use, `local_cpus`); returns whether this call connected (and so
    should disconnect at the end). A driver already connected (an embedding program, the
    tests) is used as it is."""
    if ray.is_initialized():
        return False
    if (silent := unanswered(address)) is not None:
        raise ClusterError(f"cluster: cannot join Ray at {address!r}: {silent}")
    # "local" given as such: without an address `ray.init` joins the cluster RAY_ADDRESS or
    # the last `ray start` on this machine names (waiting minutes for one that is gone)
    options: dict[str, Any] = {"runtime_env": runtime_env(), "address": address}
    if address == "local":
        options["include_dashboard"] = False
        options["num_cpus"] = local_cpus()
    ours = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(logging_level="WARNING", **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cluster: cannot join Ray at {address!r}: {first}") from exc
    finally:
        # Ray's init sets a SIGTERM handler that exits at once: the run's own stops well
        if ours is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, ours)
    return True


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
