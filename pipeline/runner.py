"""The orchestrator: readers -> batcher -> detector -> per-camera trackers -> sink workers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import torch

from detector import Detector
from pipeline.batching import Batcher
from pipeline.config import (
    PipelineConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    ZmqSinkConfig,
)
from pipeline.readers import FileReader, FrameQueue, QueuePolicy, SourceError, open_video
from pipeline.types import FrameResult, LabelMap, StreamEnd, StreamInfo
from pipeline.workers import SinkWorker
from sinks.base import Sink, SinkError
from trackers import IoUTracker

log = logging.getLogger(__name__)


@dataclass
class CameraStats:
    """What happened to one camera during a run."""

    camera_id: str
    source: str
    total_frames: int | None = None
    frames: int = 0
    detections: int = 0
    tracks: int = 0
    decode_errors: int = 0
    error: str | None = None


@dataclass
class RunSummary:
    """The outcome of `Pipeline.run`."""

    cameras: dict[str, CameraStats]
    elapsed_s: float
    sink_errors: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.sink_errors and all(c.error is None for c in self.cameras.values())

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.cameras.values())


ProgressCallback = Callable[[CameraStats], None]


class Pipeline:
    """Composes the stages described by a config and runs them until every source is done.

    `run` builds the detector first (so missing weights fail before any frame is read), then
    the sinks, then opens the cameras. A camera that fails to open or fails mid-stream is
    reported and ended; the others keep running. `stop` (e.g. set by Ctrl-C) makes the readers
    stop; what was already decoded is still detected, tracked and written.
    """

    def __init__(self, config: PipelineConfig, *, config_source: str = "") -> None:
        self.config = config
        self.config_source = config_source
        self.stop = threading.Event()

    def run(self, on_progress: ProgressCallback | None = None) -> RunSummary:
        started = time.monotonic()
        cfg = self.config
        # Denormal floats make CPU convolutions many times slower (seen with random
        # weights); flushing them to zero changes no detection worth having.
        torch.set_flush_denormal(True)
        det = cfg.detector
        detector = Detector.build(
            model=det.model,
            weights=det.weights,
            device=det.device,
            score_threshold=det.score_threshold,
            nms_threshold=det.nms_threshold,
            max_detections=det.max_detections,
            labels=det.labels,
        )
        sinks = self._build_sinks(detector.labels)
        workers = [SinkWorker(sink, size) for sink, size in sinks]

        stats = {c.id: CameraStats(c.id, c.source) for c in cfg.cameras}
        condition = threading.Condition()
        queues: list[FrameQueue] = []
        readers: list[FileReader] = []
        for cam in cfg.cameras:
            try:
                container, info = open_video(cam.id, cam.source)
            except SourceError as exc:
                stats[cam.id].error = str(exc)
                log.error("%s", exc)
                continue
            stats[cam.id].total_frames = container.streams.video[0].frames or None
            q = FrameQueue(cam.id, cam.queue_size, QueuePolicy.BLOCK, condition)
            queues.append(q)
            readers.append(FileReader(cam.id, container, info, q, self.stop))
            self._broadcast(workers, info)

        trackers = {
            c.id: IoUTracker(
                c.id,
                sigma_l=cfg.tracker.sigma_l,
                sigma_h=cfg.tracker.sigma_h,
                sigma_iou=cfg.tracker.sigma_iou,
                t_min=cfg.tracker.t_min,
            )
            for c in cfg.cameras
        }
        batcher = Batcher(queues, condition, det.batch_size, det.max_wait_ms / 1000)
        for reader in readers:
            reader.start()
        try:
            self._loop(batcher, detector, trackers, workers, stats, readers, on_progress)
            interrupted = self.stop.is_set()
            failed = any(c.error for c in stats.values())
            _record_outcome(
                workers, "interrupted" if interrupted else "failed" if failed else "finished"
            )
        finally:
            self.stop.set()
            for reader in readers:
                reader.join()
            for worker in workers:
                worker.close()
        return RunSummary(
            cameras=stats,
            elapsed_s=time.monotonic() - started,
            sink_errors=[w.error for w in workers if w.error],
            outputs=[_describe_output(w.sink) for w in workers],
            interrupted=interrupted,
        )

    def _loop(
        self,
        batcher: Batcher,
        detector: Detector,
        trackers: dict[str, IoUTracker],
        workers: list[SinkWorker],
        stats: dict[str, CameraStats],
        readers: list[FileReader],
        on_progress: ProgressCallback | None,
    ) -> None:
        decode_errors = {r.camera_id: r for r in readers}
        while (batch := batcher.next_batch(self.stop)) is not None:
            detections = detector.detect(batch.frames) if batch.frames else []
            for frame, dets in zip(batch.frames, detections, strict=True):
                tracker = trackers[frame.camera_id]
                tracked = tracker.update(dets, frame)
                events = tuple(tracker.pop_events())
                self._broadcast(workers, FrameResult(frame, tracked, events))
                cam = stats[frame.camera_id]
                cam.frames += 1
                cam.detections += len(tracked)
                cam.tracks += sum(1 for e in events if e.kind == "started")
                if on_progress is not None:
                    on_progress(cam)
            for q in batch.finished:
                cam = stats[q.camera_id]
                cam.error = cam.error or q.error
                cam.decode_errors = decode_errors[q.camera_id].decode_errors
                ended = tuple(trackers[q.camera_id].finish())
                self._broadcast(workers, StreamEnd(q.camera_id, cam.frames, ended, q.error))

    @staticmethod
    def _broadcast(
        workers: list[SinkWorker], message: StreamInfo | FrameResult | StreamEnd
    ) -> None:
        for worker in workers:
            worker.submit(message)

    def _build_sinks(self, labels: LabelMap) -> list[tuple[Sink, int]]:
        """Every configured sink, opened; on failure the ones opened so far are closed."""
        # Imported here so that a run without a sink kind never imports its libraries.
        built: list[tuple[Sink, int]] = []
        run_started = datetime.now()
        try:
            for sc in self.config.sinks:
                sink: Sink
                if isinstance(sc, VideoSinkConfig):
                    from sinks.video import VideoSink

                    sink = VideoSink(
                        sc.dir, labels, run_started=run_started, crf=sc.crf, preset=sc.preset
                    )
                elif isinstance(sc, ZmqSinkConfig):
                    from sinks.zmq_pub import ZmqSink

                    sink = ZmqSink(
                        sc.endpoint,
                        labels,
                        send_hwm=sc.send_hwm,
                        wait_for_subscribers=sc.wait_for_subscribers,
                        wait_timeout_s=sc.wait_timeout_s,
                    )
                elif isinstance(sc, SqlSinkConfig):
                    from sinks.sql import SqlSink

                    sink = SqlSink(
                        sc.url, labels, batch_size=sc.batch_size, run_config=self.config_source
                    )
                built.append((sink, sc.queue_size))
        except SinkError:
            for sink, _ in built:
                sink.close()
            raise
        return built


def _record_outcome(workers: list[SinkWorker], status: str) -> None:
    """Tell the SQL sinks how the run ended, for their `runs` row."""
    from sinks.sql import SqlSink

    for worker in workers:
        if isinstance(worker.sink, SqlSink):
            worker.sink.mark_status(status)  # type: ignore[arg-type]


def _describe_output(sink: Sink) -> str:
    describe = getattr(sink, "describe", None)
    return describe() if callable(describe) else sink.name
