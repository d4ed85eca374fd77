"""A process given fewer cores than its machine has, as in a container or under taskset."""

from __future__ import annotations

import os

import pytest

import pipeline.cores

HOST_CORES = 64
"""The cores of the machine the tests pretend to be pinned on: more than any test gives."""


def pin_cores(monkeypatch: pytest.MonkeyPatch, cores: int) -> None:
    """This process may run on `cores` CPUs (its affinity) of a `HOST_CORES`-core machine
    (`os.cpu_count()`), under no cgroup CPU quota, until the test ends."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: max(HOST_CORES, cores))
    monkeypatch.setattr(pipeline.cores, "cgroup_cpu_limit", lambda: None)
