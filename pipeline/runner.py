"""The orchestrator: readers -> batcher -> detector -> per-camera trackers -> sink workers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import torch

from detector import Detector
from pipeline.batching import Batch, Batcher
from pipeline.config import (
    CameraConfig,
    DetectorConfig,
    DeviceSourceConfig,
    FileSourceConfig,
    LiveSinkConfig,
    PipelineConfig,
    SinkConfig,
    StreamSourceConfig,
    VideoSinkConfig,
    ZmqSinkConfig,
)
from pipeline.readers import Backoff, CameraReader, FrameQueue, FrameSampler, QueuePolicy
from pipeline.sources import AVSource, ImageFolderSource, Source
from pipeline.summary import CameraStats, ProgressCallback, RunSummary
from pipeline.types import (
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    RunOutcome,
    StreamEnd,
    StreamInfo,
)
from pipeline.workers import SinkWorker
from sinks.base import Sink, SinkError
from trackers import IoUTracker

log = logging.getLogger(__name__)


class PendingResult(Protocol):
    """A submitted batch's detections (`detector.PendingDetections` is one)."""

    def result(self) -> list[Detections]:
        """One `Detections` per frame submitted; raises what detecting them raised."""
        ...


@dataclass(frozen=True)
class ReadyDetections:
    """A batch's detections, already computed: what a non-pipelined `submit` may return."""

    detections: list[Detections]

    def result(self) -> list[Detections]:
        return self.detections


class FrameDetector(Protocol):
    """What the orchestrator needs of a detector (`detector.Detector` is one).

    The loop calls `submit(frames).result()`; when `pipelined`, it submits the next batch
    before collecting the one in flight. A detector with only `detect` may subclass this
    protocol to get the defaults: not pipelined, `submit` detecting at once.
    """

    labels: LabelMap
    pipelined: bool = False

    def detect(self, frames: Sequence[Frame]) -> list[Detections]: ...

    def submit(self, frames: Sequence[Frame]) -> PendingResult:
        return ReadyDetections(self.detect(frames))


def make_source(camera: CameraConfig) -> Source:
    """The `Source` a camera's config describes."""
    src = camera.source
    if isinstance(src, FileSourceConfig):
        return AVSource(src.path, live=False)
    if isinstance(src, StreamSourceConfig):
        return AVSource(src.url, live=True, options=src.options, timeout_s=src.timeout_s)
    if isinstance(src, DeviceSourceConfig):
        options = dict(src.options)
        if src.width and src.height:
            options.setdefault("video_size", f"{src.width}x{src.height}")
        if src.fps:
            options.setdefault("framerate", f"{src.fps:g}")
        if src.input_format:
            options.setdefault("input_format", src.input_format)
        return AVSource(
            src.path, live=True, format="v4l2", options=options, timeout_s=src.timeout_s
        )
    return ImageFolderSource(src.path, src.fps)


def build_detector(det: DetectorConfig) -> Detector:
    """The detector a config describes."""
    return Detector.build(
        model=det.model,
        weights=det.weights,
        device=det.device,
        score_threshold=det.score_threshold,
        nms_threshold=det.nms_threshold,
        max_detections=det.max_detections,
        labels=det.labels,
        runtime=det.runtime,
        precision=det.precision,
        calibration=det.calibration,
        workers=det.workers,
    )


class Pipeline:
    """Composes the stages described by a config and runs them until every source is done.

    `run` builds the detector first (so missing weights fail before any frame is read), then
    the sinks, then starts one reader per camera. A camera that fails is reported and ended
    (live ones reconnect); the others keep running, and the batcher never waits for a
    camera that has nothing. `stop` (set by Ctrl-C) makes the readers stop; what was already
    decoded is still detected, tracked and written.

    `detector` and `extra_sinks` replace the configured detector / add sinks (tests, embedding).
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        config_source: str = "",
        detector: FrameDetector | None = None,
        extra_sinks: Sequence[Sink] = (),
    ) -> None:
        self.config = config
        self.config_source = config_source
        self.stop = threading.Event()
        self._detector = detector
        self._extra_sinks = list(extra_sinks)

    def run(self, on_progress: ProgressCallback | None = None) -> RunSummary:
        setup_started = time.monotonic()
        cfg = self.config
        # Denormal floats make CPU convolutions many times slower (seen with random
        # weights); flushing them to zero changes no detection worth having.
        torch.set_flush_denormal(True)
        if (os.cpu_count() or 1) <= 2:
            # OpenCV's pool (the video sink's colour conversion and drawing) spins after each
            # call: on 2 cores a 768x576 RGB->YUV conversion then costs 0.83 CPU-ms, not 0.22.
            cv2.setNumThreads(1)
        detector = self._detector or self._build_detector()
        sinks = self._build_sinks(detector.labels)
        sinks += [(sink, 256) for sink in self._extra_sinks]
        workers = [SinkWorker(sink, size) for sink, size in sinks]

        stats: dict[str, CameraStats] = {}
        condition = threading.Condition()
        readers = [self._reader(cam, condition, workers, stats) for cam in cfg.cameras]
        trackers = {
            c.id: IoUTracker(
                c.id,
                sigma_l=cfg.tracker.sigma_l,
                sigma_h=cfg.tracker.sigma_h,
                sigma_iou=cfg.tracker.sigma_iou,
                t_min=cfg.tracker.t_min,
                max_age=cfg.tracker.max_age,
            )
            for c in cfg.cameras
        }
        batcher = Batcher(
            [r.queue for r in readers],
            condition,
            cfg.detector.batch_size,
            cfg.detector.max_wait_ms / 1000,
        )
        started = time.monotonic()
        for reader in readers:
            reader.start()
        interrupted = False
        try:
            _Loop(detector, trackers, workers, stats, on_progress).run(batcher, self.stop)
            interrupted = self.stop.is_set()
            failed = any(c.error for c in stats.values())
            outcome: RunOutcome = (
                "interrupted" if interrupted else "failed" if failed else "finished"
            )
            for worker in workers:
                worker.run_ended(outcome)
        finally:
            self.stop.set()
            for reader in readers:
                reader.join()
            for worker in workers:
                worker.close()
        for reader in readers:
            cam = stats[reader.camera_id]
            cam.dropped, cam.skipped, cam.reconnects = (
                reader.queue.dropped,
                reader.skipped,
                reader.reconnects,
            )
            cam.decode_errors = reader.source.decode_errors
            cam.error = cam.error or reader.queue.error
        return RunSummary(
            cameras=stats,
            elapsed_s=time.monotonic() - started,
            setup_s=started - setup_started,
            sink_errors=[w.error for w in workers if w.error],
            outputs=[w.sink.describe() for w in workers],
            interrupted=interrupted,
        )

    def _build_detector(self) -> Detector:
        detector = build_detector(self.config.detector)
        if detector.device.type == "cpu":
            # One core is left to decoding, encoding and the sinks: with every core in
            # torch's pool, a busy machine slows inference many times (docs/performance.md).
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        return detector

    def _reader(
        self,
        cam: CameraConfig,
        condition: threading.Condition,
        workers: list[SinkWorker],
        all_stats: dict[str, CameraStats],
    ) -> CameraReader:
        """The camera's reader, its queue, and its entry in `all_stats`."""
        source = make_source(cam)
        stats = all_stats[cam.id] = CameraStats(cam.id, source.name)
        policy = cam.queue_policy
        if policy == "auto":
            policy = "drop_oldest" if source.live else "block"
        queue = FrameQueue(
            cam.id, cam.queue_size or (4 if source.live else 32), QueuePolicy(policy), condition
        )

        def on_open(info: StreamInfo) -> None:
            if not source.live and reader.opened is not None:
                stats.total_frames = reader.opened.total_frames
            _broadcast(workers, info)

        def on_status(status: CameraStatus) -> None:
            if status.state == "failed":
                stats.error = f"camera {cam.id}: {status.message}"
                log.error("%s", stats.error)
            _broadcast(workers, status)

        rc = cam.reconnect
        reader = CameraReader(
            cam.id,
            source,
            queue,
            self.stop,
            on_open=on_open,
            on_status=on_status,
            sampler=FrameSampler(cam.detect_every, cam.max_fps),
            pass_skipped=cam.full_rate_video,
            backoff=Backoff(rc.initial_delay_s, rc.max_delay_s, rc.jitter, rc.max_attempts),
            loop=getattr(cam.source, "loop", False),
            realtime=getattr(cam.source, "realtime", False),
        )
        return reader

    def _build_sinks(self, labels: LabelMap) -> list[tuple[Sink, int]]:
        """Every configured sink, opened; on failure the ones opened so far are closed."""
        built: list[tuple[Sink, int]] = []
        try:
            for sc in self.config.sinks:
                built.append((_build_sink(sc, labels, self.config_source), sc.queue_size))
        except SinkError:
            for sink, _ in built:
                sink.close()
            raise
        return built


@dataclass(frozen=True)
class _Submitted:
    """A batch whose detections are under way; `pending` is None if it has none to detect."""

    batch: Batch
    pending: PendingResult | None


class _Loop:
    """Per batch: detect, track per camera, and hand every frame's result to the sinks."""

    def __init__(
        self,
        detector: FrameDetector,
        trackers: dict[str, IoUTracker],
        workers: list[SinkWorker],
        stats: dict[str, CameraStats],
        on_progress: ProgressCallback | None,
    ) -> None:
        self.detector = detector
        self.trackers = trackers
        self.workers = workers
        self.every_frame_workers = [w for w in workers if w.sink.wants_every_frame]
        self.stats = stats
        self.on_progress = on_progress
        self.last_tracked: dict[str, Detections] = {}

    def run(self, batcher: Batcher, stop: threading.Event) -> None:
        """Processes batches, in order, until the batcher has no more.

        With a pipelined detector, batch k+1 is submitted before batch k is collected, but
        only when k+1 is complete already: a batch in flight never waits for the next one
        to arrive. At most one batch is in flight; it is collected before the loop blocks.
        """
        in_flight: _Submitted | None = None
        while True:
            if in_flight is None:
                batch = batcher.next_batch(stop)
                if batch is None:
                    return
            else:
                batch = batcher.ready_batch()
                if batch is None:
                    self.collect(in_flight)
                    in_flight = None
                    continue
            previous, in_flight = in_flight, None
            try:
                submitted = self.submit(batch)
            finally:
                # k is collected after k+1 is submitted, and also when submitting k+1
                # failed: k was detected before that error, as it would be without pipelining.
                if previous is not None:
                    self.collect(previous)
            if self.detector.pipelined:
                in_flight = submitted
            else:
                self.collect(submitted)

    def submit(self, batch: Batch) -> _Submitted:
        """Starts detecting the batch's frames (if it has any to detect)."""
        pending = self.detector.submit(batch.to_detect) if batch.to_detect else None
        return _Submitted(batch, pending)

    def collect(self, submitted: _Submitted) -> None:
        """Waits for a submitted batch's detections, tracks them, and hands out the results."""
        batch = submitted.batch
        detections = iter(submitted.pending.result() if submitted.pending is not None else [])
        for item in batch.items:
            frame = item.frame
            cam = self.stats[frame.camera_id]
            cam.frames += 1
            if not item.detect:
                last = self.last_tracked.get(frame.camera_id, Detections.empty())
                result = FrameResult(frame, last, detected=False)
                _broadcast(self.every_frame_workers, result)
                continue
            tracker = self.trackers[frame.camera_id]
            tracked = tracker.update(next(detections), frame)
            self.last_tracked[frame.camera_id] = tracked
            events = tuple(tracker.pop_events())
            _broadcast(self.workers, FrameResult(frame, tracked, events))
            cam.detections += len(tracked)
            cam.tracks += sum(1 for e in events if e.kind == "started")
            if self.on_progress is not None:
                self.on_progress(cam)
        for q in batch.finished:
            ended = tuple(self.trackers[q.camera_id].finish())
            frames = self.stats[q.camera_id].frames
            _broadcast(self.workers, StreamEnd(q.camera_id, frames, ended, q.error))


def _build_sink(sc: SinkConfig, labels: LabelMap, config_source: str) -> Sink:
    """The sink a config entry describes, opened. Raises SinkError when it cannot open."""
    # Imported here so that a run without a sink kind never imports its libraries.
    if isinstance(sc, VideoSinkConfig):
        from sinks.video import VideoSink

        return VideoSink(
            sc.dir,
            labels,
            codec=sc.codec,
            crf=sc.crf,
            preset=sc.preset,
            segment_s=None if sc.segment_minutes is None else sc.segment_minutes * 60,
            max_age_s=None if sc.keep_hours is None else sc.keep_hours * 3600,
            max_segments=sc.keep_files,
            fragmented=sc.fragmented,
            threads=sc.threads,
        )
    if isinstance(sc, LiveSinkConfig):
        from sinks.live import LiveSink

        return LiveSink(
            labels,
            host=sc.host,
            port=sc.port,
            max_fps=sc.max_fps,
            jpeg_quality=sc.jpeg_quality,
        )
    if isinstance(sc, ZmqSinkConfig):
        from sinks.zmq_pub import CurveKeyError, ZmqSink, check_z85_key, read_secret_key

        secret = None
        if sc.curve is not None:
            try:
                secret = (
                    read_secret_key(sc.curve.secret_key_file)
                    if sc.curve.secret_key_file is not None
                    else check_z85_key(sc.curve.secret_key or "", "curve.secret_key")
                )
            except CurveKeyError as exc:
                raise SinkError(f"zmq sink: {exc}") from exc
        return ZmqSink(
            sc.endpoint,
            labels,
            send_hwm=sc.send_hwm,
            wait_for_subscribers=sc.wait_for_subscribers,
            wait_timeout_s=sc.wait_timeout_s,
            curve_secret_key=secret,
            curve_authorized_clients=None if sc.curve is None else sc.curve.authorized_clients,
            isolate_subscribers=sc.isolate_subscribers,
        )
    from sinks.sql.sink import SqlSink

    return SqlSink(
        sc.url,
        labels,
        batch_size=sc.batch_size,
        run_config=config_source,
        flush_interval_s=sc.flush_interval_s,
        buffer_rows=sc.buffer_rows,
        spool_dir=sc.spool_dir,
        spool_max_mb=sc.spool_max_mb,
        close_timeout_s=sc.close_timeout_s,
    )


def _broadcast(
    workers: list[SinkWorker], message: StreamInfo | FrameResult | StreamEnd | CameraStatus
) -> None:
    for worker in workers:
        worker.submit(message)
