"""The cores this process may use: its affinity (taskset, a container's cpuset), at most its
cgroup CPU quota (v2 or v1) rounded up; not the machine's cores. What each thread count follows is
tested with its consumer (ONNX Runtime, the decoders, x264, the host copy); here, the rule
itself, and the consumers in a process really pinned to one core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.cores
from pipeline.cores import (
    cgroup_cpu_limit,
    cores_each,
    cores_line,
    cores_owner,
    machine_cores,
    usable_cores,
)
from tests.cores import HOST_CORES, pin_cores

ROOT = Path(__file__).resolve().parents[2]


def test_a_process_pinned_to_two_cores_of_a_bigger_machine_counts_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin_cores(monkeypatch, 2)
    assert usable_cores() == 2 and machine_cores() == HOST_CORES
    assert cores_line() == f"{HOST_CORES} logical cores, 2 usable here"


@pytest.mark.parametrize(("sharing", "each"), [(1, 8), (2, 4), (3, 2), (8, 1), (16, 1)])
def test_processes_sharing_the_usable_cores_each_take_an_even_share_of_at_least_one(
    monkeypatch: pytest.MonkeyPatch, sharing: int, each: int
) -> None:
    pin_cores(monkeypatch, 8)  # a cluster's shards on one machine, given 8 of its cores
    assert cores_each(sharing) == each


def test_processes_on_one_kernel_and_cpus_share_their_cores_whatever_their_ips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Containers with IPs of their own on one host see one kernel: their shards share its
    cores unless their CPUs differ (cpusets), or a quota of their own caps them."""
    boot = tmp_path / "boot_id"
    monkeypatch.setattr(pipeline.cores, "BOOT_ID", boot)
    boot.write_text("5f3d5521-2f71\n", encoding="ascii")
    pin_cores(monkeypatch, 4)
    first = cores_owner()
    assert first is not None and first == cores_owner()
    pin_cores(monkeypatch, 2)  # another container's cpuset
    assert cores_owner() not in (None, first)
    pin_cores(monkeypatch, 4)
    boot.write_text("9e8d7c6b-0a1b\n", encoding="ascii")  # another host
    assert cores_owner() not in (None, first)
    monkeypatch.setattr(pipeline.cores, "cgroup_cpu_limit", lambda: 2)
    assert cores_owner() is None  # its container's quota: told by its IP
    monkeypatch.setattr(pipeline.cores, "cgroup_cpu_limit", lambda: None)
    boot.unlink()  # not Linux
    assert cores_owner() is None


def test_a_process_that_may_use_every_core_names_them_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin_cores(monkeypatch, HOST_CORES)
    assert cores_line() == f"{HOST_CORES} logical cores"


def test_without_an_affinity_the_machine_s_cores_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # not Linux
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    monkeypatch.setattr(pipeline.cores, "cgroup_cpu_limit", lambda: None)
    assert usable_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown
    assert usable_cores() == machine_cores() == 1


@pytest.fixture
def cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cgroup v2 tree under tmp_path that this process belongs to at /app/worker."""
    membership = tmp_path / "self_cgroup"
    membership.write_text("0::/app/worker\n")
    root = tmp_path / "cgroup"
    (root / "app" / "worker").mkdir(parents=True)
    monkeypatch.setattr(pipeline.cores, "CGROUP_ROOT", root)
    monkeypatch.setattr(pipeline.cores, "CGROUP_MEMBERSHIP", membership)
    monkeypatch.setattr(pipeline.cores, "CGROUP_MOUNTS", tmp_path / "no_mountinfo")
    return root


def test_a_cpu_quota_counts_in_cores_rounded_up(cgroup: Path) -> None:
    (cgroup / "app" / "worker" / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert cgroup_cpu_limit() == 2
    (cgroup / "app" / "worker" / "cpu.max").write_text("20000 100000\n")
    assert cgroup_cpu_limit() == 1


def test_the_tightest_quota_above_the_process_s_cgroup_counts(cgroup: Path) -> None:
    (cgroup / "cpu.max").write_text("max 100000\n")
    (cgroup / "app" / "cpu.max").write_text("300000 100000\n")
    (cgroup / "app" / "worker" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit() == 3
    (cgroup / "cpu.max").write_text("100000 100000\n")
    assert cgroup_cpu_limit() == 1


def test_a_container_that_sees_its_own_cgroup_as_the_root_reads_the_root_s_quota(
    cgroup: Path,
) -> None:
    # Without a cgroup namespace the process is named by the host's path, which is not
    # under the container's /sys/fs/cgroup; its own cgroup is mounted there.
    pipeline.cores.CGROUP_MEMBERSHIP.write_text("0::/docker/0123abcd\n")
    (cgroup / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_limit() == 2


@pytest.mark.parametrize(
    ("membership", "cpu_max"),
    [
        ("0::/app/worker\n", "max 100000\n"),  # no quota
        ("0::/app/worker\n", None),  # no cpu controller
        ("0::/app/worker\n", "lots\n"),
        ("0::/app/worker\n", "0 100000\n"),
        ("4:cpu,cpuacct:/app/worker\n", "100000 100000\n"),  # v1, its hierarchy not mounted
        (None, "100000 100000\n"),  # not Linux
    ],
)
def test_no_quota_or_none_that_reads_sets_no_limit(
    cgroup: Path, membership: str | None, cpu_max: str | None
) -> None:
    if membership is None:
        pipeline.cores.CGROUP_MEMBERSHIP.unlink()
    else:
        pipeline.cores.CGROUP_MEMBERSHIP.write_text(membership)
    if cpu_max is not None:
        (cgroup / "app" / "worker" / "cpu.max").write_text(cpu_max)
    assert cgroup_cpu_limit() is None


def test_a_quota_below_the_affinity_limits_the_usable_cores(
    cgroup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    (cgroup / "app" / "cpu.max").write_text("250000 100000\n")
    assert usable_cores() == 3
    (cgroup / "app" / "cpu.max").write_text("max 100000\n")
    assert usable_cores() == 8


V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "33 31 0:30 {root} {point} rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
)


@pytest.fixture
def cgroup_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cpu,cpuacct hierarchy of cgroup v1 (and a cgroup v2 one without controllers, as
    systemd's hybrid layout has), mounted under tmp_path, this process in its /app/worker;
    where it is mounted."""
    point = tmp_path / "cgroup v1" / "cpu,cpuacct"  # a space, as mountinfo escapes it
    (point / "app" / "worker").mkdir(parents=True)
    mounts = tmp_path / "mountinfo"
    mounts.write_text(V1_MOUNTS.format(root="/", point=str(point).replace(" ", "\\040")))
    membership = tmp_path / "self_cgroup"
    membership.write_text("5:cpuset:/\n4:cpu,cpuacct:/app/worker\n1:name=systemd:/\n0::/\n")
    monkeypatch.setattr(pipeline.cores, "CGROUP_ROOT", tmp_path / "unified")
    monkeypatch.setattr(pipeline.cores, "CGROUP_MEMBERSHIP", membership)
    monkeypatch.setattr(pipeline.cores, "CGROUP_MOUNTS", mounts)
    return point


def v1_quota(folder: Path, quota: int, period: int = 100000) -> None:
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")


def test_a_cgroup_v1_cpu_quota_counts_in_cores_rounded_up(cgroup_v1: Path) -> None:
    v1_quota(cgroup_v1 / "app" / "worker", 150000)  # docker --cpus 1.5 on a cgroup v1 host
    assert cgroup_cpu_limit() == 2
    v1_quota(cgroup_v1 / "app" / "worker", 20000, period=50000)
    assert cgroup_cpu_limit() == 1


def test_the_tightest_cgroup_v1_quota_above_the_process_s_cgroup_counts(cgroup_v1: Path) -> None:
    v1_quota(cgroup_v1, -1)  # -1: no quota
    v1_quota(cgroup_v1 / "app", 300000)
    v1_quota(cgroup_v1 / "app" / "worker", -1)
    assert cgroup_cpu_limit() == 3
    v1_quota(cgroup_v1 / "app" / "worker", -1, period=0)
    v1_quota(cgroup_v1 / "app", -1)
    assert cgroup_cpu_limit() is None


def test_a_container_that_sees_its_own_cgroup_v1_as_the_hierarchy_s_root_reads_its_quota(
    cgroup_v1: Path, tmp_path: Path
) -> None:
    # Without a cgroup namespace the process is named by the host's path; its own cgroup
    # is mounted at the container's /sys/fs/cgroup/cpu,cpuacct, which mountinfo tells.
    pipeline.cores.CGROUP_MEMBERSHIP.write_text("4:cpu,cpuacct:/docker/0123abcd\n")
    pipeline.cores.CGROUP_MOUNTS.write_text(
        V1_MOUNTS.format(root="/docker/0123abcd", point=str(cgroup_v1).replace(" ", "\\040"))
    )
    v1_quota(cgroup_v1, 200000)
    assert cgroup_cpu_limit() == 2
    pipeline.cores.CGROUP_MEMBERSHIP.write_text("4:cpu,cpuacct:/docker/0123abcd/job\n")
    (cgroup_v1 / "job").mkdir()
    v1_quota(cgroup_v1 / "job", 100000)
    assert cgroup_cpu_limit() == 1


def test_a_cgroup_v1_quota_below_the_affinity_limits_the_usable_cores(
    cgroup_v1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    v1_quota(cgroup_v1 / "app", 250000)
    assert usable_cores() == 3
    assert cores_each(2) == 1  # two shards on this machine share the quota's 3 cores
    v1_quota(cgroup_v1 / "app", -1)
    assert usable_cores() == 8


PINNED = """
import os
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from detector.host_copy import copy_threads
from detector.onnx_runtime import threads_per_worker
from pipeline.build import torch_cpu_threads
from pipeline.cores import usable_cores
from pipeline.sources import decoder_threads_for
from sinks.video.encoding import Encoding
print(usable_cores(), threads_per_worker(1), decoder_threads_for(1), copy_threads(),
      Encoding().encoder_threads, torch_cpu_threads())
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a process that may run on 2 cores or more, and may pin itself to one",
)
def test_a_process_pinned_to_one_core_sizes_every_pool_for_one() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PINNED],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # cores, ONNX Runtime threads, decoder threads (1: one camera on one core), host copy
    # threads, x264 threads, torch threads
    assert result.stdout.split() == ["1", "1", "1", "1", "1", "1"]
