"""The look at each camera's file or image folder before a run's detector is prepared
(`Source.problem`: a file's header read, no frame read), which `Pipeline.run` and each shard
of a cluster take (a shard before it builds its detector); and the end of a run that it
leaves no camera to read.

Every camera is asked at once, each in a daemon thread of its own, and the answers are
waited for `HEADER_WAIT_S` (`pipeline.config.video_files`) in all: a camera whose file or
folder has not answered by then (a network mount whose stat, open or header read hangs) is
not judged, and its reader opens it as the run goes on. Files on such a mount hold the start
about that long in all, not that long each, and a check left behind never keeps the process
alive at its exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from pipeline.build import make_source
from pipeline.config import CameraConfig
from pipeline.config.video_files import HEADER_WAIT_S
from pipeline.sources import FailedSource, Source, decoder_threads_for
from pipeline.summary import RunSummary
from pipeline.workers import QueueBound, end_unstarted
from sinks.base import Sink

log = logging.getLogger(__name__)


def make_sources(
    cameras: Sequence[CameraConfig], cameras_here: int | None = None
) -> dict[str, Source]:
    """The `cameras`' sources (by camera id), their decoders' threads set for the cameras
    that decode on this machine at once, these among them (`cameras_here`; None: these):
    `decoder_threads_for`."""
    threads = decoder_threads_for(max(len(cameras), cameras_here or 0))
    return {cam.id: make_source(cam.source, threads) for cam in cameras}


@dataclass(frozen=True)
class CheckedSources:
    """The cameras' sources (by camera id) once looked at (`check_sources`): each found
    unopenable is a `FailedSource`, which fails its reader alike, its camera's one-line
    error in `failed`."""

    sources: dict[str, Source]
    failed: dict[str, str]

    def none_left(self, stopped: Collection[str]) -> bool:
        """Whether no camera is left to read: some failed, and the others are `stopped`."""
        return bool(self.failed) and self.failed.keys() | set(stopped) >= self.sources.keys()


def check_sources(
    sources: Mapping[str, Source], skip: Collection[str] = (), wait_s: float = HEADER_WAIT_S
) -> CheckedSources:
    """`sources` (by camera id) looked at, all at once (`Source.problem`), for `wait_s` in
    all; those in `skip` (stopped before the run) are not asked, and those that have not
    answered by then are not judged (an info line each). Each error is logged, in the
    cameras' order, once all are known."""
    checks = {cid: _Check(cid, source) for cid, source in sources.items() if cid not in skip}
    for check in checks.values():
        check.start()
    deadline = time.monotonic() + wait_s
    for check in checks.values():
        check.join(max(0.0, deadline - time.monotonic()))
    checked = dict(sources)
    failed: dict[str, str] = {}
    for camera_id, check in checks.items():
        if check.is_alive():
            log.info(
                "camera %s: its source did not answer within %g s; not checked before the run",
                camera_id,
                wait_s,
            )
        elif check.problem is not None:
            checked[camera_id] = FailedSource(sources[camera_id].name, check.problem)
            failed[camera_id] = f"camera {camera_id}: {check.problem}"
            log.error("%s", failed[camera_id])
    return CheckedSources(checked, failed)


class _Check(threading.Thread):
    """One camera's `Source.problem`, asked in a daemon thread: a check that never ends (a
    stat or an open on a mount that does not answer) is left behind, not waited for, even
    at the process's exit."""

    def __init__(self, camera_id: str, source: Source) -> None:
        super().__init__(name=f"source-check-{camera_id}", daemon=True)
        self.source = source
        self.problem: str | None = None
        """Why its source cannot be opened; None while unknown, or when it can."""

    def run(self) -> None:
        self.problem = self.source.problem()


def failed_before_setup(
    checked: CheckedSources, sinks: Sequence[tuple[Sink, QueueBound]], setup_started: float
) -> RunSummary:
    """`RunSummary.failed_before_setup` of a run with no camera left (`none_left`: those not
    in `failed` were stopped first), set up since `setup_started`. `sinks` (each with its
    queue's bound) hear of each camera's end (`end_unstarted`) and are closed, as at the end
    of any run."""
    why = {
        cid: source.problem() if cid in checked.failed else None  # a `FailedSource`'s line
        for cid, source in checked.sources.items()
    }
    workers = end_unstarted(sinks, why)
    names = {cid: source.name for cid, source in checked.sources.items()}
    summary = RunSummary.failed_before_setup(
        names, checked.failed, time.monotonic() - setup_started
    )
    errors = [e for w in workers if (e := w.summary_error)]
    return replace(summary, sink_errors=errors, outputs=[w.sink.describe() for w in workers])
