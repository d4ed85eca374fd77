"""The coordinator: a cluster run in the driver, with `Pipeline`'s interface (`stop`,
`run`), so that `python -m pipeline run` runs a `cluster:` config as it runs any other."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.cluster.assign import assign
from pipeline.cluster.engine import ClusterError, connect, require_ray, shard_count, shard_options
from pipeline.cluster.forwarder import EventForwarder, ForwarderError
from pipeline.cluster.merge import merge_summaries
from pipeline.cluster.shard import Shard, ShardInfo
from pipeline.config import PipelineConfig, ZmqSinkConfig
from pipeline.summary import CameraStats, ProgressCallback, RunSummary
from sinks.base import SinkError

log = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 120.0
"""Longest wait for the cluster to place a shard (a node with its resources free)."""
POLL_S = 0.5
"""How often the coordinator looks at the shards (progress, deaths, a stop)."""
SHARD_THREADS = 4
"""Calls a shard answers at once: its run, and progress and stop while it runs."""


@dataclass
class _Running:
    """A shard at work: the actor, where it is, its cameras and the pending run."""

    actor: Any
    info: ShardInfo
    cameras: list[str]
    result: Any


class ClusterRun:
    """Runs a config's cameras on shard actors of a Ray cluster (docs/cluster.md).

    `run` joins the cluster, starts the shards, assigns each camera to one of them
    (`pipeline.cluster.assign`), forwards their events to the configured endpoint and
    merges their summaries. `stop` (set by Ctrl-C) stops every shard as it stops a
    `Pipeline`. Setup problems raise ClusterError before any frame is read.
    """

    def __init__(self, config: PipelineConfig, *, config_source: str = "") -> None:
        if config.cluster is None:
            raise ValueError("a ClusterRun needs a config with a cluster section")
        self.config = config
        self.cluster = config.cluster
        self.config_source = config_source
        self.stop = threading.Event()

    def run(
        self,
        on_progress: ProgressCallback | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> RunSummary:
        """Runs until every camera is done or `stop` is set; see `Pipeline.run`."""
        say = on_start or (lambda line: log.info("%s", line))
        setup_started = time.monotonic()
        ray = require_ray()
        connected = connect(ray, self.cluster.address)
        try:
            return self._run(ray, say, on_progress, setup_started)
        finally:
            if connected:
                ray.shutdown()

    def _run(
        self,
        ray: Any,
        say: Callable[[str], None],
        on_progress: ProgressCallback | None,
        setup_started: float,
    ) -> RunSummary:
        camera_ids = [c.id for c in self.config.cameras]
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        count = shard_count(self.cluster, ray.cluster_resources(), nodes, len(camera_ids))
        actors = self._start_shards(ray, count)
        try:
            infos = self._placed(ray, actors)
            plan = assign(camera_ids, [info.name for info in infos])
            forwarder = self._forwarder(say)
            try:
                running = self._start_runs(ray, actors, infos, plan, forwarder)
                started = time.monotonic()
                done, lost, errors = self._watch(ray, running, on_progress)
                elapsed = time.monotonic() - started
            finally:
                if forwarder is not None:
                    forwarder.close()
        finally:
            for actor in actors:
                ray.kill(actor)
        return merge_summaries(
            camera_ids,
            done,
            elapsed_s=elapsed,
            setup_s=started - setup_started,
            lost=lost,
            outputs=[forwarder.describe()] if forwarder is not None else [],
            errors=errors,
            interrupted=self.stop.is_set(),
        )

    def _start_shards(self, ray: Any, count: int) -> list[Any]:
        remote = ray.remote(Shard).options(
            max_concurrency=SHARD_THREADS,
            max_restarts=0,
            scheduling_strategy="SPREAD",
            **shard_options(self.cluster.resources_per_shard),
        )
        return [remote.remote(f"shard-{i}") for i in range(count)]

    def _placed(self, ray: Any, actors: list[Any]) -> list[ShardInfo]:
        """Where each shard landed; ClusterError when the cluster cannot place them all."""
        refs = [a.info.remote() for a in actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PLACEMENT_TIMEOUT_S)
        if len(ready) < len(refs):
            raise ClusterError(
                f"cluster: {len(refs) - len(ready)} of {len(refs)} shards could not be placed "
                f"in {PLACEMENT_TIMEOUT_S:.0f} s: no node has "
                f"{shard_options(self.cluster.resources_per_shard)} free"
            )
        return list(ray.get(refs))

    def _forwarder(self, say: Callable[[str], None]) -> EventForwarder | None:
        zmq = next((s for s in self.config.sinks if isinstance(s, ZmqSinkConfig)), None)
        if zmq is None:
            return None
        try:
            forwarder = EventForwarder(zmq)
        except ForwarderError as exc:
            raise SinkError(str(exc)) from exc
        say(f"events of every shard: {forwarder.endpoint}")
        if zmq.wait_for_subscribers:
            forwarder.wait_for_subscribers(zmq.wait_for_subscribers, zmq.wait_timeout_s)
        return forwarder

    def _start_runs(
        self,
        ray: Any,
        actors: list[Any],
        infos: list[ShardInfo],
        plan: dict[str, list[str]],
        forwarder: EventForwarder | None,
    ) -> dict[Any, _Running]:
        running: dict[Any, _Running] = {}
        for actor, info in zip(actors, infos, strict=True):
            cameras = plan[info.name]
            if not cameras:
                continue
            endpoint = None
            if forwarder is not None:
                endpoint = ray.get(actor.publisher_endpoint.remote())
                forwarder.connect(endpoint)
            result = actor.run.remote(self.config, cameras, self.config_source, endpoint)
            running[result] = _Running(actor, info, cameras, result)
            log.info("%s: cameras %s", info.describe(), ", ".join(cameras))
        return running

    def _watch(
        self, ray: Any, running: dict[Any, _Running], on_progress: ProgressCallback | None
    ) -> tuple[list[tuple[ShardInfo, RunSummary]], dict[str, CameraStats], list[str]]:
        """Waits for every shard's run, passing on progress and `stop`."""
        done: list[tuple[ShardInfo, RunSummary]] = []
        lost: dict[str, CameraStats] = {}
        errors: list[str] = []
        stopping = False
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            if self.stop.is_set() and not stopping:
                stopping = True
                for shard in running.values():
                    shard.actor.stop.remote()
            for ref in ready:
                shard = running.pop(ref)
                try:
                    done.append((shard.info, ray.get(ref)))
                except ray.exceptions.RayTaskError as exc:
                    raise _cause(exc) from None
                except ray.exceptions.RayError as exc:
                    why = f"{shard.info.describe()} died: {_first_line(exc)}"
                    errors.append(why)
                    for camera_id in shard.cameras:
                        lost[camera_id] = _lost(self.config, camera_id, why)
            if on_progress is not None:
                _pass_progress(ray, running.values(), on_progress)
        return done, lost, errors


def _pass_progress(ray: Any, shards: Any, on_progress: ProgressCallback) -> None:
    refs = [s.actor.progress.remote() for s in shards]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=POLL_S)
    for ref in ready:
        try:
            for stats in ray.get(ref):
                on_progress(stats)
        except ray.exceptions.RayError:
            continue  # a shard that died is reported by its run


def _cause(exc: Any) -> BaseException:
    """The exception a shard's run raised (a detector's or sink's error, said as in one
    process), else the Ray error itself."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _lost(config: PipelineConfig, camera_id: str, why: str) -> CameraStats:
    camera = next(c for c in config.cameras if c.id == camera_id)
    return CameraStats(
        camera_id, str(getattr(camera.source, "path", "")), error=f"camera {camera_id}: {why}"
    )
