"""The coordinator's watch over a cluster run's shards, in the driver: it starts runs of
cameras on the live shards, waits for them, passes on progress and `stop`, hands the
cameras of a shard that died to the survivors (`pipeline.cluster.resume`), answers
`cameras add|remove` and publishes the status board (`pipeline.cluster.reporting`,
docs/cluster.md). A camera whose stream had ended before its shard died, as the shard
told, is not moved (`pipeline.cluster.ended`)."""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.cluster.assign import assign, shard_of
from pipeline.cluster.changes import LABELS_WAIT_S, CameraChanges, LabelsUnavailable
from pipeline.cluster.desk import Answer, CameraRequest
from pipeline.cluster.ended import ended_cameras, final_stats
from pipeline.cluster.forwarder import EventForwarder
from pipeline.cluster.lost_runs import mark_lost
from pipeline.cluster.reporting import BoardReporter, Reported, ShardStatus, pass_progress
from pipeline.cluster.resume import Resume, Stored, stored_rows
from pipeline.cluster.shard import ShardInfo
from pipeline.cluster.waits import StoppedWaiting
from pipeline.config import PipelineConfig, SqlSinkConfig
from pipeline.summary import CameraStats, ProgressCallback, RunSummary
from sinks.event_bus.resumption import Published

log = logging.getLogger(__name__)

POLL_S = 0.5
"""How often the coordinator looks at the shards (progress, deaths, a stop)."""


@dataclass
class _Running:
    """A shard at work: the actor, where it is, its cameras, the pending run and where
    the run publishes its events (None without a `zmq` sink)."""

    actor: Any
    info: ShardInfo
    cameras: list[str]
    result: Any
    run_config: str
    endpoint: str | None = None


class Coordinator:
    """The live shards of one cluster run and the runs of cameras on them.

    `begin` starts each shard's cameras; `watch` then runs until every run is done,
    moving the cameras of a shard that died (at most `max_restarts` times each) and
    serving the run's desk. `config` grows with the cameras added while running.
    """

    def __init__(
        self,
        config: PipelineConfig,
        token: str,
        config_source: str,
        stop: threading.Event,
        say: Callable[[str], None],
    ) -> None:
        if config.cluster is None:
            raise ValueError("a Coordinator needs a config with a cluster section")
        self.config = config
        self.cluster = config.cluster
        self.config_source = config_source
        self.stop = stop
        self.say = say
        self.on_lost: Callable[[str], None] = lambda camera_id: None
        """Told each camera that is lost (its shard died and it cannot move)."""
        self.restarts: Counter[str] = Counter()
        """How many times each camera moved to another shard (its shard died)."""
        self.moves: list[str] = []
        """What moved where when a shard died, one line each (in the summary)."""
        self.changes = CameraChanges(config.detector)
        """Cameras added and removed while running (`cameras add|remove`)."""
        self._token = token
        self._runs_like = f"% ({token} run %"
        """The SQL `LIKE` pattern of the configs of this run's shards' runs (`_start`)."""
        self._live = {c.id: c.live for c in config.cameras}
        self._runs = 0
        self._alive: dict[str, tuple[Any, ShardInfo]] = {}
        self._running: list[_Running] = []
        self._reporter: BoardReporter | None = None
        """Publishes to the run's status board (`begin` builds it)."""
        self._reported = Reported()
        """Each camera's counts, and whether its stream ended, as its shard last told."""

    def begin(
        self,
        ray: Any,
        shards: list[tuple[Any, ShardInfo]],
        forwarder: EventForwarder | None,
        board: Any,
    ) -> dict[Any, _Running]:
        """Starts the cameras of each shard (`assign`); returns the runs, for `watch`."""
        self._reporter = BoardReporter(board, self._token, self.config_source)
        self._alive = {info.name: (actor, info) for actor, info in shards}
        plan = assign([c.id for c in self.config.cameras], list(self._alive))
        running: dict[Any, _Running] = {}
        for name, cameras in plan.items():
            if cameras:
                shard = self._start(ray, name, cameras, forwarder, {})
                running[shard.result] = shard
                self.say(f"{shard.info.describe()}: cameras {', '.join(cameras)}")
        return running

    def _serve_changes(
        self, ray: Any, running: dict[Any, _Running], forwarder: EventForwarder | None
    ) -> None:
        """Answers the `cameras add|remove` requests waiting at the run's desk."""
        for ticket, request in self.changes.requests(ray):
            if request.action == "remove":
                known = [c.id for c in self.config.cameras]  # an earlier request may add
                answer = self.changes.remove(ray, request.camera_ids, known, running.values())
            else:
                answer = self._add(ray, request, running, forwarder)
            self.changes.answer(ticket, answer)

    def _add(
        self,
        ray: Any,
        request: CameraRequest,
        running: dict[Any, _Running],
        forwarder: EventForwarder | None,
    ) -> Answer:
        """Runs the cameras of `request` on the shards they hash to (none moves)."""
        known = [c.id for c in self.config.cameras]
        problems = self.changes.add_problems(
            request.cameras,
            known,
            stopping=self.stop.is_set(),
            shards=len(self._alive),
            labels=functools.partial(self._shard_labels, ray),
        )
        if problems:
            return Answer(problems=(*problems, "no camera was added"))
        cameras = [*self.config.cameras, *request.cameras]
        self.config = self.config.model_copy(update={"cameras": cameras})
        self._live.update({c.id: c.live for c in request.cameras})
        lines, failed = [], []
        for name, ids in assign([c.id for c in request.cameras], list(self._alive)).items():
            try:
                shard = self._start(ray, name, ids, forwarder, {}) if ids else None
            except ray.exceptions.RayError as exc:  # it died: the watch will see it
                failed.append(f"cameras {', '.join(ids)} not added: {name} {_first_line(exc)}")
                cameras = [c for c in self.config.cameras if c.id not in ids]
                self.config = self.config.model_copy(update={"cameras": cameras})
                continue
            if shard is not None:
                running[shard.result] = shard
                lines.append(f"cameras {', '.join(ids)} added on {shard.info.describe()}")
                self.say(lines[-1])
        self.changes.lines += lines
        return Answer(tuple(lines), tuple(failed))

    def _shard_labels(self, ray: Any, camera_id: str) -> tuple[str, ...]:
        """The class names of the detector of the shard `camera_id` hashes to (the one it
        would run with), built there if that shard has none yet; raises LabelsUnavailable."""
        name = shard_of(camera_id, list(self._alive))
        actor, info = self._alive[name]
        _, shards_here = self._on_machine(info)
        try:
            labels: tuple[str, ...] = ray.get(
                actor.labels.remote(self.config.detector, shards_here), timeout=LABELS_WAIT_S
            )
        except ray.exceptions.GetTimeoutError:
            raise LabelsUnavailable(
                f"{name} is still building its detector: add them again in a moment"
            ) from None
        except ray.exceptions.RayTaskError as exc:
            raise LabelsUnavailable(
                f"{name} cannot build its detector: {_first_line(_cause(exc))}"
            ) from None
        except ray.exceptions.RayError as exc:  # it died: the watch will see it
            raise LabelsUnavailable(f"{name} {_first_line(exc)}") from None
        return labels

    def _start(
        self,
        ray: Any,
        name: str,
        cameras: list[str],
        forwarder: EventForwarder | None,
        resume: dict[str, Resume],
    ) -> _Running:
        """Starts a run of `cameras` on the shard `name`."""
        actor, info = self._alive[name]
        endpoint = None
        if forwarder is not None:
            endpoint = ray.get(actor.publisher_endpoint.remote())
            forwarder.connect(endpoint)
        self._runs += 1
        run_config = f"{self.config_source} ({self._token} run {self._runs} on {name})"
        cameras_here, shards_here = self._on_machine(info)
        result = actor.run.remote(
            self.config, cameras, run_config, endpoint, resume, cameras_here, shards_here
        )
        return _Running(actor, info, cameras, result, run_config, endpoint)

    def _on_machine(self, shard: ShardInfo) -> tuple[int, int]:
        """The cameras the live shards on `shard`'s machine (`ShardInfo.machine`: the
        kernel and CPUs its threads run on, else its node's IP) run, as the run's cameras
        hash to them (`assign`), those removed left out; and how many live shards it has,
        `shard` among them. They share the machine's cores: each shard's decoders take
        their threads by the cameras (`decoder_threads_for`), and the detector it builds
        its CPU threads by the shards (`pipeline.cores.cores_each`). Counted as a run
        starts: the runs going on keep their threads, and a shard its detector's (their
        libraries fix them as they start).
        So every live shard counts, with cameras or not: one given its first cameras later
        (added, moved to it) then takes no cores the others' threads hold, and a shard that
        died leaves its share to those that build their detector after it."""
        cameras = [c.id for c in self.config.cameras if c.id not in self.changes.removed]
        plan = assign(cameras, list(self._alive))
        machine = {name for name, (_, info) in self._alive.items() if info.machine == shard.machine}
        machine.add(shard.name)
        return sum(len(ids) for name, ids in plan.items() if name in machine), len(machine)

    def watch(
        self,
        ray: Any,
        running: dict[Any, _Running],
        on_progress: ProgressCallback | None,
        forwarder: EventForwarder | None,
    ) -> tuple[list[tuple[ShardInfo, RunSummary]], dict[str, CameraStats]]:
        """Waits for every shard's run, passing on progress and `stop`, and hands the
        cameras of a shard that died to the survivors. Returns the runs' summaries, and
        the counts of the cameras of dead shards that no run reports: those lost, and
        those that had ended."""
        reporter = self._reporter
        if reporter is None:
            raise RuntimeError("Coordinator.watch before begin")
        done: list[tuple[ShardInfo, RunSummary]] = []
        unreported: dict[str, CameraStats] = {}
        stopping = False
        while running:
            # first: a stop as `begin` handed the shards their cameras reaches them at once
            if self.stop.is_set() and not stopping:
                stopping = True
                for shard in running.values():
                    shard.actor.stop.remote()
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in ready:
                shard = running.pop(ref)
                try:
                    done.append((shard.info, ray.get(ref)))
                except ray.exceptions.RayTaskError as exc:
                    raise _cause(exc) from None
                except ray.exceptions.RayError as exc:
                    why = f"{shard.info.describe()} died: {_first_line(exc)}"
                    log.warning("%s", why)
                    self._alive.pop(shard.info.name, None)
                    if forwarder is not None and shard.endpoint is not None:
                        forwarder.retire(shard.endpoint)  # before its cameras' events are read
                    running.update(self._take_over(ray, shard, forwarder, why, unreported))
            self._serve_changes(ray, running, forwarder)
            self._running = list(running.values())
            actors = {s.info.name: s.actor for s in running.values()}
            frames = pass_progress(ray, actors, on_progress, self._reported, POLL_S)
            reporter.publish(self.status(), frames, self.restarts, self.moves)
        return done, unreported

    def _take_over(
        self,
        ray: Any,
        dead: _Running,
        forwarder: EventForwarder | None,
        why: str,
        unreported: dict[str, CameraStats],
    ) -> list[tuple[Any, _Running]]:
        """Hands the cameras of `dead` to the surviving shards (`assign`: each to the
        survivor it hashes to), files resuming after what the database and the event bus
        have; a camera moved more than `max_restarts` times, or with no survivor, is lost.
        A camera whose stream had ended (`ended_cameras`) stays where it is, its counts in
        `unreported`. The run's stop ends a wait for the database (`unless_stopped`): the
        cameras not yet moved then stay where they are (`_stopped_moving`)."""
        sql = sql_sink(self.config)
        if sql is not None:
            mark_lost(sql.url, sql.spool_dir, dead.run_config, why, self.stop)
        kept = [c for c in dead.cameras if c not in self.changes.removed]
        on_bus = forwarder.ended if forwarder is not None else None
        sql_url = sql.url if sql is not None else None
        ends = self._reported.ended
        try:
            ended = ended_cameras(
                kept, ends, on_bus, self._live, sql_url, self._runs_like, self.stop
            )
        except StoppedWaiting:
            return self._stopped_moving(kept, why, unreported)
        for camera_id, end in ended.items():
            last = self._reported.counts.get(camera_id)
            unreported[camera_id] = final_stats(
                camera_id, end, last, _source(self.config, camera_id)
            )
        if ended:
            self.moves.append(f"{why}; cameras {', '.join(ended)} had ended: not moved")
            self.say(self.moves[-1])
        movable = []
        for camera_id in [c for c in kept if c not in ended]:
            ends.pop(camera_id, None)  # its stream starts again
            self.restarts[camera_id] += 1
            if self.restarts[camera_id] > self.cluster.max_restarts or not self._alive:
                unreported[camera_id] = _lost(self.config, camera_id, why)
                self.on_lost(camera_id)
            else:
                movable.append(camera_id)
        if not movable:
            return []
        try:
            resume = self._resume(dead, movable, forwarder)
        except StoppedWaiting:
            return self._stopped_moving(movable, why, unreported)
        started = []
        for name, cameras in assign(movable, list(self._alive)).items():
            if cameras:
                shard = self._start(ray, name, cameras, forwarder, {c: resume[c] for c in cameras})
                started.append((shard.result, shard))
                moved = f"{why}; cameras {', '.join(cameras)} moved to {name}"
                self.moves.append(moved)
                self.say(moved)
        return started

    def _stopped_moving(
        self, cameras: list[str], why: str, unreported: dict[str, CameraStats]
    ) -> list[tuple[Any, _Running]]:
        """The cameras of a dead shard that the run's stop kept from moving, the database
        not answering: stopped where it died, with the counts it last reported."""
        stopped = "the run stopped while the database did not answer"
        self.moves.append(f"{why}; cameras {', '.join(cameras)} not moved: {stopped}")
        self.say(self.moves[-1])
        for c in cameras:
            unreported[c] = self._reported.counts.get(c) or CameraStats(c, _source(self.config, c))
            self.on_lost(c)  # its dead shard left it `online`
        return []

    def _resume(
        self, dead: _Running, cameras: list[str], forwarder: EventForwarder | None
    ) -> dict[str, Resume]:
        """Where each camera taken from `dead` resumes (`pipeline.cluster.resume`);
        StoppedWaiting when the run's stop ends the wait for the database."""
        files = [c for c in cameras if not self._live[c]]
        sql = sql_sink(self.config)
        stored = {}
        if sql is not None and files:
            stored = stored_rows(sql.url, self._runs_like, files, self.stop)
        seqs = forwarder.last_seq if forwarder is not None else {}
        published = forwarder.published if forwarder is not None else {}
        return {
            c: Resume(
                stored_through=stored.get(c, Stored()).through,
                published=Published() if self._live[c] else published.get(c, Published()),
                next_seq=seqs.get(c, -1) + 1,
                stored_tracks=stored.get(c, Stored()).tracks,
                stored_scene=stored.get(c, Stored()).scene,
            )
            for c in cameras
        }

    def status(self) -> list[ShardStatus]:
        """Each live shard's node, GPUs and cameras (those it runs now)."""
        cameras: dict[str, list[str]] = {}
        for shard in self._running:
            kept = [c for c in shard.cameras if c not in self.changes.removed]
            cameras.setdefault(shard.info.name, []).extend(kept)
        return [
            ShardStatus(info, tuple(cameras.get(name, [])))
            for name, (_, info) in sorted(self._alive.items())
        ]


def sql_sink(config: PipelineConfig) -> SqlSinkConfig | None:
    """The config's SQL sink (a cluster run's shards all write into its database)."""
    return next((s for s in config.sinks if isinstance(s, SqlSinkConfig)), None)


def _cause(exc: Any) -> BaseException:
    """The exception a shard's run raised (a detector's or sink's error, said as in one
    process), else the Ray error itself."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _source(config: PipelineConfig, camera_id: str) -> str:
    camera = next(c for c in config.cameras if c.id == camera_id)
    return str(getattr(camera.source, "path", ""))


def camera_sources(config: PipelineConfig) -> dict[str, str]:
    """Each camera's source, as the driver names it (`_source`)."""
    return {c.id: _source(config, c.id) for c in config.cameras}


def _lost(config: PipelineConfig, camera_id: str, why: str) -> CameraStats:
    return CameraStats(camera_id, _source(config, camera_id), error=f"camera {camera_id}: {why}")
