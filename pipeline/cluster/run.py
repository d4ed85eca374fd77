"""A cluster run in the driver, with `Pipeline`'s interface (`stop`, `run`), so that
`python -m pipeline run` runs a `cluster:` config as it runs any other: it joins the
cluster, starts and places the shards, opens the event forwarder, hands the shards to the
coordinator (`pipeline.cluster.coordinator`) and merges their summaries."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from pipeline.cluster.changes import CameraChanges
from pipeline.cluster.coordinator import POLL_S, Coordinator, camera_sources, sql_sink
from pipeline.cluster.engine import (
    ClusterError,
    JoinStopped,
    connect,
    require_ray,
    shard_count,
    shard_options,
)
from pipeline.cluster.forwarder import EventForwarder, ForwarderError
from pipeline.cluster.local import (
    MachineResources,
    local_resources_problem,
    started_ray,
    this_machine,
)
from pipeline.cluster.lost_runs import mark_recorded
from pipeline.cluster.merge import merge_summaries
from pipeline.cluster.mqtt_status import PipelineStatus
from pipeline.cluster.reporting import ShardStatus
from pipeline.cluster.resume import prepare_database
from pipeline.cluster.shard import Shard, ShardInfo
from pipeline.cluster.status import start_board
from pipeline.config import PipelineConfig, ZmqSinkConfig
from pipeline.preflight import check_sink_before_work
from pipeline.stops import STOP_RUNNING
from pipeline.summary import ProgressCallback, RunSummary
from sinks.base import SinkError, SinkStopped

log = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 120.0
"""Longest wait for the cluster to place a shard (a node with its resources free)."""
SHARD_THREADS = 16
"""Calls a shard answers at once: its runs (its own cameras, and those it took over from
shards that died), and progress and stop while they run."""


class _Stopped(Exception):
    """The run's stop came while the driver set the run up: nothing further starts."""


class ClusterRun:
    """Runs a config's cameras on shard actors of a Ray cluster (docs/cluster.md).

    `run` joins the cluster, starts the shards, has the coordinator assign each camera to
    one of them (`pipeline.cluster.assign`) and watch them, forwards their events to the
    configured endpoint and merges their summaries. `stop` (set by Ctrl-C) stops every
    shard as it stops a `Pipeline`; set while the driver sets the run up (joining Ray,
    placing the shards, opening the database, waiting for a broker or subscribers), it ends
    the run there, with every camera not started. Setup problems raise ClusterError before
    any frame is read.
    """

    def __init__(self, config: PipelineConfig, *, config_source: str = "") -> None:
        if config.cluster is None:
            raise ValueError("a ClusterRun needs a config with a cluster section")
        self.config = config
        self.cluster = config.cluster
        self.config_source = config_source
        self.stop = threading.Event()
        self.stop_does = STOP_RUNNING
        """What a stop does (for the line Ctrl-C prints): every shard stops as a run does."""
        self._token = f"cluster {uuid.uuid4().hex[:12]}"
        self.coordinator = Coordinator(config, self._token, config_source, self.stop, _log_line)

    @property
    def restarts(self) -> Counter[str]:
        """How many times each camera moved to another shard (its shard died)."""
        return self.coordinator.restarts

    @property
    def moves(self) -> list[str]:
        """What moved where when a shard died, one line each (in the summary)."""
        return self.coordinator.moves

    @property
    def changes(self) -> CameraChanges:
        """Cameras added and removed while running (`cameras add|remove`)."""
        return self.coordinator.changes

    def status(self) -> list[ShardStatus]:
        """Each live shard's node, GPUs and cameras (those it runs now)."""
        return self.coordinator.status()

    def run(
        self,
        on_progress: ProgressCallback | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> RunSummary:
        """Runs until every camera is done or `stop` is set; see `Pipeline.run`."""
        say = self.coordinator.say = on_start or _log_line
        setup_started = time.monotonic()
        ray = require_ray()
        if not ray.is_initialized():  # a Ray this run starts: `address: local` is this machine
            self._check_fit(this_machine())
        if (zmq := _zmq_sink(self.config)) is not None:
            check_sink_before_work(zmq)  # its endpoint is the forwarder's, bound here
        try:
            self._unless_stopped()
            joined = connect(ray, self.cluster.address, self.stop)
            try:
                if joined is not None:  # what it offers now (memory was taken or freed since)
                    self._check_fit(started_ray(ray))
                return self._run(ray, say, on_progress, setup_started)
            finally:
                if joined is not None:
                    joined.leave()
        except (_Stopped, JoinStopped):
            setup_s = time.monotonic() - setup_started
            return RunSummary.stopped_in_setup(camera_sources(self.config), setup_s)

    def _unless_stopped(self) -> None:
        """Raises _Stopped when the run's stop is set: checked before each step of the
        set-up, so that a stop during one starts nothing further (no shard builds its
        detector, a first run's ONNX export and int8 calibration included)."""
        if self.stop.is_set():
            raise _Stopped

    def _run(
        self,
        ray: Any,
        say: Callable[[str], None],
        on_progress: ProgressCallback | None,
        setup_started: float,
    ) -> RunSummary:
        """Starts the shards, runs the cameras on them until done and merges their
        summaries; the shards and the run's actors are gone when it returns."""
        self._unless_stopped()  # Ray took its time to start
        camera_ids = [c.id for c in self.config.cameras]
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        count = shard_count(self.cluster, ray.cluster_resources(), nodes, len(camera_ids))
        board = start_board(ray, self._token.split()[-1])
        self.changes.open(ray, self._token.split()[-1])
        actors = self._start_shards(ray, count)
        mqtt_status: PipelineStatus | None = None
        sql = sql_sink(self.config)
        try:
            infos = self._placed(ray, actors)
            self._check_before_work(ray, actors)  # before the database or a broker is touched
            self._unless_stopped()
            if sql is not None:
                try:
                    prepare_database(sql.url, self.stop)
                except SinkStopped:  # a silent server or a locked file: not waited out
                    raise _Stopped from None
                # before any shard replays its spool, which leaves a lost run's rows out
                mark_recorded(sql.url, sql.spool_dir, self.stop)  # what earlier runs left
            mqtt_status = PipelineStatus(self.config, self.stop)
            self.coordinator.on_lost = mqtt_status.camera_offline  # a dead shard cannot say it
            forwarder = self._forwarder(say)
            try:
                self._unless_stopped()  # the broker's or the subscribers' wait ended by it
                shards = list(zip(actors, infos, strict=True))
                running = self.coordinator.begin(ray, shards, forwarder, board)
                started = time.monotonic()
                done, unreported = self.coordinator.watch(ray, running, on_progress, forwarder)
                elapsed = time.monotonic() - started
            finally:
                if forwarder is not None:
                    forwarder.close()
        finally:
            self.changes.close(ray)
            for actor in [*actors, board]:
                ray.kill(actor)
            if mqtt_status is not None:
                mqtt_status.close()  # after every shard's sinks: the run is over
        if sql is not None:  # the dead shards' runs the database or the stop left unmarked
            mark_recorded(sql.url, sql.spool_dir, self.stop)
        summary = merge_summaries(
            [c.id for c in self.coordinator.config.cameras],  # with those added while running
            done,
            elapsed_s=elapsed,
            setup_s=started - setup_started,
            unreported=unreported,
            outputs=([forwarder.describe()] if forwarder is not None else []) + self.moves,
            interrupted=self.stop.is_set(),
        )
        return self.changes.settle(summary)

    def _check_fit(self, machine: MachineResources | None) -> None:
        """Raises ClusterError when the shards of an `address: local` run cannot all be
        placed on `machine` (`local_resources_problem`), rather than wait for Ray."""
        if problem := local_resources_problem(self.cluster, machine, len(self.config.cameras)):
            raise ClusterError(problem)

    def _start_shards(self, ray: Any, count: int) -> list[Any]:
        remote = ray.remote(Shard).options(
            max_concurrency=SHARD_THREADS,
            max_restarts=0,
            scheduling_strategy="SPREAD",
            **shard_options(self.cluster.resources_per_shard),
        )
        return [remote.remote(f"shard-{i}") for i in range(count)]

    def _placed(self, ray: Any, actors: list[Any]) -> list[ShardInfo]:
        """Where each shard landed; ClusterError when the cluster cannot place them all
        within PLACEMENT_TIMEOUT_S. Waits in steps of POLL_S: a stop meanwhile raises
        _Stopped at once."""
        refs = [a.info.remote() for a in actors]
        deadline = time.monotonic() + PLACEMENT_TIMEOUT_S
        ready: list[Any] = []
        while len(ready) < len(refs) and (left := deadline - time.monotonic()) > 0:
            self._unless_stopped()
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=min(POLL_S, left))
        self._unless_stopped()
        if len(ready) < len(refs):
            raise ClusterError(
                f"cluster: {len(refs) - len(ready)} of {len(refs)} shards could not be placed "
                f"in {PLACEMENT_TIMEOUT_S:.0f} s: no node has "
                f"{shard_options(self.cluster.resources_per_shard)} free"
            )
        return list(ray.get(refs))

    def _check_before_work(self, ray: Any, actors: list[Any]) -> None:
        """Raises the `SinkError` of the first shard that could not start its work (a sink's
        output folder it could never write, on its node), before any shard builds its
        detector (`Shard.problem_before_work`)."""
        problems = ray.get([a.problem_before_work.remote(self.config) for a in actors])
        if (problem := next(filter(None, problems), None)) is not None:
            raise SinkError(problem)

    def _forwarder(self, say: Callable[[str], None]) -> EventForwarder | None:
        zmq = _zmq_sink(self.config)
        if zmq is None:
            return None
        try:
            forwarder = EventForwarder(zmq)
        except ForwarderError as exc:
            raise SinkError(str(exc)) from exc
        say(f"events of every shard: {forwarder.endpoint}")
        if zmq.wait_for_subscribers:
            forwarder.wait_for_subscribers(zmq.wait_for_subscribers, zmq.wait_timeout_s, self.stop)
        return forwarder


def _zmq_sink(config: PipelineConfig) -> ZmqSinkConfig | None:
    """The config's `zmq` sink: the forwarder binds its endpoint (docs/cluster.md)."""
    return next((s for s in config.sinks if isinstance(s, ZmqSinkConfig)), None)


def _log_line(line: str) -> None:
    log.info("%s", line)
