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
import re
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where cgroup v2 is mounted on Linux."""
CGROUP_MEMBERSHIP = Path("/proc/self/cgroup")
"""This process's cgroups; its cgroup v2 is the line `0::/path`, its cgroup v1 of the cpu
controller a line `N:cpu,cpuacct:/path` (or `N:cpu:/path`)."""
CGROUP_MOUNTS = Path("/proc/self/mountinfo")
"""What this process sees mounted: where each cgroup v1 hierarchy is (`/sys/fs/cgroup/cpu`,
say) and which cgroup it shows as its root."""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
"""The Linux kernel's id for its boot: one per host, the same in every container on it."""


def usable_cores() -> int:
    """The cores this process may keep busy: the CPUs it may run on (its affinity, which
    `taskset` and docker --cpuset-cpus set), at most its cgroup CPU quota (v2 or v1) rounded
    up (docker --cpus 1.5, a Kubernetes CPU limit: 2), at least 1. Where the affinity is
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
    """The tightest CPU quota of this process's cgroup and those above it, in cores rounded
    up: cgroup v2's `cpu.max`, cgroup v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us` (in
    the hierarchy with the cpu controller, found in `CGROUP_MOUNTS`); None where none is
    set (v1's quota -1, v2's "max") or none can be read (not Linux). A cgroup not visible
    under its hierarchy's mount (a container sees its own as the root) is skipped."""
    try:
        lines = CGROUP_MEMBERSHIP.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            limits.append(_tightest(CGROUP_ROOT, path, _v2_quota))
        elif "cpu" in controllers.split(",") and (mount := _v1_cpu_mount()) is not None:
            shown_root, point = mount
            limits.append(_tightest(point, _below(path, shown_root), _v1_quota))
    return min((limit for limit in limits if limit is not None), default=None)


def _tightest(top: Path, path: str, quota: Callable[[Path], int | None]) -> int | None:
    """The tightest `quota` of the cgroup at `path` of the hierarchy mounted at `top` and of
    those above it, up to `top`; None where none has one."""
    folder = top / path.strip().lstrip("/")
    limits = []
    while True:
        if (limit := quota(folder)) is not None:
            limits.append(limit)
        if folder == top or top not in folder.parents:
            break
        folder = folder.parent
    return min(limits, default=None)


def _v2_quota(folder: Path) -> int | None:
    """The quota of a cgroup v2 `folder`: its `cpu.max` ("150000 100000": 1.5 cores)."""
    fields = _read(folder / "cpu.max").split()
    return _cores(*fields) if len(fields) == 2 else None


def _v1_quota(folder: Path) -> int | None:
    """The quota of a cgroup v1 `folder` of the cpu hierarchy: its `cpu.cfs_quota_us` (-1:
    none) over its `cpu.cfs_period_us`."""
    return _cores(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _cores(quota_text: str, period_text: str) -> int | None:
    """A quota of `quota_text` microseconds every `period_text`, in cores rounded up; None
    for no quota ("max", -1) or text that does not read as one."""
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _read(file: Path) -> str:
    """The text of a cgroup file; "" where it is missing or unreadable."""
    try:
        return file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _v1_cpu_mount() -> tuple[str, Path] | None:
    """The cgroup v1 hierarchy with the cpu controller (`/sys/fs/cgroup/cpu,cpuacct`, say):
    the cgroup it shows as its root (a container's own, without a cgroup namespace) and
    where it is mounted; None where none is (cgroup v2 only, not Linux)."""
    try:
        lines = CGROUP_MOUNTS.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return None
    for line in lines:
        # ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [TAGS...] - TYPE SOURCE SUPER-OPTIONS
        mount, _, filesystem = line.partition(" - ")
        fields, kind = mount.split(), [*filesystem.split(), "", "", ""]
        if len(fields) >= 5 and kind[0] == "cgroup" and "cpu" in kind[2].split(","):
            return _unescaped(fields[3]), Path(_unescaped(fields[4]))
    return None


def _unescaped(field: str) -> str:
    """A mountinfo path, its space, tab, newline and backslash written in octal (`\\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal[1], 8)), field)


def _below(path: str, shown_root: str) -> str:
    """A cgroup's `path` as its hierarchy shows it, below `shown_root`, the cgroup at its
    mount point; `path` where it lies elsewhere (then not visible there)."""
    root = shown_root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path
