"""The orchestrator: readers -> batcher -> detector -> per-camera trackers (and zone/line
analyzers) -> sink workers."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import cv2

from pipeline.batching import STOP_GRACE_S, Batcher
from pipeline.build import (
    SceneConfigError,
    build_run_detector,
    build_scene_analyzers,
    build_snapshot_keepers,
    build_snapshot_writer,
    build_tracker,
    make_backoff,
    make_motion_gate,
    make_queue,
    make_sampler,
    stream_scene,
)
from pipeline.config import CameraConfig, PipelineConfig, SqlSinkConfig
from pipeline.config.base import SINK_QUEUE_MB, mb_bytes
from pipeline.config.scene import kept_classes
from pipeline.cores import usable_cores
from pipeline.detection_loop import DetectionLoop, FrameDetector
from pipeline.frame_memory import keep_freed_frames
from pipeline.metrics import RunMetrics, sink_labels
from pipeline.preflight import check_before_work, check_labels
from pipeline.readers import CameraReader, join_readers
from pipeline.sink_factory import build_sinks
from pipeline.source_check import (
    CheckedSources,
    check_sources,
    failed_before_setup,
    make_sources,
)
from pipeline.sources import Source
from pipeline.stops import STOP_OPENING, STOP_PREPARING, STOP_RUNNING, StopEvent
from pipeline.summary import CameraStats, ProgressCallback, RunSummary
from pipeline.types import CameraStatus, RunOutcome, StreamInfo
from pipeline.workers import QueueBound, SinkFanout, SinkWorker
from sinks.base import Sink, SinkStopped

if TYPE_CHECKING:
    from pipeline.web.server import HttpServer

log = logging.getLogger(__name__)

EXTRA_SINK_QUEUE = QueueBound(256, mb_bytes(SINK_QUEUE_MB))
"""What each sink handed to `Pipeline` directly (`extra_sinks`) buffers: 256 messages, and
the configured sinks' default bytes of frames (`SINK_QUEUE_MB`)."""


class Pipeline:
    """Composes the stages described by a config and runs them until every source is done.

    `run` checks first what must hold before any work (`check_before_work`: its HTTP
    server's port, the sinks' output folders, a SQLite file it may not write) and each
    camera's file or image folder (`check_sources`): a camera whose source fails that fails
    at once, and a run left with no camera ends there (the sinks handed to it hear so, and
    are closed). Then it builds the detector (so missing weights fail before any frame is
    read), then the sinks, then starts one reader per camera. A camera that fails is
    reported and ended (live ones reconnect); the others keep running, and the batcher never
    waits for a camera that has nothing. `stop` (set by Ctrl-C) makes the readers stop; what was
    already decoded is still detected, tracked and written, and every camera's stream ends
    (its open tracks closed) as at the end of a file (docs/stopping.md).

    `detector` and `extra_sinks` replace the configured detector / add sinks (tests, embedding);
    `sized_sinks` adds sinks built from a config, each with its configured queue's bound
    (`queue_size`, `queue_mb`).
    `cameras_here`: the cameras that decode on this machine at once, this run's among them
    (a cluster's shards on one node count each other's), which sets the decoders' threads
    (`make_sources`); None: this run's. `sources`: the cameras' sources, looked at already
    (`check_sources`: a shard's, before it builds its detector); None: `run` makes them
    and looks at them.
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        config_source: str = "",
        detector: FrameDetector | None = None,
        extra_sinks: Sequence[Sink] = (),
        sized_sinks: Sequence[tuple[Sink, QueueBound]] = (),
        cameras_here: int | None = None,
        sources: CheckedSources | None = None,
    ) -> None:
        self.config = config
        self.cameras_here = cameras_here
        self._sources = sources
        self.config_source = config_source
        self.stop = StopEvent()
        self.stop_does = STOP_PREPARING
        """What a stop set now does (for the line Ctrl-C prints): it follows the run's phase."""
        self._camera_stops: dict[str, threading.Event] = {}
        self._stopped_cameras: set[str] = set()
        self._detector = detector
        self._extra_sinks = [(sink, EXTRA_SINK_QUEUE) for sink in extra_sinks]
        self._extra_sinks += sized_sinks
        self.metrics = RunMetrics()
        self.http_url: str | None = None
        """Where the run's HTTP server (`PipelineConfig.server`) listens while `run` runs."""

    def run(
        self,
        on_progress: ProgressCallback | None = None,
        on_start: Callable[[str], None] | None = None,
        *,
        checked: bool = False,
    ) -> RunSummary:
        """Runs until every camera is done or `stop` is set.

        `checked`: `check_before_work` already holds for this config (a cluster's shard
        checks its whole config before it opens the sinks it hands over), so it is not
        asked again.

        `on_start` gets, one by one as they happen before reading begins, the lines a person
        waiting wants at once: what a first run of the detector prepares (an ONNX export,
        int8 quantization) before the pause it causes, what runs the detector (and why each
        `auto` choice came out so), and where to watch (a sink's `start_line`). Each line is
        said once: without `on_start`, it is logged at INFO.
        """
        say = on_start or _log_start_line
        setup_started = time.monotonic()
        cfg = self.config
        if usable_cores() <= 2:
            # OpenCV's pool (the video sink's colour conversion and drawing) spins after each
            # call, which on 2 cores costs more than the call (docs/performance.md).
            cv2.setNumThreads(1)
        keep_freed_frames()
        if not checked:
            check_before_work(cfg)  # at once, not after a first run's export
        looked_at = self._sources or check_sources(
            make_sources(cfg.cameras, self.cameras_here), skip=self._stopped_cameras
        )
        if looked_at.none_left(self._stopped_cameras):  # the sinks handed in hear why
            return failed_before_setup(looked_at, self._extra_sinks, setup_started)
        sources, unopenable = looked_at.sources, looked_at.failed
        self.stop_does = STOP_PREPARING
        try:
            detector = self._detector or self._build_detector(say)
        except KeyboardInterrupt:
            if not self.stop.is_set():
                raise  # not a stop of this run's (Python's own Ctrl-C): the caller's
            return self._stopped_in_setup(setup_started)
        with contextlib.ExitStack() as set_up:  # a detector built here is closed if set-up fails
            if self._detector is None:
                set_up.callback(detector.close)
            described = detector.describe()
            if described:
                say(described)
            classes = kept_classes(detector.labels.names, cfg.detector.labels, detector.background)
            if label_problems := check_labels(cfg, classes):  # before any sink opens
                raise SceneConfigError("; ".join(label_problems))
            analyzers = build_scene_analyzers(
                cfg.cameras,
                cfg.analytics_of,
                detector.labels,
                cfg.detector.labels,
                detector.background,
            )
            self.stop_does = STOP_OPENING
            try:
                sinks = build_sinks(cfg.sinks, detector.labels, self.config_source, self.stop)
            except SinkStopped:  # its opening ended by the stop: nothing opened is left
                return self._stopped_in_setup(setup_started)
            sinks += self._extra_sinks
            labels = sink_labels([sink.name for sink, _ in sinks])
            workers = [
                SinkWorker(
                    sink,
                    bound.size,
                    functools.partial(self.metrics.written, label),
                    max_bytes=bound.max_bytes,
                )
                for (sink, bound), label in zip(sinks, labels, strict=True)
            ]
            fanout = SinkFanout(workers)
            try:
                server = self._serve(say, [sink for sink, _ in sinks])
            except BaseException:
                for worker in workers:
                    worker.close()
                raise
            for sink, _ in sinks:
                if line := sink.start_line():
                    say(line)

            stats: dict[str, CameraStats] = {}
            condition = threading.Condition()
            readers = [
                self._reader(cam, sources[cam.id], condition, fanout, stats, detector)
                for cam in cfg.cameras
            ]
            for camera_id, error in unopenable.items():  # said already; not said again
                stats[camera_id].error = error
            self.metrics.watch(stats, readers, dict(zip(labels, workers, strict=True)))
            trackers = {c.id: build_tracker(c.id, cfg.tracker) for c in cfg.cameras}
            asked = cfg.detector.batch_size
            batcher = Batcher(
                [r.queue for r in readers],
                condition,
                detector.batch_size if asked == "auto" else asked,
                cfg.detector.max_wait_ms / 1000,
                STOP_GRACE_S,
            )
            started = time.monotonic()
            self.stop_does = STOP_RUNNING
            for reader in readers:
                reader.start()
            snapshot_writer = build_snapshot_writer(cfg, on_settled=batcher.wake)
            loop = DetectionLoop(
                detector,
                trackers,
                fanout,
                stats,
                on_progress,
                snapshots=build_snapshot_keepers(cfg, snapshot_writer),
                analyzers=analyzers,
                metrics=self.metrics,
            )
            detector_error: str | None = None
            server_error: str | None = None
            set_up.pop_all()  # from here the run's own `finally` closes what it built
        try:
            try:
                loop.run(batcher, self.stop)
                interrupted = self.stop.is_set()
            except Exception as exc:  # reported in the summary and the log, not lost
                # Whatever was detected is already with the sinks; every stream still ends
                # (open tracks ended and stored) and the run is recorded as failed.
                detector_error = f"detector failed: {exc}"
                log.error("%s", detector_error)
                interrupted = False
                self.stop.set()
                loop.end_streams(detector_error)
            finally:
                self.stop.set()
                join_readers(readers, STOP_GRACE_S)
            for reader in readers:
                _count(stats[reader.camera_id], reader)
            failed = detector_error is not None or not all(c.ok for c in stats.values())
            outcome: RunOutcome = (
                "interrupted" if interrupted else "failed" if failed else "finished"
            )
            for worker in workers:
                worker.run_ended(outcome)
        finally:
            if self._detector is None:  # built for this run: its threads end with it
                detector.close()
            if snapshot_writer is not None:  # every stream has ended: no snapshot waits
                snapshot_writer.close()
            for worker in workers:
                worker.close()
            if server is not None:
                server.close()
                server_error = server.error
                self.http_url = None
        return RunSummary(
            cameras=stats,
            elapsed_s=time.monotonic() - started,
            setup_s=started - setup_started,
            sink_errors=[e for w in workers if (e := w.summary_error)],
            outputs=[w.sink.describe() for w in workers],
            interrupted=interrupted,
            detector=described,
            detector_error=detector_error,
            server_error=server_error,
        )

    def _build_detector(self, say: Callable[[str], None]) -> FrameDetector:
        """The configured detector; a stop while it is built (a first run's ONNX export and
        int8 calibration take many seconds) raises KeyboardInterrupt in this thread."""
        with self.stop.raising():
            return build_run_detector(self.config.detector, say)

    def _stopped_in_setup(self, setup_started: float) -> RunSummary:
        """`RunSummary.stopped_in_setup` of this run's cameras, set up since `setup_started`."""
        names = {cid: s.name for cid, s in make_sources(self.config.cameras).items()}
        return RunSummary.stopped_in_setup(names, time.monotonic() - setup_started)

    def _serve(self, say: Callable[[str], None], sinks: list[Sink]) -> HttpServer | None:
        """Starts the run's one HTTP server, if it has one (`PipelineConfig.server`): over
        its metrics, its sql sink's database and the sinks' routes (the live view)."""
        config = self.config.server()
        if config is None:
            return None
        from pipeline.web.beside_run import start_run_server

        sql = next((s for s in self.config.sinks if isinstance(s, SqlSinkConfig)), None)
        server = start_run_server(
            config,
            self.metrics,
            sql.url if sql else None,
            sinks,
            sinks_at_root=self.config.http is None,  # the live sink's own server
        )
        self.http_url = server.url
        if self.config.http is not None:
            say(f"http server: {server.url} (metrics: {server.url}metrics)")
        return server

    def _reader(
        self,
        cam: CameraConfig,
        source: Source,
        condition: threading.Condition,
        fanout: SinkFanout,
        all_stats: dict[str, CameraStats],
        detector: FrameDetector,
    ) -> CameraReader:
        """The camera's reader of `source`, its queue, and its entry in `all_stats`; the
        reader resizes the frames it reads as `detector` will (`FrameDetector.model_image`),
        and sizes motion regions for it (`FrameDetector.input_size`)."""
        stats = all_stats[cam.id] = CameraStats(cam.id, source.name, live=source.live)
        queue = make_queue(cam, source.live, condition)

        rules = self.config.analytics_of(cam)
        stop = self._camera_stops[cam.id] = self.stop.branch()
        if cam.id in self._stopped_cameras:  # stopped before its reader was made
            stop.set()

        def on_open(info: StreamInfo) -> None:
            if not source.live and reader.opened is not None:
                stats.total_frames = reader.opened.total_frames
            fanout.camera(replace(info, scene=stream_scene(cam, rules, info.width, info.height)))

        def on_status(status: CameraStatus) -> None:
            if not fanout.camera(status):
                return  # its stream has ended (cut off at a stop): too late to fail it
            if status.state == "failed" and stats.error is None:  # else said before set-up
                stats.error = f"camera {cam.id}: {status.message}"
                log.error("%s", stats.error)

        reader = CameraReader(
            cam.id,
            source,
            queue,
            stop,
            on_open=on_open,
            on_status=on_status,
            sampler=make_sampler(cam),
            motion=make_motion_gate(cam, detector.input_size),
            pass_skipped=cam.full_rate_video,
            backoff=make_backoff(cam),
            loop=getattr(cam.source, "loop", False),
            realtime=getattr(cam.source, "realtime", False),
            model_image=detector.model_image,
        )
        return reader

    def stop_camera(self, camera_id: str) -> None:
        """Stops reading one camera, before or during `run`: its stream ends as at the end
        of a file (its open tracks end, its sinks finish it); the other cameras go on."""
        self._stopped_cameras.add(camera_id)
        if (stop := self._camera_stops.get(camera_id)) is not None:
            stop.set()


def _log_start_line(line: str) -> None:
    """Where a run's start lines go when nobody is told them at once (`Pipeline.run`)."""
    log.info("%s", line)


def _count(stats: CameraStats, reader: CameraReader) -> None:
    """Adds to a camera's `stats` what its reader counted and knows at the end of the run."""
    stats.dropped, stats.skipped, stats.motion_skipped, stats.reconnects = (
        reader.queue.dropped,
        reader.skipped,
        reader.motion_skipped,
        reader.reconnects,
    )
    stats.decode_errors = reader.source.decode_errors
    stats.opened = reader.opened is not None
    stats.stopped_first = not reader.tried
    stats.lost = reader.lost
    stats.short = reader.short
    stats.error = stats.error or reader.queue.error
