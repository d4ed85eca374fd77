"""End-to-end runs: copies of a clip through the real `Pipeline` and its real sinks, with the
busy time of each stage."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline.bench.clips import decode_ms_per_frame, frame_size
from pipeline.bench.report import EndToEndResult
from pipeline.config import DetectorConfig, PipelineConfig, VideoSinkConfig
from pipeline.types import FrameResult, StreamEnd
from sinks.base import ForwardingSink, Sink

if TYPE_CHECKING:
    from detector.engine import StageTimes

SCORE_THRESHOLD = 0.5
"""Boxes scoring below are dropped: in the end-to-end runs and the naive baseline alike."""
NMS_THRESHOLD = 0.6
"""IoU above which boxes of a class are merged, in both runs."""
MAX_DETECTIONS = 100
"""Boxes kept per frame, in both runs."""


class BenchError(RuntimeError):
    """A benchmark run failed (a camera or a sink of the end-to-end pipeline)."""


class TimedSink(ForwardingSink):
    """A sink that adds up the time its inner sink spends in `write` (its worker's busy time)."""

    def __init__(self, inner: Sink) -> None:
        super().__init__(inner)
        self.busy_s = 0.0
        self.frames = 0

    def write(self, result: FrameResult) -> None:
        started = time.perf_counter()
        self.inner.write(result)
        self.busy_s += time.perf_counter() - started
        self.frames += 1

    def end(self, stream_end: StreamEnd) -> None:
        started = time.perf_counter()
        self.inner.end(stream_end)
        self.busy_s += time.perf_counter() - started

    def tick(self) -> None:
        started = time.perf_counter()
        self.inner.tick()
        self.busy_s += time.perf_counter() - started

    def close(self) -> None:
        started = time.perf_counter()
        self.inner.close()
        self.busy_s += time.perf_counter() - started


@dataclass(frozen=True)
class DetectorSetup:
    """The detector of an end-to-end run, as `detector.*` config values."""

    model: str
    weights: str
    device: str
    runtime: str = "auto"
    precision: str = "auto"
    batch_size: int | Literal["auto"] = "auto"
    workers: int = 1

    def config(self) -> DetectorConfig:
        """The run's `detector:` section: these values and the bench's thresholds."""
        return DetectorConfig.model_validate(
            {
                **asdict(self),
                "score_threshold": SCORE_THRESHOLD,
                "nms_threshold": NMS_THRESHOLD,
                "max_detections": MAX_DETECTIONS,
            }
        )


@dataclass(frozen=True)
class VideoOutput:
    """The end-to-end video sink's encoder, as `sinks[type=video]` config values; None: the
    config's default."""

    codec: str = "libx264"
    preset: str | None = None
    crf: int | None = None

    def config(self, folder: Path) -> VideoSinkConfig:
        """The video sink writing into `folder`."""
        chosen = {key: value for key, value in asdict(self).items() if value is not None}
        return VideoSinkConfig.model_validate({"type": "video", "dir": folder, **chosen})


def pipeline_config(
    clip: str, copies: int, setup: DetectorSetup, out: Path, video: VideoOutput | None
) -> PipelineConfig:
    """The run's config: `copies` cameras reading `clip`, `setup`'s detector, IoU tracking,
    and the video (none when `video` is None), ZeroMQ and SQLite sinks writing under `out`."""
    video_sink = [] if video is None else [video.config(out / "video")]
    return PipelineConfig.model_validate(
        {
            "cameras": [{"id": f"cam{i}", "source": clip} for i in range(copies)],
            "detector": setup.config(),
            "tracker": {"type": "iou"},
            "sinks": [
                *video_sink,
                {"type": "zmq", "endpoint": "tcp://127.0.0.1:*"},
                {"type": "sql", "url": "sqlite:///" + str(out / "detections.db")},
            ],
        }
    )


def bench_end_to_end(
    clip: str,
    copies: int,
    setup: DetectorSetup,
    repeat: int,
    video: VideoOutput | None = VideoOutput(),
    between: Callable[[], object] | None = None,
    pipelining: bool = True,
    stages: bool = True,
) -> EndToEndResult:
    """frames/s of the whole pipeline with its real sinks; stage busy times of the last run.

    `setup.runtime` and `setup.precision` are `detector.*` values ("auto" included); the
    result names the ones that ran. On CUDA, timing the detector's stages synchronises the
    device after each one, which removes the overlap between batches: there the stages are
    timed in one extra run that does not count towards frames/s. `between` runs after each
    counted run: the naive baseline's runs go there, so that both see the same state of a
    shared machine. `pipelining` False collects each batch before the next is submitted,
    where the detector would overlap them (`Detector.pipelined`: CUDA, or workers 2).
    `stages` False times no stage (no extra run on CUDA): `stages_ms_per_frame` is empty.
    """
    from detector.engine import StageTimes
    from pipeline.build import build_detector
    from pipeline.runner import Pipeline
    from pipeline.sink_factory import SinkContext, build_sink

    cuda = setup.device.startswith("cuda")
    runs: list[float] = []
    busy: dict[str, float] = {}
    frames, seconds, ran_on, workers, precision = 0, 0.0, setup.runtime, 1, setup.precision
    pipelined, batch_size = False, 0
    video_kb, video_settings = 0.0, ""
    for run in range(repeat + 1 if cuda and stages else repeat):
        counted = run < repeat
        timed = stages and (not cuda or not counted)
        with tempfile.TemporaryDirectory(prefix="ssd-bench-") as tmp:
            config = pipeline_config(clip, copies, setup, Path(tmp), video)
            video_settings = _video_settings(config)
            detector = build_detector(config.detector)
            detector.stage_times = StageTimes() if timed else None
            detector.pipelined = detector.pipelined and pipelining
            context = SinkContext(detector.labels, "<bench>")
            sinks = [TimedSink(build_sink(sc, context)) for sc in config.sinks]
            bare = config.model_copy(update={"sinks": []})
            try:
                summary = Pipeline(bare, detector=detector, extra_sinks=sinks).run()
            finally:
                detector.close()  # a detector per run: its threads end with it
            if not summary.ok:
                errors = [p for c in summary.cameras.values() if (p := c.problem)]
                raise BenchError(f"bench run failed: {'; '.join(errors + summary.sink_errors)}")
            ran_on, workers, precision = detector.runtime, detector.workers, detector.precision
            pipelined, batch_size = detector.pipelined, detector.batch_size
            if counted:
                frames, seconds = summary.frames, summary.elapsed_s
                runs.append(frames / seconds)
                written = sum(p.stat().st_size for p in (Path(tmp) / "video").rglob("*.mp4"))
                video_kb = written / 1000 / max(frames, 1)
                if between is not None:
                    between()
            if detector.stage_times is not None:
                busy = _stages_ms_per_frame(detector.stage_times, sinks)
    if stages:
        busy["decode (separate pass)"] = decode_ms_per_frame(clip)[0]
    return EndToEndResult(
        clip=clip,
        frame_size=frame_size(clip),
        copies=copies,
        model=setup.model,
        runtime=ran_on,
        precision=precision,
        batch_size=batch_size,
        frames=frames,
        seconds=seconds,
        frames_per_s=statistics.median(runs),
        runs=runs,
        stages_ms_per_frame=busy,
        video=video_settings,
        video_kb_per_frame=video_kb,
        workers=workers,
        pipelined=pipelined,
    )


def _stages_ms_per_frame(times: StageTimes, sinks: Sequence[TimedSink]) -> dict[str, float]:
    """Busy ms per frame of the detector's stages and of each sink, in one run."""
    n = max(times.images, 1)
    stages = {
        "detect_prepare": 1000 * times.prepare_s / n,
        "detect_forward": 1000 * times.forward_s / n,
        "detect_postprocess": 1000 * times.postprocess_s / n,
    }
    for sink in sinks:
        stages[f"sink_{sink.name}"] = 1000 * sink.busy_s / max(sink.frames, 1)
    return stages


def _video_settings(config: PipelineConfig) -> str:
    """The video sink's encoder settings as the run's config resolved them; "none" without
    a video sink."""
    for sink in config.sinks:
        if isinstance(sink, VideoSinkConfig):
            return f"{sink.codec} {sink.preset} crf {sink.crf}"
    return "none"
