"""Everything a run is made of, built from a validated config: sources, queues, detector,
trackers, zones and lines, and sinks (`pipeline.sink_factory`). The runner (`pipeline.runner`)
only runs what is built here."""

from __future__ import annotations

import functools
import logging
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from analytics import Line, SceneAnalyzer, SceneRules, Zone, scene_layout
from detector.cached_onnx import CachedOnnxDetector
from detector.options import DetectorOptions
from pipeline.config import (
    AnalyticsConfig,
    CameraConfig,
    DetectorConfig,
    DeviceSourceConfig,
    FileSourceConfig,
    ImagesSourceConfig,
    PipelineConfig,
    StreamSourceConfig,
    TrackerConfig,
)
from pipeline.config.base import mb_bytes
from pipeline.config.scene import kept_classes, scene_label_problems
from pipeline.cores import cores_each
from pipeline.frame_queue import FrameQueue, QueuePolicy
from pipeline.image_source import ImageFolderSource
from pipeline.motion import MotionGate
from pipeline.readers import Backoff, FrameSampler
from pipeline.regions import RegionRule
from pipeline.snapshots import SnapshotKeeper
from pipeline.sources import AVSource, Source
from pipeline.types import LabelMap, SceneLayout
from sinks.snapshots.writer import SnapshotWriter
from sinks.snapshots.writer_thread import SnapshotWriterThread
from trackers import IoUTracker

if TYPE_CHECKING:
    from detector import Detector

log = logging.getLogger(__name__)

LIVE_QUEUE_SIZE = 4
"""Frames buffered for a live source by default: a few, so that latency stays bounded."""
FILE_QUEUE_SIZE = 32
"""Frames buffered for a file by default: enough to keep the batcher fed."""


@functools.singledispatch
def make_source(source: object, decoder_threads: int = 0) -> Source:
    """The `Source` a camera's `source:` entry describes; `decoder_threads`: FFmpeg's decoder
    threads for a video (0: FFmpeg's choice; `decoder_threads_for` says how many a run uses)."""
    raise TypeError(f"unknown source config {type(source).__name__}")


@make_source.register
def _(src: FileSourceConfig, decoder_threads: int = 0) -> Source:
    return AVSource(src.path, live=False, decoder_threads=decoder_threads, file=True)


@make_source.register
def _(src: StreamSourceConfig, decoder_threads: int = 0) -> Source:
    return AVSource(
        src.url,
        live=True,
        options=src.options,
        timeout_s=src.timeout_s,
        decoder_threads=decoder_threads,
    )


@make_source.register
def _(src: DeviceSourceConfig, decoder_threads: int = 0) -> Source:
    options = dict(src.options)
    if src.width and src.height:
        options.setdefault("video_size", f"{src.width}x{src.height}")
    if src.fps:
        options.setdefault("framerate", f"{src.fps:g}")
    if src.input_format:
        options.setdefault("input_format", src.input_format)
    return AVSource(
        src.path,
        live=True,
        format="v4l2",
        options=options,
        timeout_s=src.timeout_s,
        decoder_threads=decoder_threads,
    )


@make_source.register
def _(src: ImagesSourceConfig, decoder_threads: int = 0) -> Source:
    return ImageFolderSource(src.path, src.fps)


def make_queue(camera: CameraConfig, live: bool, condition: threading.Condition) -> FrameQueue:
    """The camera's frame queue: policy, size and bytes (`queue_mb`) from the config, "auto"
    by source kind (live sources drop their oldest frame to bound latency; files block to
    lose nothing)."""
    policy = camera.queue_policy
    if policy == "auto":
        policy = "drop_oldest" if live else "block"
    size = camera.queue_size or (LIVE_QUEUE_SIZE if live else FILE_QUEUE_SIZE)
    return FrameQueue(
        camera.id, size, QueuePolicy(policy), condition, max_bytes=mb_bytes(camera.queue_mb)
    )


def make_sampler(camera: CameraConfig) -> FrameSampler:
    """Which of the camera's frames are detected on (`detect_every`, `max_fps`)."""
    return FrameSampler(camera.detect_every, camera.max_fps)


def make_motion_gate(
    camera: CameraConfig, input_size: tuple[int, int] | None = None
) -> MotionGate | None:
    """The camera's motion gate; None where `motion.enabled` is off (every frame detected).
    With `motion.regions`, it says which regions to detect, at least the detector's
    `input_size` (height, width; None: any size) and of its aspect.

    Its phase (`MotionGate.phase_s`) comes from the camera's id: spread across cameras, and
    the same in every run, so that a dataset export replays the run's choices."""
    motion = camera.motion
    if not motion.enabled:
        return None
    phase = zlib.crc32(camera.id.encode()) / 2**32 * motion.max_skip_s
    rule = None
    if motion.regions:
        rule = RegionRule(input_size or (1, 1), motion.regions_max_share)
    return MotionGate(motion.threshold, motion.min_area, motion.max_skip_s, phase, rule)


def make_backoff(camera: CameraConfig) -> Backoff:
    """The camera's reconnection waits."""
    rc = camera.reconnect
    return Backoff(rc.initial_delay_s, rc.max_delay_s, rc.jitter, rc.max_attempts)


def build_tracker(camera_id: str, config: TrackerConfig) -> IoUTracker:
    """One camera's tracker: the section's keys are the tracker's parameters."""
    return IoUTracker(camera_id, **config.model_dump(exclude={"type"}))


def build_snapshot_writer(
    config: PipelineConfig, on_settled: Callable[[], None] | None = None
) -> SnapshotWriterThread | None:
    """The thread that writes the snapshots, as the snapshots sink asks (none without one):
    one for all cameras, one disk to watch; `on_settled` after each write (`Batcher.wake`:
    the held event goes out at once). Its owner closes it."""
    sc = config.snapshots
    if sc is None:
        return None
    writer = SnapshotWriter(sc.dir, quality=sc.quality)
    return SnapshotWriterThread(writer, timeout_s=sc.write_timeout_s, on_settled=on_settled)


def build_snapshot_keepers(
    config: PipelineConfig, writer: SnapshotWriterThread | None
) -> dict[str, SnapshotKeeper]:
    """Each camera's snapshot stage, as the snapshots sink asks (none without one), with
    `writer` to write them. It remembers the tracker's `t_min` last frames: a track's best
    detection before it was confirmed lies in them."""
    sc = config.snapshots
    if sc is None:
        return {}
    return {
        cam.id: SnapshotKeeper(
            cam.id,
            sc.dir,
            margin=sc.margin,
            full_frame=sc.full_frame,
            recent_frames=config.tracker.t_min,
            quality=sc.quality,
            writer=writer,
        )
        for cam in config.cameras
    }


class SceneConfigError(ValueError):
    """A label of the config names no class the detector reports (a zone's, a line's, an
    mqtt sink's `count_labels`: `pipeline.preflight.check_labels`): the message says where."""


def build_scene_analyzers(
    cameras: Sequence[CameraConfig],
    rules_of: Callable[[CameraConfig], AnalyticsConfig],
    labels: LabelMap,
    detector_labels: Sequence[str] | None,
    background: int | None,
) -> dict[str, SceneAnalyzer]:
    """A `SceneAnalyzer` for every camera with zones or lines (the others get none and pay
    nothing); `labels` are the detector's class names (`background` the column that is
    none), `detector_labels` its filter.

    Raises SceneConfigError for a zone or line label the detector does not report."""
    classes = kept_classes(labels.names, detector_labels, background)
    problems = scene_label_problems(cameras, classes)
    if problems:
        raise SceneConfigError("; ".join(problems))

    def indices(names: Sequence[str] | None) -> frozenset[int] | None:
        if names is None:
            return None
        return frozenset(i for name in names for i in classes[LabelMap.key(name)])

    analyzers = {}
    for cam in cameras:
        if not cam.has_scene:
            continue
        rules = rules_of(cam)
        zones, lines = camera_scene(cam, indices)
        scene_rules = SceneRules(
            rules.anchor_fractions,
            rules.line_hysteresis,
            rules.min_frames,
            rules.occupancy_period_s,
            rules.leave_frames,
        )
        analyzers[cam.id] = SceneAnalyzer(cam.id, zones, lines, scene_rules)
    return analyzers


def camera_scene(
    cam: CameraConfig,
    indices: Callable[[Sequence[str] | None], frozenset[int] | None] = lambda _: None,
) -> tuple[list[Zone], list[Line]]:
    """The camera's configured zones and lines; `indices` gives the class indices of a
    zone's or line's `labels` (by default none: for drawing, which counts nothing)."""
    zones = [
        Zone(
            z.id,
            tuple(z.polygon),
            in_pixels=z.units == "pixel",
            labels=indices(z.labels),
            dwell_alert_s=z.dwell_alert_s,
        )
        for z in cam.zones
    ]
    lines = [
        Line(
            li.id,
            li.points[0],
            li.points[1],
            in_pixels=li.units == "pixel",
            labels=indices(li.labels),
            left_to_right=li.directions.left_to_right,
            right_to_left=li.directions.right_to_left,
        )
        for li in cam.lines
    ]
    return zones, lines


def stream_scene(cam: CameraConfig, rules: AnalyticsConfig, width: int, height: int) -> SceneLayout:
    """What sinks draw of the camera's scene on its `width` x `height` frames: its zones and
    lines in pixels, and the anchor its trails follow."""
    zones, lines = camera_scene(cam)
    return scene_layout(zones, lines, rules.anchor_fractions, width, height)


def build_detector(
    det: DetectorConfig, announce: Callable[[str], None] | None = None, sharing: int = 1
) -> Detector:
    """The detector a config describes, warmed up for a run (`Detector.warm_up`); `announce`
    is told of a first run's ONNX export or int8 quantization before it starts
    (`detector.Detector`), and of the warm-up; `sharing`: the processes sharing this
    machine's cores, this one among them (`DetectorOptions.sharing`)."""
    from detector import Detector

    detector = Detector.build(det.to_request(), announce, sharing)
    if batches := detector.options.warm_up_batches():
        if announce is not None:
            sizes = ", ".join(map(str, batches))
            announce(
                f"preparing the detector: one batch of black frames of each size a run uses "
                f"({sizes}), so that its kernels are tuned or compiled before the first frame…"
            )
        detector.warm_up()
    return detector


def build_run_detector(
    det: DetectorConfig, announce: Callable[[str], None] | None = None, sharing: int = 1
) -> Detector | CachedOnnxDetector:
    """The detector of a run: where ONNX Runtime runs a network a run made before, that
    network from the cache, without torch (`detector.cached_onnx`); else `build_detector`
    (keeping what the next run starts from), on the CPU with one core left to the other
    stages. Its CPU threads take this process's share of the cores, one of `sharing`
    processes sharing them (a cluster's shards on one machine; `DetectorOptions.sharing`).
    The run says what it is (`describe`), once."""
    cached = CachedOnnxDetector.open(DetectorOptions.resolve(det.to_request(), sharing))
    if cached is not None:
        return cached
    detector = build_detector(det, announce, sharing)
    if (onnx := detector.onnx_file) is not None:
        CachedOnnxDetector.keep(detector.options, detector.model, detector.labels, onnx)
    leave_a_core(detector)
    return detector


def torch_cpu_threads(sharing: int = 1) -> int:
    """torch's intra-op threads on the CPU beside a pipeline: every core this process may
    use (`usable_cores`; with `sharing` processes sharing them, its share, `cores_each`)
    but one, at least one. With every core in torch's pool, decoding, encoding and the
    sinks slow inference many times on a busy machine (docs/performance.md)."""
    return max(1, cores_each(sharing) - 1)


def leave_a_core(detector: Detector) -> None:
    """On the CPU, torch's pool gets `torch_cpu_threads` for the detector's share of the
    cores (`DetectorOptions.sharing`), as a run sets it."""
    if detector.device.type == "cpu":
        import torch

        torch.set_num_threads(torch_cpu_threads(detector.options.sharing))
