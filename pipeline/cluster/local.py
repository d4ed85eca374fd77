"""Whether the shards of an `address: local` cluster fit on this machine: the one-node Ray
a run starts for itself has this machine's CPUs, GPUs and memory and no custom resources,
all known before Ray starts. A shard that cannot fit would otherwise wait for Ray to place
it until `PLACEMENT_TIMEOUT_S`, and then be reported without its YAML path."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.cluster.engine import shard_count
from pipeline.config.base import BYTES_PER_MB
from pipeline.config.cluster import ClusterConfig

NVIDIA_GPU_NODE = re.compile(r"nvidia\d+")
"""An NVIDIA GPU's device file in /dev (nvidia0, nvidia1, …): one per GPU."""


@dataclass(frozen=True)
class MachineResources:
    """What a one-node Ray started on this machine has to reserve: CPU cores, GPUs (None
    where they cannot be counted without starting CUDA) and memory in MB."""

    cpus: int
    gpus: int | None
    memory_mb: float


def this_machine() -> MachineResources:
    """This machine's `MachineResources`, read without starting Ray or CUDA."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return MachineResources(os.cpu_count() or 1, _gpus(), memory / BYTES_PER_MB)


def _gpus(dev: Path = Path("/dev"), env: Mapping[str, str] = os.environ) -> int | None:
    from detector.options import gpu_device_nodes

    if not gpu_device_nodes():
        return 0  # no GPU device file: neither torch nor Ray sees a GPU
    names = [p.name for p in dev.iterdir()] if dev.is_dir() else []
    if any(name in ("kfd", "dxg") for name in names):
        return None  # AMD or WSL: not counted from device files
    return gpu_count(names, env.get("CUDA_VISIBLE_DEVICES"))


def gpu_count(dev_names: Iterable[str], visible: str | None) -> int:
    """The NVIDIA GPUs of a machine whose /dev holds `dev_names`, as Ray counts them: those
    CUDA_VISIBLE_DEVICES (`visible`) names where it is set."""
    present = sum(1 for name in dev_names if NVIDIA_GPU_NODE.fullmatch(name))
    if visible is None:
        return present
    return min(present, len([d for d in visible.split(",") if d.strip()]))


def local_resources_problem(
    config: ClusterConfig, machine: MachineResources, cameras: int
) -> str | None:
    """Why the shards of `config` cannot all be placed on the one-node Ray that
    `address: local` starts on `machine` (None when they can, or for another address):
    one line at the resource's YAML path, saying what the machine has."""
    if config.address != "local":
        return None
    gpus = {} if machine.gpus is None else {"GPU": float(machine.gpus)}
    shards = shard_count(config, gpus, 1, cameras)
    per_shard = config.resources_per_shard
    where = "cluster.resources_per_shard"
    for custom, amount in per_shard.resources.items():
        if amount > 0:
            return (
                f"{where}.resources.{custom}: a local Ray (address: local) has no custom "
                "resources; give them to the nodes of a cluster (ray start --resources)"
            )
    wanted: list[tuple[str, float, float | None, str]] = [
        ("num_gpus", per_shard.num_gpus, machine.gpus, "GPU(s)"),
        ("num_cpus", per_shard.num_cpus, machine.cpus, "CPU core(s)"),
        ("memory_mb", per_shard.memory_mb or 0.0, machine.memory_mb, "MB of memory"),
    ]
    for field, each, has, unit in wanted:
        if has is None or each * shards <= has:
            continue
        asked = _amount(each)
        if shards > 1:
            asked = f"{shards} shards × {asked} = {_amount(each * shards)}"
        return (
            f"{where}.{field}: {asked} {unit} asked for, but this machine has {_amount(has)} "
            "(address: local starts Ray on this machine alone)"
        )
    return None


def _amount(value: float) -> str:
    """`value` as people write it: 2, 0.5, 131072.5 (no exponent, no trailing zeros)."""
    return f"{value:.4f}".rstrip("0").rstrip(".")
