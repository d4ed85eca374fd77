"""An `address: local` cluster whose shards cannot fit on this machine is refused at once,
at the resource's YAML path, from the config and what the machine has (no Ray started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pipeline.cluster.run
from pipeline.cli import EXIT_FAILED, main
from pipeline.cluster.engine import ClusterError
from pipeline.cluster.local import MachineResources, gpu_count, local_resources_problem
from pipeline.cluster.run import ClusterRun
from pipeline.config import parse_config
from pipeline.config.cluster import ClusterConfig
from tests.conftest import write_video

NO_GPU = MachineResources(cpus=2, gpus=0, memory_mb=16_000)
ONE_GPU = MachineResources(cpus=16, gpus=1, memory_mb=128_000)


def cluster(**section: Any) -> ClusterConfig:
    return ClusterConfig.model_validate({"engine": "ray", **section})


def test_a_gpu_per_shard_on_a_machine_without_one_is_refused_at_num_gpus() -> None:
    config = cluster(resources_per_shard={"num_gpus": 1})
    assert local_resources_problem(config, NO_GPU, cameras=3) == (
        "cluster.resources_per_shard.num_gpus: 1 GPU(s) asked for, but this machine has 0 "
        "(address: local starts Ray on this machine alone)"
    )


def test_more_shards_than_the_machine_s_gpus_hold_are_refused_with_the_sum() -> None:
    config = cluster(shards=2, resources_per_shard={"num_gpus": 1})
    assert local_resources_problem(config, ONE_GPU, cameras=3) == (
        "cluster.resources_per_shard.num_gpus: 2 shards × 1 = 2 GPU(s) asked for, but this "
        "machine has 1 (address: local starts Ray on this machine alone)"
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
        ({"num_cpus": 4}, "num_cpus: 4 CPU core(s) asked for, but this machine has 2 "),
        ({"memory_mb": 20_000.5}, "memory_mb: 20000.5 MB of memory asked for, but this machine has 16000 "),
        ({"resources": {"camera_node": 1}}, "resources.camera_node: a local Ray (address: local) has no custom resources"),
    ],
)  # fmt: skip
def test_cpus_memory_or_custom_resources_a_local_ray_lacks_are_refused_at_their_field(
    resources: dict[str, Any], message: str
) -> None:
    problem = local_resources_problem(cluster(resources_per_shard=resources), NO_GPU, cameras=1)
    assert problem is not None
    assert problem.startswith(f"cluster.resources_per_shard.{message}")


def test_a_remote_cluster_or_gpus_that_cannot_be_counted_are_left_to_ray() -> None:
    gpu = {"resources_per_shard": {"num_gpus": 1, "resources": {"camera_node": 1}}}
    for address in ("auto", "ray://head:10001", "head:6379"):
        assert local_resources_problem(cluster(address=address, **gpu), NO_GPU, 1) is None
    uncounted = MachineResources(cpus=2, gpus=None, memory_mb=16_000)
    assert (
        local_resources_problem(cluster(resources_per_shard={"num_gpus": 1}), uncounted, 1) is None
    )


def test_gpus_are_counted_from_nvidia_device_files_and_cuda_visible_devices() -> None:
    dev = ["null", "nvidiactl", "nvidia0", "nvidia1", "nvidia-uvm", "nvidia-modeset"]
    assert gpu_count(dev, None) == 2
    assert gpu_count(dev, "1") == 1
    assert gpu_count(dev, "") == 0
    assert gpu_count(dev, "0,1,2,3") == 2


class NotStartedRay:
    """What `ray` says before this process started one."""

    def __init__(self, initialized: bool = False) -> None:
        self.initialized = initialized

    def is_initialized(self) -> bool:
        return self.initialized


def _config(tmp_path: Path) -> Any:
    clip = write_video(tmp_path / "gate.mp4", frames=2)
    return parse_config(
        f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
        "cluster: {engine: ray, resources_per_shard: {num_gpus: 1}}\n"
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
        "error: cams.yaml: cluster.resources_per_shard.num_gpus: 2 GPU(s) asked for, but this "
        "machine has 0 (address: local starts Ray on this machine alone)"
    ]
