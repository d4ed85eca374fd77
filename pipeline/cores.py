"""How many cores this process may use: the one rule behind every thread count the pipeline
picks (ONNX Runtime's and torch's threads, FFmpeg's decoder and x264's encoder threads, the
CUDA host copy's, OpenCV's); and, where several processes share them (a cluster's shards on
one machine), each one's share, which sizes the detector's CPU threads (`cores_each`).

`os.cpu_count()` counts the machine's cores, also in a container given a few of them
(docker --cpuset-cpus or --cpus) or under `taskset`, where threads sized by it would
outnumber the cores they share many times.

A leaf module that imports nothing from the project: part of the vocabulary every layer may
use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where cgroup v2 is mounted on Linux."""
CGROUP_MEMBERSHIP = Path("/proc/self/cgroup")
"""This process's cgroups; its cgroup v2 is the line `0::/path`."""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
"""The Linux kernel's id for its boot: one per host, the same in every container on it."""


def usable_cores() -> int:
    """The cores this process may keep busy: the CPUs it may run on (its affinity, which
    `taskset` and docker --cpuset-cpus set), at most its cgroup v2 CPU quota rounded up
    (docker --cpus 1.5, a Kubernetes CPU limit: 2), at least 1. Where the affinity is
    unknown (not Linux), the machine's cores (`machine_cores`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity outside Linux
        cores = machine_cores()
    quota = cgroup_cpu_limit()
    return max(1, min(cores, quota) if quota is not None else cores)


def cores_each(sharing: int = 1) -> int:
    """The cores each of `sharing` processes that share this machine's (a cluster's shards
    on one machine, this one among them) may keep busy: an even share of `usable_cores`,
    at least 1. With `sharing` 1, `usable_cores`."""
    return max(1, usable_cores() // max(1, sharing))


def cores_owner() -> str | None:
    """What the processes whose threads share this one's cores have alike, wherever their
    network addresses differ (containers with their own IPs on one host): the kernel they
    run on (its boot id) and the CPUs they may run on (their affinity). None where a cgroup
    CPU quota caps them (a container's own, shared only by its processes, which the caller
    tells by their IP) or where it is unknown (not Linux)."""
    if cgroup_cpu_limit() is not None:
        return None
    try:
        boot = BOOT_ID.read_text(encoding="ascii").strip()
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError, UnicodeDecodeError):  # not Linux
        return None
    return f"kernel {boot}, CPUs {','.join(map(str, cpus))}" if boot else None


def machine_cores() -> int:
    """The machine's logical cores (`os.cpu_count()`), whether or not this process may use
    them all: what a report names the machine by, beside `usable_cores`."""
    return os.cpu_count() or 1


def cores_line() -> str:
    """The cores for a report: "16 logical cores", or with fewer usable by this process
    "16 logical cores, 2 usable here"."""
    machine, usable = machine_cores(), usable_cores()
    if usable == machine:
        return f"{machine} logical cores"
    return f"{machine} logical cores, {usable} usable here"


def cgroup_cpu_limit() -> int | None:
    """The tightest cgroup v2 CPU quota (`cpu.max`) of this process's cgroup and those above
    it, in cores rounded up; None where none is set or none can be read (cgroup v1, not
    Linux). A cgroup not visible under `CGROUP_ROOT` (a container sees its own as the root)
    is skipped."""
    root = CGROUP_ROOT
    try:
        lines = CGROUP_MEMBERSHIP.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None:
        return None
    folder = root / path.strip().lstrip("/")
    limits = []
    while True:
        if (limit := _quota_cores(folder / "cpu.max")) is not None:
            limits.append(limit)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(limits, default=None)


def _quota_cores(cpu_max: Path) -> int | None:
    """The quota in a `cpu.max` file ("150000 100000": 1.5 cores) rounded up; None for
    "max", a missing file or one that does not read as a quota."""
    try:
        fields = cpu_max.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))
