"""Whether the shards of an `address: local` cluster fit on this machine: the one-node Ray
a run starts for itself has the CPUs, GPUs and memory Ray finds on this machine and no
custom resources, all known before Ray starts. A shard that cannot fit would otherwise wait
for Ray to place it until `PLACEMENT_TIMEOUT_S`, and then be reported without its YAML
path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.cluster.engine import local_cpus, shard_count
from pipeline.config.base import BYTES_PER_MB
from pipeline.config.cluster import ClusterConfig

LOCAL_NODE_IP = "127.0.0.1"
"""The address Ray's node resolution is given (it only names the node's own resource)."""


@dataclass(frozen=True)
class MachineResources:
    """What a one-node Ray on this machine offers shards: CPU cores, GPUs, and its `memory`
    resource (what actors reserve) in MB."""

    cpus: float
    gpus: float
    memory_mb: float


def this_machine() -> MachineResources | None:
    """What the Ray `address: local` starts (`connect`) would offer here, without starting
    Ray or CUDA: the CPUs it is given (`local_cpus`: the cores this process may use), and
    as Ray itself resolves a new node's resources its GPUs (NVIDIA's as NVML counts them,
    less those CUDA_VISIBLE_DEVICES hides) and its `memory`: the memory free now less the
    share Ray keeps for its object store (30 % by default). None where Ray is not
    installed, cannot start here, or resolves a node elsewhere than the Ray versions known
    here: placement is then left to Ray."""
    try:
        spec = _ray_node_spec()
    # ImportError, AttributeError, TypeError: Ray's private resolution moved or changed;
    # ValueError: too little memory for Ray to start (it says so itself)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return MachineResources(
        float(local_cpus()), float(spec.num_gpus), float(spec.memory) / BYTES_PER_MB
    )


def _ray_node_spec() -> Any:
    """Ray's own resolution of the resources of a node it starts, with nothing given (what
    `ray.init()` does): ray/_private/resource_and_label_spec.py, ray/_private/resource_spec.py
    in older Rays. Both are Ray's private modules, hence the fallbacks around this call."""
    spec: Any
    try:
        from ray._private.resource_and_label_spec import ResourceAndLabelSpec

        spec = ResourceAndLabelSpec()
    except ImportError:
        from ray._private.resource_spec import ResourceSpec

        spec = ResourceSpec()
    return spec.resolve(is_head=True, node_ip_address=LOCAL_NODE_IP)


def started_ray(ray: Any) -> MachineResources:
    """What the Ray this process joined offers, as it says now (`cluster_resources`): the
    figures `this_machine` foresaw, but for the memory freed or taken since, Ray's own
    processes among it."""
    offered = ray.cluster_resources()
    return MachineResources(
        offered.get("CPU", 0.0), offered.get("GPU", 0.0), offered.get("memory", 0.0) / BYTES_PER_MB
    )


def local_resources_problem(
    config: ClusterConfig, machine: MachineResources | None, cameras: int
) -> str | None:
    """Why the shards of `config` cannot all be placed on the one-node Ray that
    `address: local` starts on `machine` (None when they can, for another address, or
    when what the machine offers is not known): one line at the resource's YAML path,
    saying what Ray offers."""
    if config.address != "local" or machine is None:
        return None
    shards = shard_count(config, {"GPU": machine.gpus}, 1, cameras)
    per_shard = config.resources_per_shard
    where = "cluster.resources_per_shard"
    for custom, amount in per_shard.resources.items():
        if amount > 0:
            return (
                f"{where}.resources.{custom}: a local Ray (address: local) has no custom "
                "resources; give them to the nodes of a cluster (ray start --resources)"
            )
    wanted = [
        ("num_gpus", per_shard.num_gpus, machine.gpus, "GPU(s)", ""),
        ("num_cpus", per_shard.num_cpus, machine.cpus, "CPU core(s)", ""),
        (
            "memory_mb",
            per_shard.memory_mb or 0.0,
            machine.memory_mb,
            "MB of memory",
            " (the memory free, less its object store)",
        ),
    ]
    for field, each, has, unit, which in wanted:
        if each * shards <= has:
            continue
        asked = _amount(each)
        if shards > 1:
            asked = f"{shards} shards × {asked} = {_amount(each * shards)}"
        return (
            f"{where}.{field}: {asked} {unit} asked for, but Ray on this machine offers "
            f"{_amount(has)}{which} (address: local starts Ray on this machine alone)"
        )
    return None


def _amount(value: float) -> str:
    """`value` as people write it: 2, 0.5, 131072.5 (no exponent, no trailing zeros)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")
