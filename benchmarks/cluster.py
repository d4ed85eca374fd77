"""What sharding over Ray costs: frames/s of N file cameras in one process and on 1, 2 and
3 simulated nodes (`ray.cluster_utils.Cluster` on this machine), and the failover time.

On one machine the ceiling is its cores, whatever the node count: the figure that matters
is the scheduling overhead (the cluster run's extra seconds per frame and per camera, same
run, same clips, against the single-process run), not a speed-up. Failover: a node is
removed once its shard has published a few frames; the time until the moved cameras
publish again (survivors start a new pipeline for them: detector build included).

    python -m benchmarks.cluster [--cameras 6] [--frames 60] [--nodes 1 2 3]

Needs Ray (pip install -e '.[ray]'); uses no database (zmq events only). Prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.build import build_run_detector
from pipeline.cluster.engine import runtime_env
from pipeline.cluster.run import ClusterRun
from pipeline.config import PipelineConfig, parse_config
from pipeline.runner import Pipeline
from sinks.event_bus.subscriber import EventSubscriber
from tests.conftest import free_port, write_video


def config(clips: list[Path], port: int, realtime: bool = False) -> PipelineConfig:
    cams = "".join(
        f"  - {{id: cam{i}, source: {{type: file, path: '{p}', realtime: {realtime}}}}}\n"
        for i, p in enumerate(clips)
    )
    return parse_config(
        f"cameras:\n{cams}"
        "detector: {model: person_ssdlite, device: cpu, batch_size: 4}\n"
        f"sinks:\n  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{port}'}}\n"
        "cluster: {engine: ray, address: auto, resources_per_shard: {num_cpus: 0.5, num_gpus: 1}}\n"
    )


def single_process(clips: list[Path]) -> tuple[float, int]:
    cfg = config(clips, free_port()).model_copy(update={"cluster": None})
    summary = Pipeline(cfg).run()
    return summary.elapsed_s, summary.frames


def on_cluster(ray: Any, nodes: int, clips: list[Path]) -> tuple[float, float, int]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env=runtime_env(), logging_level="ERROR")
    try:
        summary = ClusterRun(config(clips, free_port())).run()
        return summary.elapsed_s, summary.setup_s, summary.frames
    finally:
        ray.shutdown()
        cluster.shutdown()


def failover(ray: Any, clips: list[Path]) -> tuple[float, float]:
    """Seconds from a node's removal until the coordinator moved its cameras, and until
    the first of them published again."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1})
    cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env=runtime_env(), logging_level="ERROR")
    port = free_port()
    subscriber = EventSubscriber(f"tcp://127.0.0.1:{port}")
    run = ClusterRun(config(clips, port, realtime=True))
    runner = threading.Thread(target=run.run, daemon=True)
    try:
        runner.start()
        workers = {n.node_id: n for n in cluster.worker_nodes}
        victim = None
        while victim is None:
            event = subscriber.receive(timeout_s=60)
            if event is None:
                raise RuntimeError("no event in 60 s")
            for shard in run.status():
                if shard.info.node_id in workers and event.camera in shard.cameras:
                    victim = shard
        removed = time.monotonic()
        cluster.remove_node(workers[victim.info.node_id], allow_graceful=False)
        moved_at = resumed_at = None
        while resumed_at is None:
            event = subscriber.receive(timeout_s=60)
            if moved_at is None and run.moves:
                moved_at = time.monotonic()
            if event is not None and event.camera in victim.cameras and run.moves:
                resumed_at = time.monotonic()
        runner.join()
        return (moved_at or resumed_at) - removed, resumed_at - removed
    finally:
        subscriber.close()
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        clips = [
            write_video(Path(tmp) / f"cam{i}.mp4", frames=args.frames, size=(320, 240))
            for i in range(args.cameras)
        ]
        build_run_detector(config(clips, 1).detector)  # the ONNX network, built once
        # Before and after the cluster runs, the faster counts: the machine may be busy.
        before_s, frames = single_process(clips)
        rows = [(nodes, *on_cluster(ray, nodes, clips)) for nodes in args.nodes]
        after_s, _ = single_process(clips)
        base_s = min(before_s, after_s)
        print(f"{args.cameras} cameras x {args.frames} frames (320x240), person_ssdlite on CPU")
        print(
            f"single process: {frames / before_s:.1f} frames/s before the cluster runs, "
            f"{frames / after_s:.1f} after (the faster is the baseline)"
        )
        print(
            f"{'run':<16}{'frames/s':>10}{'setup s':>9}{'overhead ms/frame':>19}"
            f"{'ms/frame/camera':>17}"
        )
        print(f"{'single process':<16}{frames / base_s:>10.1f}{'':>9}{0:>19.2f}{0:>17.2f}")
        for nodes, elapsed, setup, done in rows:
            overhead_ms = (elapsed - base_s) / done * 1000
            print(
                f"{f'{nodes} node(s)':<16}{done / elapsed:>10.1f}{setup:>9.1f}"
                f"{overhead_ms:>19.2f}{overhead_ms / args.cameras:>17.3f}"
            )
        moved, resumed = failover(ray, clips[: min(4, len(clips))])
        print(
            f"failover: cameras moved {moved:.1f} s after the node went, "
            f"publishing again after {resumed:.1f} s"
        )


if __name__ == "__main__":
    main()
