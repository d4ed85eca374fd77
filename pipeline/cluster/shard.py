"""A shard: one Ray actor, on one node (next to its GPU), running today's `Pipeline` for
the cameras the coordinator gives it. Frames never leave the node; only results do (the
events through the driver's forwarder, the rows straight into PostgreSQL). A shard builds
its detector once, at its first run with a camera to read: the runs it is given later
(cameras added while running, cameras taken over from a shard that died) use that one."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.cluster.ended import Ended, StreamTally
from pipeline.cluster.resume import Resume, ResumeSink
from pipeline.cluster.waits import StoppedWaiting, unless_stopped
from pipeline.config import (
    DetectorConfig,
    MqttSinkConfig,
    PipelineConfig,
    SqlSinkConfig,
    ZmqSinkConfig,
)
from pipeline.cores import cores_owner
from pipeline.summary import CameraStats, RunSummary
from pipeline.types import LabelMap
from sinks.base import Sink, SinkError, SinkStopped
from sinks.event_stream import ResumesCameras

if TYPE_CHECKING:
    from pipeline.runner import FrameDetector, Pipeline

log = logging.getLogger(__name__)

STOP_POLL_S = 0.1
"""How often a running pipeline is told of a `stop` that came to the shard."""

BUILD_THREAD = "shard-detector"
"""The name of the thread that builds a shard's detector while its run waits for it."""

PUBLISHER_WAIT_S = 60.0
"""How long a shard's publisher waits for the driver's forwarder to subscribe before it
sends (events sent before would be lost, and `seq` would show a gap)."""


@dataclass(frozen=True)
class ShardInfo:
    """Where a shard runs, for the start lines and `cluster status`."""

    name: str
    node_ip: str
    node_id: str
    pid: int
    gpus: tuple[str, ...]
    cores_owner: str | None = None
    """Its process's `pipeline.cores.cores_owner` (None: not known, or its container's)."""

    @property
    def machine(self) -> str:
        """What the shards whose threads share this one's cores have alike: the kernel and
        CPUs they run on (`cores_owner`), else the node's IP (a one-machine cluster's nodes
        share it)."""
        return self.cores_owner or f"IP {self.node_ip}"

    def describe(self) -> str:
        gpus = f", GPU {','.join(self.gpus)}" if self.gpus else ""
        return f"{self.name} on {self.node_ip} (node {self.node_id[:8]}{gpus}, pid {self.pid})"


@dataclass(frozen=True)
class ShardProgress:
    """What a shard tells of its cameras as they run: each one's counts so far, and each
    one whose stream ended, as its `StreamTally` counted it (whatever sinks the config
    has)."""

    counts: tuple[CameraStats, ...]
    ended: dict[str, Ended]


class Shard:
    """Runs the cameras it is given with `Pipeline`; made a Ray actor by the coordinator
    (with threads, so that `progress` and `stop` answer while `run` runs)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._stats: dict[str, CameraStats] = {}
        self._ended: dict[str, Ended] = {}
        """The cameras whose stream ended, in any of the shard's runs."""
        self._lock = threading.Lock()
        self._pipelines: dict[str, Pipeline] = {}
        """The pipeline running each camera (`stop_camera`)."""
        self._removed: set[str] = set()
        self._detector: tuple[DetectorConfig, FrameDetector] | None = None
        """The shard's detector and the config it was built from (`_detector_for`)."""
        self._building = threading.Lock()
        self._runs = itertools.count(1)
        """Numbers the shard's runs (each one's MQTT client id)."""

    def info(self) -> ShardInfo:
        """Where this shard runs."""
        import ray

        context = ray.get_runtime_context()
        return ShardInfo(
            self.name,
            ray.util.get_node_ip_address(),
            context.get_node_id(),
            os.getpid(),
            tuple(str(g) for g in context.get_accelerator_ids().get("GPU", [])),
            cores_owner(),
        )

    def publisher_endpoint(self) -> str:
        """A TCP endpoint on this node, free a moment ago, for the shard's event publisher
        (the forwarder connects to it before the shard binds it)."""
        ip = self.info().node_ip
        with socket.socket() as probe:
            probe.bind((ip, 0))
            return f"tcp://{ip}:{probe.getsockname()[1]}"

    def labels(self, detector: DetectorConfig, shards_here: int = 1) -> tuple[str, ...]:
        """The class names of the shard's detector for `detector` (built now if the shard
        has none yet, for one of `shards_here` shards on this machine: `run`), background
        and unnamed columns left out: what the zone and line labels of a camera added to it
        are checked against."""
        built = self._detector_for(detector, shards_here)
        return tuple(built.labels.names[i] for i in built.labels.classes(built.background))

    def problem_before_work(self, config: PipelineConfig) -> str | None:
        """The one line `check_before_work` says of `config` on this shard's node (a sink's
        output folder is written there); None when the shard could start its work. The
        driver asks each shard before any builds its detector."""
        from pipeline.preflight import check_before_work
        from pipeline.web import ServerError

        try:
            check_before_work(_checked_here(config))
        except (SinkError, ServerError) as exc:
            return str(exc)
        return None

    def run(
        self,
        config: PipelineConfig,
        camera_ids: Sequence[str],
        run_config: str,
        publisher_endpoint: str | None,
        resume: dict[str, Resume] | None = None,
        cameras_here: int | None = None,
        shards_here: int = 1,
    ) -> RunSummary:
        """Runs `camera_ids` of `config` until they are done or `stop` is called. Their
        files and image folders are looked at first (`check_sources`, as in one process):
        where no camera is left, the run ends there without a detector, each camera failed
        (the database and the event sinks hear so, as the shard's tally). A stop while the
        shard builds its detector (a first run's ONNX export and int8 calibration take many
        seconds) ends the run at once, every camera not started: the build goes on alone,
        and the driver ends the actor at the run's end.

        `run_config` is what the SQL sink records as the run's config (the coordinator finds
        the shard's rows by it); `resume`: cameras taken over from a dead shard;
        `cameras_here`: the cameras of every shard on this machine, these among them, for
        the decoders' threads (`make_sources`; None: these); `shards_here`:
        the live shards on this machine, this one among them: a detector built
        now takes their share of its cores for its CPU threads (`DetectorOptions.sharing`).
        """
        from pipeline.preflight import check_before_work
        from pipeline.runner import Pipeline
        from pipeline.sink_factory import SinkContext, build_sink, queue_bound
        from pipeline.source_check import check_sources, make_sources
        from pipeline.workers import QueueBound

        started = time.monotonic()
        resume = resume or {}
        wanted = set(camera_ids)
        check_before_work(_checked_here(config))  # every sink's folders, on this node
        # The database and the event sinks (the bus, MQTT) get only what they lack of a
        # camera taken over; the other sinks are built by the pipeline as in one process.
        kept = [s for s in config.sinks if not isinstance(s, SqlSinkConfig | EventSinkConfig)]
        shard_config = config.model_copy(
            update={
                "cameras": [c for c in config.cameras if c.id in wanted],
                "sinks": kept,
                "cluster": None,
                "http": None,
            }
        )
        with self._lock:
            removed = self._removed & wanted
        checked = check_sources(make_sources(shard_config.cameras, cameras_here), skip=removed)
        detector: FrameDetector | None = None
        if not checked.none_left(removed):  # else the pipeline ends the run at once
            try:  # a stop that came as the run was handed over need not wait for the build
                detector = unless_stopped(
                    lambda: self._detector_for(config.detector, shards_here),
                    self._stop,
                    BUILD_THREAD,
                )
            except StoppedWaiting:
                names = {cid: source.name for cid, source in checked.sources.items()}
                return RunSummary.stopped_in_setup(names, time.monotonic() - started)
        run = next(self._runs)
        snapshot_dir = getattr(config.snapshots, "dir", None)
        # `stop` ends a sink's wait for a broker that does not answer, as in one process;
        # without a detector no frame comes, whose labels the sinks would name
        labels = LabelMap() if detector is None else detector.labels
        context = SinkContext(labels, run_config, snapshot_dir, shard=True, stop=self._stop)
        sinks: list[tuple[Sink, QueueBound]] = []
        try:
            for sink_config in config.sinks:
                if isinstance(sink_config, SqlSinkConfig):
                    through = {c: r.stored_through for c, r in resume.items()}
                    tracks = {c: r.stored_tracks for c, r in resume.items()}
                    scene = {c: r.stored_scene for c, r in resume.items()}
                    built = ResumeSink(build_sink(sink_config, context), through, tracks, scene)
                    sinks.append((built, queue_bound(sink_config)))
                elif isinstance(sink_config, EventSinkConfig):
                    shard_sink = _for_shard(sink_config, publisher_endpoint, f"{self.name}-{run}")
                    events = build_sink(shard_sink, context)
                    sinks.append((events, queue_bound(sink_config)))
                    assert isinstance(events, ResumesCameras)
                    for camera_id, r in resume.items():
                        # MQTT's events are the bus's, numbered alike: the forwarder's
                        # record of the bus's subscribers is where both resume
                        events.resume_camera(camera_id, r.next_seq, r.published)
        except Exception as exc:
            for sink, _ in sinks:
                sink.close()
            if not isinstance(exc, SinkStopped):
                raise
            sinks = []  # the stop ended the database's opening: the run below reads nothing
        tally = StreamTally(self._stream_ended)
        pipeline = Pipeline(
            shard_config,
            config_source=run_config,
            detector=detector,
            extra_sinks=[tally],
            sized_sinks=sinks,
            sources=checked,
        )
        with self._lock:
            self._pipelines.update(dict.fromkeys(camera_ids, pipeline))
            for camera_id in self._removed & wanted:
                pipeline.stop_camera(camera_id)
        if self._stop.is_set():  # stopped while its sinks opened: it reads nothing
            pipeline.stop.set()
        stopper = threading.Thread(target=self._pass_stop, args=(pipeline,), daemon=True)
        stopper.start()
        try:
            summary = pipeline.run(on_progress=self._progress, checked=True)
        finally:
            pipeline.stop.set()
            with self._lock:
                for camera_id in camera_ids:
                    if self._pipelines.get(camera_id) is pipeline:
                        del self._pipelines[camera_id]
        # The shard's own publisher and tally are the cluster's plumbing: the forwarder
        # reports events.
        own = f"zmq {publisher_endpoint}"
        outputs = [o for o in summary.outputs if not o.startswith(own) and o != tally.describe()]
        return dataclasses.replace(summary, outputs=outputs)

    def progress(self) -> ShardProgress:
        """A copy of each camera's counts so far, and the cameras whose stream ended."""
        with self._lock:
            counts = tuple(dataclasses.replace(s) for s in self._stats.values())
            return ShardProgress(counts, dict(self._ended))

    def stop(self) -> None:
        """Stops reading; what was read is still processed (as Ctrl-C in one process)."""
        self._stop.set()

    def stop_camera(self, camera_id: str) -> None:
        """Stops one camera (`cameras remove`), also when its run has not begun yet: its
        stream ends as at the end of its file; the shard's other cameras go on."""
        with self._lock:
            self._removed.add(camera_id)
            pipeline = self._pipelines.get(camera_id)
        if pipeline is not None:
            pipeline.stop_camera(camera_id)

    def _detector_for(self, config: DetectorConfig, shards_here: int) -> FrameDetector:
        """The shard's detector, built from `config` by its first caller, its CPU threads
        a share of the cores for one of `shards_here` shards on this machine; later callers
        with the same config (the shard's other runs) share it, and wait while it is being
        built (shards started or gone since leave its threads as they were). A different
        config builds a new one, which later callers then share.
        Concurrent runs may call the one detector at once: ONNX Runtime's sessions and
        torch's inference take calls from several threads."""
        from pipeline.build import build_run_detector

        with self._building:
            if self._detector is None or self._detector[0] != config:
                built = build_run_detector(config, None, shards_here)
                self._detector = (config, built)
            return self._detector[1]

    def _pass_stop(self, pipeline: Pipeline) -> None:
        """Passes `stop` on to a pipeline until its run is over (it sets its own then)."""
        while not pipeline.stop.wait(STOP_POLL_S):
            if self._stop.is_set():
                pipeline.stop.set()

    def _progress(self, stats: CameraStats) -> None:
        with self._lock:
            self._stats[stats.camera_id] = stats

    def _stream_ended(self, camera_id: str, ended: Ended) -> None:
        with self._lock:
            self._ended[camera_id] = ended


EventSinkConfig = ZmqSinkConfig | MqttSinkConfig
"""The sinks sending each camera's events (`sinks.event_stream`): a shard builds them
itself, to resume the cameras it takes over on them."""


def _for_shard(sink: EventSinkConfig, publisher_endpoint: str | None, run: str) -> EventSinkConfig:
    """An event sink as a shard's run `run` runs it. The event publisher: bound to a port
    of the shard's node, where the driver's forwarder takes its events, and waiting for the
    forwarder. MQTT: under a client id of the run's own (a broker disconnects a client
    when another logs in under its id)."""
    if isinstance(sink, MqttSinkConfig):
        return sink.model_copy(update={"client_id": f"{sink.client_id}-{run}"})
    if publisher_endpoint is None:
        return sink
    return sink.model_copy(
        update={
            "endpoint": publisher_endpoint,
            "wait_for_subscribers": 1,
            "wait_timeout_s": PUBLISHER_WAIT_S,
        }
    )


def _checked_here(config: PipelineConfig) -> PipelineConfig:
    """What a shard checks of `config` before its work, on its node: all but the `zmq`
    sinks, whose endpoint the driver's forwarder binds (and the driver checks)."""
    sinks = [s for s in config.sinks if not isinstance(s, ZmqSinkConfig)]
    return config.model_copy(update={"sinks": sinks})
