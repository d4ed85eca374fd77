"""The `cluster:` section, and what a cluster run says before any frame when it cannot run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.exit_codes import EXIT_USAGE
from pipeline.cluster.engine import ClusterError, require_ray, shard_count
from pipeline.config import ConfigError, parse_config
from pipeline.config.cluster import ClusterConfig
from tests.conftest import write_video

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def config_text(video: Path, cluster: str, sinks: str = "") -> str:
    return (
        f"cameras:\n  - {{id: a, source: '{video}'}}\n  - {{id: b, source: '{video}'}}\n"
        f"sinks:\n{sinks or f'  - {{type: sql, url: {PG!r}}}'}\ncluster:\n{cluster}"
    )


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0")  # the config checks only that a non-empty file is there
    return path


def test_a_cluster_section_is_validated_without_importing_ray(video: Path) -> None:
    code = (
        "import sys; from pipeline.config import parse_config; "
        f"c = parse_config({config_text(video, '  engine: ray')!r}); "
        "print(c.cluster.engine, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ray", "False"]


def test_the_cluster_section_gets_its_defaults(video: Path) -> None:
    cluster = parse_config(config_text(video, "  engine: ray\n")).cluster
    assert cluster is not None
    assert (cluster.address, cluster.shards, cluster.resources_per_shard.num_gpus) == (
        "local",
        "auto",
        0.0,
    )


@pytest.mark.parametrize(
    ("cluster", "said"),
    [
        ("  engine: spark\n", "cluster.engine"),
        ("  engine: ray\n  shards: 0\n", "cluster.shards"),
        ("  engine: ray\n  address: somewhere\n", "cluster.address"),
        ("  engine: ray\n  address: ':6379'\n", "cluster.address.*a host and a port"),
        ("  engine: ray\n  address: '127.0.0.1:abc'\n", "cluster.address.*a host and a port"),
        ("  engine: ray\n  address: 'ray://'\n", "cluster.address.*a host and a port"),
        ("  engine: ray\n  resources_per_shard: {num_gpus: -1}\n", "num_gpus"),
        ("  engine: ray\n  resources_per_shard: {gpus: 1}\n", "gpus"),
        (
            "  engine: ray\n  resources_per_shard: {resources: {CPU: 1}}\n",
            r"cluster.resources_per_shard.resources .*num_cpus and num_gpus",
        ),
        (
            "  engine: ray\n  resources_per_shard: {num_cpus: 0.00001}\n",
            r"cluster.resources_per_shard.num_cpus .*0 or at least 0.0001",
        ),
        (
            "  engine: ray\n  resources_per_shard: {resources: {camera_node: 0.00001}}\n",
            r"cluster.resources_per_shard.resources.camera_node .*0 or at least 0.0001",
        ),
    ],
)
def test_a_bad_cluster_field_is_named(video: Path, cluster: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        parse_config(config_text(video, cluster))


def test_sqlite_is_refused_on_a_cluster_with_the_reason(tmp_path: Path, video: Path) -> None:
    sinks = f"  - {{type: sql, url: 'sqlite:///{tmp_path / 'd.db'}'}}"
    with pytest.raises(
        ConfigError, match=r"sinks\[0\] \(sql\): a cluster run needs PostgreSQL"
    ) as refused:
        parse_config(config_text(video, "  engine: ray\n", sinks))
    assert refused.value.problems[0].startswith("cluster (line 6): sinks[0] (sql): ")


def test_auto_shards_are_one_per_gpu_else_one_per_node_and_no_more_than_cameras() -> None:
    gpu = ClusterConfig.model_validate({"engine": "ray", "resources_per_shard": {"num_gpus": 1}})
    assert shard_count(gpu, {"GPU": 4.0, "CPU": 32.0}, nodes=2, cameras=10) == 4
    assert shard_count(gpu, {"GPU": 4.0}, nodes=2, cameras=3) == 3
    cpu = ClusterConfig.model_validate({"engine": "ray"})
    assert shard_count(cpu, {"CPU": 32.0}, nodes=5, cameras=10) == 5
    fixed = ClusterConfig.model_validate({"engine": "ray", "shards": 8})
    assert shard_count(fixed, {"GPU": 1.0}, nodes=1, cameras=6) == 6


def test_without_ray_a_cluster_run_says_what_to_install_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is missing
    with pytest.raises(ClusterError) as raised:
        require_ray()
    assert str(raised.value) == (
        "cluster: Ray is not installed; pip install -e '.[ray]' (or pip install 'ray>=2.9')"
    )


def test_run_without_ray_stops_before_any_frame_with_that_line(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    video = write_video(tmp_path / "clip.mp4", frames=3)
    config.write_text(config_text(video, "  engine: ray\n"))
    code = (
        "import sys; sys.modules['ray'] = None; from pipeline.cli import main; "
        f"sys.exit(main(['run', {str(config)!r}, '--no-progress']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout) == (EXIT_USAGE, "")
    assert out.stderr.splitlines() == [
        "error: cluster: Ray is not installed; pip install -e '.[ray]' (or pip install 'ray>=2.9')"
    ]


def test_the_http_server_is_refused_on_a_cluster(video: Path) -> None:
    text = config_text(video, "  engine: ray\n") + "http: {port: 9464}\n"
    with pytest.raises(ConfigError, match="http: the HTTP server does not run on a cluster yet"):
        parse_config(text)


def test_an_mqtt_sink_without_a_zmq_sink_is_refused_on_a_cluster_at_its_place(
    video: Path,
) -> None:
    mqtt = "  - {type: mqtt, url: 'mqtt://127.0.0.1:1883'}"
    with pytest.raises(ConfigError) as refused:
        parse_config(config_text(video, "  engine: ray\n", f"{mqtt}\n"))
    assert len(str(refused.value).splitlines()) == 1
    assert "sinks[0] (mqtt): on a cluster the mqtt sink needs a zmq sink too" in str(refused.value)
    zmq = "  - {type: zmq, endpoint: 'tcp://127.0.0.1:5556'}"
    assert parse_config(config_text(video, "  engine: ray\n", f"{mqtt}\n{zmq}\n")).cluster
