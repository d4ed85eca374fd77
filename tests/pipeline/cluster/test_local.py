"""An `address: local` cluster whose shards cannot fit on this machine is refused at once,
at the resource's YAML path, from the config and what Ray offers on this machine: as Ray
resolves it before it starts, and as the Ray started says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import pipeline.cluster.run
from pipeline.cli import EXIT_FAILED, main
from pipeline.cluster.engine import ClusterError
from pipeline.cluster.local import (
    MachineResources,
    local_resources_problem,
    this_machine,
)
from pipeline.cluster.run import ClusterRun
from pipeline.config import parse_config
from pipeline.config.cluster import ClusterConfig
from tests.conftest import write_video
from tests.cores import pin_cores
from tests.pipeline.cli_runs import ROOT

NO_GPU = MachineResources(cpus=2, gpus=0, memory_mb=16_000)
ONE_GPU = MachineResources(cpus=16, gpus=1, memory_mb=128_000)


def cluster(**section: Any) -> ClusterConfig:
    return ClusterConfig.model_validate({"engine": "ray", **section})


def test_a_gpu_per_shard_on_a_machine_without_one_is_refused_at_num_gpus() -> None:
    config = cluster(resources_per_shard={"num_gpus": 1})
    assert local_resources_problem(config, NO_GPU, cameras=3) == (
        "cluster.resources_per_shard.num_gpus: 1 GPU(s) asked for, but Ray on this machine "
        "offers 0 (address: local starts Ray on this machine alone)"
    )


def test_more_shards_than_the_machine_s_gpus_hold_are_refused_with_the_sum() -> None:
    config = cluster(shards=2, resources_per_shard={"num_gpus": 1})
    assert local_resources_problem(config, ONE_GPU, cameras=3) == (
        "cluster.resources_per_shard.num_gpus: 2 shards × 1 = 2 GPU(s) asked for, but Ray on "
        "this machine offers 1 (address: local starts Ray on this machine alone)"
    )
    # no more shards than cameras: one camera, one shard, which fits
    assert local_resources_problem(config, ONE_GPU, cameras=1) is None
    # auto: as many shards as the GPUs hold
    assert (
        local_resources_problem(cluster(resources_per_shard={"num_gpus": 0.5}), ONE_GPU, 3) is None
    )


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"num_cpus": 4}, "num_cpus: 4 CPU core(s) asked for, but Ray on this machine offers 2 ("),
        ({"memory_mb": 20_000.5}, "memory_mb: 20000.5 MB of memory asked for, but Ray on this machine offers 16000 (the memory free, less its object store) ("),
        ({"resources": {"camera_node": 1}}, "resources.camera_node: a local Ray (address: local) has no custom resources"),
    ],
)  # fmt: skip
def test_cpus_memory_or_custom_resources_a_local_ray_lacks_are_refused_at_their_field(
    resources: dict[str, Any], message: str
) -> None:
    problem = local_resources_problem(cluster(resources_per_shard=resources), NO_GPU, cameras=1)
    assert problem is not None
    assert problem.startswith(f"cluster.resources_per_shard.{message}")


def test_a_remote_cluster_or_a_machine_ray_cannot_tell_of_is_left_to_ray() -> None:
    gpu = {"resources_per_shard": {"num_gpus": 1, "resources": {"camera_node": 1}}}
    for address in ("auto", "ray://head:10001", "head:6379"):
        assert local_resources_problem(cluster(address=address, **gpu), NO_GPU, 1) is None
    # Ray not installed (`validate` says so), or its figures not found where they were
    assert local_resources_problem(cluster(resources_per_shard={"num_gpus": 1}), None, 1) is None


@pytest.mark.parametrize("field", ["num_cpus", "num_gpus", "memory_mb"])
def test_a_shard_just_over_what_ray_offers_here_is_refused_and_one_just_under_accepted(
    field: str,
) -> None:
    pytest.importorskip("ray")
    machine = this_machine()  # Ray's own figures for the node it would start, not started
    assert machine is not None
    has = {"num_cpus": machine.cpus, "num_gpus": machine.gpus, "memory_mb": machine.memory_mb}
    if has[field] < 1:
        pytest.skip(f"Ray offers no {field} on this machine")
    over = cluster(shards=1, resources_per_shard={field: has[field] + 0.01})
    problem = local_resources_problem(over, machine, cameras=1)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"cluster.resources_per_shard.{field}: ")
    assert f"Ray on this machine offers {has[field]:.4f}".rstrip("0").rstrip(".") in problem
    under = cluster(shards=1, resources_per_shard={field: has[field] - 0.01})
    assert local_resources_problem(under, machine, cameras=1) is None


def test_a_local_ray_offers_the_cores_this_process_may_use_and_less_memory_than_there_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """os.cpu_count() is the host's, and Ray's own count reads neither taskset nor a cgroup
    v2 cpuset: the Ray `address: local` starts is given the usable cores, as the shards'
    threads count them. Ray keeps part of the free memory for its object store."""
    pytest.importorskip("ray")
    pin_cores(monkeypatch, 3)  # of a 64-core machine: taskset, or a container's cpuset
    machine = this_machine()
    assert machine is not None
    assert machine.cpus == 3
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6
    assert 0 < machine.memory_mb < total_mb


class NotStartedRay:
    """What `ray` says before this process started one."""

    def __init__(self, initialized: bool = False) -> None:
        self.initialized = initialized

    def is_initialized(self) -> bool:
        return self.initialized


def _config(tmp_path: Path, resources: str = "{num_gpus: 1}") -> Any:
    clip = write_video(tmp_path / "gate.mp4", frames=2)
    return parse_config(
        f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
        f"cluster: {{engine: ray, resources_per_shard: {resources}}}\n"
    )


def test_run_refuses_a_local_cluster_s_unplaceable_shard_before_starting_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def connect(*args: object) -> bool:
        raise AssertionError("the driver started Ray")

    monkeypatch.setattr(pipeline.cluster.run, "require_ray", NotStartedRay)
    monkeypatch.setattr(pipeline.cluster.run, "this_machine", lambda: NO_GPU)
    monkeypatch.setattr(pipeline.cluster.run, "connect", connect)
    with pytest.raises(ClusterError) as refused:
        ClusterRun(_config(tmp_path)).run()
    assert str(refused.value).startswith("cluster.resources_per_shard.num_gpus: 1 GPU(s) asked")


def test_run_in_a_process_already_connected_to_ray_leaves_placement_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Joined(Exception):
        pass

    def connect(*args: object) -> bool:
        raise Joined

    monkeypatch.setattr(pipeline.cluster.run, "require_ray", lambda: NotStartedRay(True))
    monkeypatch.setattr(pipeline.cluster.run, "this_machine", lambda: NO_GPU)
    monkeypatch.setattr(pipeline.cluster.run, "connect", connect)
    with pytest.raises(Joined):
        ClusterRun(_config(tmp_path)).run()


class StartedRay(NotStartedRay):
    """A Ray this process starts (`connect`), offering less memory than foreseen."""

    def __init__(self) -> None:
        super().__init__()
        self.shut_down = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 16.0, "GPU": 1.0, "memory": 3_000e6, "object_store_memory": 1_000e6}

    def shutdown(self) -> None:
        self.shut_down = True


def test_run_refuses_at_once_a_shard_the_started_ray_offers_less_memory_for_than_foreseen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's own processes take memory before it counts what is free: a shard that fitted
    the figures foreseen by a hair is refused, not left to wait out the placement timeout."""

    def placed(*args: object) -> None:
        raise AssertionError("the shards were started")

    started = StartedRay()
    monkeypatch.setattr(pipeline.cluster.run, "require_ray", lambda: started)
    foreseen = MachineResources(cpus=16, gpus=1, memory_mb=3_050)
    monkeypatch.setattr(pipeline.cluster.run, "this_machine", lambda: foreseen)
    joined = SimpleNamespace(leave=started.shutdown)
    monkeypatch.setattr(pipeline.cluster.run, "connect", lambda *args: joined)
    monkeypatch.setattr(ClusterRun, "_run", placed)
    config = _config(tmp_path, "{num_gpus: 1, memory_mb: 3020}")  # fits what was foreseen
    with pytest.raises(ClusterError) as refused:
        ClusterRun(config).run()
    assert str(refused.value).startswith(
        "cluster.resources_per_shard.memory_mb: 3020 MB of memory asked for, but Ray on this "
        "machine offers 3000 (the memory free, less its object store)"
    )
    assert started.shut_down


def test_validate_refuses_a_local_cluster_s_unplaceable_shard_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        "pipeline.cluster.local.this_machine", lambda: MachineResources(2, 0, 16_000)
    )
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "gate.mp4", frames=2)
    Path("cams.yaml").write_text(
        "cameras:\n  - {id: gate, source: gate.mp4}\n"
        "detector: {model: person_ssdlite, weights: none, device: cpu, runtime: torch}\n"
        "cluster:\n  engine: ray\n  resources_per_shard: {num_gpus: 2}\n"
    )
    assert main(["validate", "cams.yaml", "--quick"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: cams.yaml: cluster.resources_per_shard.num_gpus: 2 GPU(s) asked for, but Ray on "
        "this machine offers 0 (address: local starts Ray on this machine alone)"
    ]


SIGTERM_AS_RAY_STARTS = """
import atexit, os, signal, sys, threading
import ray
from pipeline.cli import main

init, returned = ray.init, []

def signalled_init(*args, **kwargs):
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    init(*args, **kwargs)
    returned.append(True)

def say_whether_init_returned():  # before Ray's own exit handler, registered before it
    with open(sys.argv[2], "w") as said:
        said.write("returned" if returned else "not returned")

ray.init = signalled_init
atexit.register(say_whether_init_returned)
sys.exit(main(["run", "--no-progress", sys.argv[1]]))
"""
"""`run` of a config, SIGTERM coming 0.3 s into `ray.init`; writes to a file whether
`ray.init` had returned when the process exited."""


def test_sigterm_while_a_local_ray_starts_ends_the_run_stopped_without_waiting_for_ray(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ray")
    clip = write_video(tmp_path / "gate.mp4", frames=2)
    config = tmp_path / "local.yaml"
    config.write_text(
        f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
        "cluster: {engine: ray, address: local, resources_per_shard: {num_cpus: 1}}\n"
    )
    said = tmp_path / "init.txt"
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_AS_RAY_STARTS, str(config), str(said)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 143, done.stderr  # not Ray's own SIGTERM handler's exit (15)
    # Ray's own warnings left out
    ours = [line for line in done.stderr.splitlines() if line and "WARNING" not in line]
    assert ours == ["SIGTERM: stopping; finishing queued frames (again to force)"]
    assert "gate" in done.stdout and "not started: stopped before it opened" in done.stdout
    assert said.read_text() == "not returned"  # the run did not wait for Ray to start
