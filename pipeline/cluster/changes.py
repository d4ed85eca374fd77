"""The coordinator's side of `cameras add|remove` (docs/cluster.md): its desk, what is
checked before a camera is added, and how a camera is removed from its shard.

An added camera is run on the shard it hashes to (`assign`, as at the start), in a run of
its own beside the shard's others, with the shard's detector, as a camera moved from a dead
shard is; no camera moves. Its zone and line labels are checked against the class names of
that shard's detector: nothing is built in the driver. A removed camera's shard stops
reading it: its stream ends as at the end of its file, and failover does not bring it back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from pipeline.cluster.desk import TAKE_TIMEOUT_S, Answer, CameraRequest, start_desk
from pipeline.cluster.shard import ShardInfo
from pipeline.config import CameraConfig, DetectorConfig
from pipeline.config.scene import kept_classes, scene_label_problems
from pipeline.summary import RunSummary

log = logging.getLogger(__name__)

LABELS_WAIT_S = 5.0
"""Longest wait of the coordinator for a shard's class names (a shard still building its
detector, at the start of the run, may take longer: the command is told to ask again)."""


class LabelsUnavailable(Exception):
    """The class names of the detector a camera would run with cannot be had now (one
    line: why)."""


ShardLabels = Callable[[str], tuple[str, ...]]
"""The class names of the detector of the shard a camera (by its id) would run on; raises
LabelsUnavailable."""


class ShardRun(Protocol):
    """A shard's run of some cameras, as the coordinator keeps it."""

    actor: Any
    info: ShardInfo
    cameras: list[str]


class CameraChanges:
    """The cameras added and removed while a cluster run runs, and the desk their
    requests come through (`open` starts it, `close` ends it)."""

    def __init__(self, detector: DetectorConfig) -> None:
        self.removed: set[str] = set()
        self.lines: list[str] = []
        """What was added and removed, one line each (in the summary)."""
        self._detector = detector
        self._classes: dict[str, frozenset[int]] | None = None
        self._desk: Any = None

    def open(self, ray: Any, token: str) -> None:
        self._desk = start_desk(ray, token)

    def close(self, ray: Any) -> None:
        if self._desk is not None:
            ray.kill(self._desk)
            self._desk = None

    def requests(self, ray: Any) -> list[tuple[int, CameraRequest]]:
        """The requests waiting at the desk, each with its ticket for `answer`."""
        if self._desk is None:
            return []
        try:
            taken: list[tuple[int, CameraRequest]] = ray.get(
                self._desk.take.remote(), timeout=TAKE_TIMEOUT_S
            )
        except ray.exceptions.GetTimeoutError:
            return []  # busy: asked again at the next look
        except ray.exceptions.RayError as exc:  # gone with its node: said once
            log.warning("cameras add|remove cannot reach this run any more: %s", exc)
            self._desk = None
            return []
        return taken

    def answer(self, ticket: int, answer: Answer) -> None:
        for line in answer.lines:
            log.info("cameras: %s", line)
        for problem in answer.problems:
            log.warning("cameras: %s", problem)
        self._desk.answer.remote(ticket, answer)

    def add_problems(
        self,
        cameras: Sequence[CameraConfig],
        known: Sequence[str],
        *,
        stopping: bool,
        shards: int,
        labels: ShardLabels,
    ) -> list[str]:
        """Why `cameras` cannot be added to a run of the cameras `known` with `shards`
        live shards (one line each); `labels` is asked once per run, when a camera first
        has zone or line labels to check."""
        if stopping:
            return ["the run is stopping: no camera is added"]
        if not shards:
            return ["no shard is left to run a camera"]
        problems = []
        seen: set[str] = set()
        for camera in cameras:
            if camera.id in self.removed:
                problems.append(
                    f"camera {camera.id} was removed from this run; add it under another id"
                )
            elif camera.id in known:
                problems.append(f"camera {camera.id} is already in this run")
            elif camera.id in seen:
                problems.append(f"camera {camera.id} is given twice")
            seen.add(camera.id)
        return problems + self._label_problems(cameras, labels)

    def _label_problems(self, cameras: Sequence[CameraConfig], labels: ShardLabels) -> list[str]:
        """Zone and line labels the run's detector does not report (checked as a shard
        checks them: it would refuse the camera's run). Every shard builds its detector
        from the run's one `detector:` section, so the first answer holds for the run."""
        labelled = [
            c for c in cameras if any(z.labels for z in c.zones) or any(li.labels for li in c.lines)
        ]
        if not labelled:
            return []
        if self._classes is None:
            try:
                names = labels(labelled[0].id)
            except LabelsUnavailable as exc:
                ids = ", ".join(c.id for c in labelled)
                return [f"cannot check the zone and line labels of cameras {ids}: {exc}"]
            self._classes = kept_classes(names, self._detector.labels)
        return scene_label_problems(labelled, self._classes)

    def remove(
        self, ray: Any, camera_ids: Sequence[str], known: Sequence[str], running: Iterable[ShardRun]
    ) -> Answer:
        """Stops `camera_ids` on their shards (all of them, or none when one cannot be)."""
        runs_of = {c: run for run in running for c in run.cameras if c not in self.removed}
        problems = []
        for camera_id in dict.fromkeys(camera_ids):
            if camera_id in self.removed:
                problems.append(f"camera {camera_id} was removed already")
            elif camera_id in known and camera_id not in runs_of:
                problems.append(f"camera {camera_id} is not running any more")
            elif camera_id not in known:
                problems.append(
                    f"no camera {camera_id!r} in this run (its cameras: {', '.join(known)})"
                )
        if problems:
            return Answer(problems=(*problems, "no camera was removed"))
        lines = []
        calls = []
        for camera_id in dict.fromkeys(camera_ids):
            run = runs_of[camera_id]
            self.removed.add(camera_id)  # from now on, failover leaves it where it is
            calls.append(run.actor.stop_camera.remote(camera_id))
            lines.append(
                f"camera {camera_id} removed from {run.info.name} on {run.info.node_ip}: "
                "its stream ends as at the end of its file"
            )
        try:
            ray.get(calls, timeout=TAKE_TIMEOUT_S)
        except ray.exceptions.RayError as exc:  # its shard died: it is not moved
            log.warning("cameras: a shard did not take the removal: %s", exc)
        self.lines += lines
        return Answer(tuple(lines))

    def settle(self, summary: RunSummary) -> RunSummary:
        """The run's summary with each change said, and without the cameras removed before
        their first frame (asked to stop, they did not fail)."""
        cameras = {
            c: stats
            for c, stats in summary.cameras.items()
            if c not in self.removed or stats.frames or stats.error
        }
        outputs = [*summary.outputs, *self.lines]
        return dataclasses.replace(summary, cameras=cameras, outputs=outputs)
