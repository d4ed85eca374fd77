"""Ray itself: whether it is installed, joining the cluster, and how many shards fit."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.config.cluster import ClusterConfig, ShardResourcesConfig

INSTALL_HINT = "pip install -e '.[ray]' (or pip install 'ray>=2.9')"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""Where this copy of the project lives: shards on this machine import the same code."""


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
    """Joins the cluster at `address` ('local': starts one in this process); returns
    whether this call connected (and so should disconnect at the end). A driver already
    connected (an embedding program, the tests) is used as it is."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"runtime_env": runtime_env()}
    if address == "local":
        options["include_dashboard"] = False
    else:
        options["address"] = address
    try:
        ray.init(logging_level="WARNING", **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cluster: cannot join Ray at {address!r}: {first}") from exc
    return True


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
        options["memory"] = int(resources.memory_mb * 1024 * 1024)
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
