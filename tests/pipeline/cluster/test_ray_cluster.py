"""Cluster runs on Ray's own multi-node test cluster (`ray.cluster_utils.Cluster`): three
nodes on this machine, each declaring one logical GPU. Every Ray test is in this module,
sharing one cluster (starting one costs seconds)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pipeline.config import PipelineConfig, parse_config
from pipeline.summary import RunSummary
from sinks.event_bus.schema import Event
from sinks.event_bus.subscriber import EventSubscriber
from tests.conftest import free_port, write_video
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

NODES = 3
CAMERAS = 6
FRAMES = 12
DETECTIONS_PER_FRAME = 3  # score_threshold 0 and max_detections 3: every frame has 3 boxes


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Three nodes with one logical GPU each, and this process connected as the driver."""
    from pipeline.cluster.engine import runtime_env

    test_cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1}
    )
    for _ in range(NODES - 1):
        test_cluster.add_node(num_cpus=2, num_gpus=1)
    test_cluster.wait_for_nodes()
    ray.init(address=test_cluster.address, runtime_env=runtime_env(), logging_level="WARNING")
    yield test_cluster
    ray.shutdown()
    test_cluster.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {f"cam{i}": write_video(folder / f"cam{i}.mp4", frames=FRAMES) for i in range(CAMERAS)}


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    with pg_schema() as url:
        yield url


def cluster_config(
    clips: dict[str, Path], pg_url: str, port: int, **cluster: str
) -> PipelineConfig:
    cams = "".join(f"  - {{id: {cid}, source: '{path}'}}\n" for cid, path in clips.items())
    extra = "".join(f"  {key}: {value}\n" for key, value in cluster.items())
    return parse_config(
        f"cameras:\n{cams}"
        "detector: {model: person_ssdlite, device: cpu, batch_size: 4, score_threshold: 0.0,"
        " max_detections: 3}\n"
        "tracker: {sigma_h: 0.0, t_min: 2}\n"
        "sinks:\n"
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{port}', wait_for_subscribers: 1}}\n"
        f"  - {{type: sql, url: '{pg_url}'}}\n"
        "cluster:\n  engine: ray\n  address: auto\n"
        "  resources_per_shard: {num_cpus: 0.5, num_gpus: 1}\n" + extra
    )


class Collector:
    """Every event on the endpoint, received in a thread until each camera's stream ended."""

    def __init__(self, endpoint: str, cameras: int) -> None:
        self.events: list[Event] = []
        self.subscriber = EventSubscriber(endpoint)
        self._cameras = cameras
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        ended = 0
        while ended < self._cameras:
            event = self.subscriber.receive(timeout_s=120)
            if event is None:
                return
            self.events.append(event)
            ended += event.type == "stream.ended"

    def join(self) -> list[Event]:
        self._thread.join(timeout=30)
        self.subscriber.close()
        return self.events


def rows_per_frame(pg_url: str) -> Counter[tuple[str, int]]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT camera, frame, count(*) FROM detections GROUP BY 1, 2")
            )
            return Counter({(camera, frame): n for camera, frame, n in rows})
    finally:
        engine.dispose()


def run_cluster(config: PipelineConfig) -> RunSummary:
    from pipeline.cluster.run import ClusterRun

    return ClusterRun(config, config_source="cluster.yaml").run()


def test_every_frame_of_every_camera_is_processed_once_across_the_shards(
    cluster: object, clips: dict[str, Path], pg_url: str
) -> None:
    port = free_port()
    collector = Collector(f"tcp://127.0.0.1:{port}", CAMERAS)
    summary = run_cluster(cluster_config(clips, pg_url, port))
    events = collector.join()

    assert summary.ok, summary
    assert {c: s.frames for c, s in summary.cameras.items()} == {c: FRAMES for c in clips}
    shards = {o.split(" on ")[0] for o in summary.outputs if o.startswith("shard-")}
    assert len(shards) > 1, summary.outputs  # the cameras were spread over the nodes
    expected = {(c, f): DETECTIONS_PER_FRAME for c in clips for f in range(FRAMES)}
    assert rows_per_frame(pg_url) == expected
    frames: dict[str, list[int]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    for event in events:
        seqs[event.camera].append(event.seq)
        if event.type == "detections":
            frames[event.camera].append(event.frame)
    assert {c: sorted(f) for c, f in frames.items()} == {c: list(range(FRAMES)) for c in clips}
    assert {c: s for c, s in seqs.items()} == {c: list(range(len(seqs[c]))) for c in clips}
