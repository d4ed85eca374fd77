"""Capacity: how many cameras, each paced in real time, the pipeline holds.

A trial runs N cameras reading a clip at its own frame rate (10 frames/s for the clip bench
loops), looped, each with a live camera's small queue that drops its oldest frame when
the detector falls behind, through the real detector and sinks, for a fixed time. A tiny
extra sink (`LatencySink`) records each frame's capture-to-publish latency: from the wall
time the frame was decoded (`Frame.wall_time`) to the moment a sink's worker hands it the
result. A trial holds when no frame was dropped, frames reached the sinks at the cameras'
rate, and the p99 latency stays under `LATENCY_LIMIT_S` (`Trial.held`). With motion
gating (`CapacityRun.motion`), frames where nothing moved are read but neither detected nor
handed to the sinks: they count towards the pace, not the latency.

`find_capacity` doubles N until a trial fails, then bisects between the last N held and
the first that failed, and measures once more at `OVERLOAD` times the capacity.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.bench.clips import DEFAULT_CLIP
from pipeline.bench.end_to_end import BenchError, DetectorSetup, VideoOutput, pipeline_config
from pipeline.types import FrameResult, StreamInfo
from sinks.base import Sink

if TYPE_CHECKING:
    from pipeline.config.cameras import MotionConfig
    from pipeline.detection_loop import FrameDetector

LATENCY_LIMIT_S = 0.25
"""A trial holds only with its p99 capture-to-publish latency under this."""
PACE_TOLERANCE = 0.9
"""A trial holds only where at least this share of the frames its cameras produced reached
the sinks (the readers kept pace: a reader that cannot keep up delays frames rather than
dropping them)."""
OVERLOAD = 2
"""The overload trial runs this many times the capacity's cameras."""
CAMERA_QUEUE = 4
"""Frames each camera buffers, dropping its oldest beyond: a live camera's default
(`pipeline.build.LIVE_QUEUE_SIZE`)."""
WARMUP_S = 1.0
"""Frames captured in a trial's first second are not counted in its latency."""
LOOPED_CLIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "vtest.avi"
"""The clip a capacity run loops when present (795 frames of real pedestrians at 10
frames/s); else `DEFAULT_CLIP`."""


def capacity_clip() -> str:
    """The clip `bench --capacity` loops unless `--clip` says: `LOOPED_CLIP` where present."""
    return str(LOOPED_CLIP) if LOOPED_CLIP.is_file() else DEFAULT_CLIP


def percentile_ms(latencies_s: list[float], q: float) -> float:
    """The `q`-th percentile (0..100, linear interpolation) of `latencies_s`, in ms; nan
    for none."""
    if not latencies_s:
        return float("nan")
    return float(np.percentile(np.asarray(latencies_s), q)) * 1000


class LatencySink(Sink):
    """Records each frame's capture-to-publish latency: `clock()` when `write` is called
    minus the frame's `wall_time`, for frames captured `warmup_s` or more after the first
    camera's stream started. `on_reading` is called then, once."""

    name = "latency"

    def __init__(
        self,
        warmup_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_reading: Callable[[], object] | None = None,
    ) -> None:
        self.warmup_s = warmup_s
        self.clock = clock
        self.on_reading = on_reading
        self.since: float | None = None
        """Frames captured before this are not counted; None until a stream started."""
        self.latencies_s: list[float] = []
        self.frames = 0

    def start(self, info: StreamInfo) -> None:
        if self.since is None:
            self.since = self.clock() + self.warmup_s
            if self.on_reading is not None:
                self.on_reading()

    def write(self, result: FrameResult) -> None:
        self.frames += 1
        captured = result.frame.wall_time
        if self.since is not None and captured >= self.since:
            self.latencies_s.append(self.clock() - captured)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class Trial:
    """N cameras for `seconds`: what reached the sinks, what was dropped, and the latency."""

    cameras: int
    seconds: float
    """From the start of reading to the end of the run (`RunSummary.elapsed_s`)."""
    fps: float
    """Each camera's frame rate."""
    frames: int
    """Frames whose results reached the sinks."""
    dropped: int
    """Frames the cameras' queues dropped because the detector fell behind."""
    latency_p50_ms: float
    latency_p99_ms: float
    skipped: int = 0
    """Frames read but not detected because nothing moved (motion gating), so not handed
    to the sinks."""

    @property
    def paced(self) -> bool:
        """At least `PACE_TOLERANCE` of the frames the cameras produced were handled: they
        reached the sinks, or motion gating left them out."""
        handled = self.frames + self.skipped
        return handled >= PACE_TOLERANCE * self.cameras * self.fps * self.seconds

    @property
    def held(self) -> bool:
        """No frame dropped, the cameras' pace kept, p99 latency under `LATENCY_LIMIT_S`."""
        return (
            self.dropped == 0
            and self.paced
            and self.latency_p99_ms < LATENCY_LIMIT_S * 1000  # nan (no frame) is not
        )


@dataclass
class CapacityResult:
    """The largest number of cameras held, every trial in the order run, and the overload."""

    capacity: int
    """0: not even one camera held."""
    max_cameras: int
    """The most cameras the search tried (`--capacity-max`)."""
    trials: list[Trial] = field(default_factory=list)
    overload: Trial | None = None
    """At `OVERLOAD` times the capacity (or `OVERLOAD` cameras where it is 0)."""


def find_capacity(trial: Callable[[int], Trial], max_cameras: int) -> CapacityResult:
    """The largest N from 1 to `max_cameras` whose `trial(N)` holds (trials are taken to
    hold for every N below one that holds): N doubles until a trial fails or reaches
    `max_cameras`, then the gap between the last N held and the first failed is bisected.
    Then one trial at `OVERLOAD` times that N."""
    if max_cameras < 1:
        raise ValueError(f"max_cameras must be >= 1, got {max_cameras}")
    trials: list[Trial] = []

    def holds(n: int) -> bool:
        trials.append(trial(n))
        return trials[-1].held

    held, failed = 0, None
    n = 1
    while failed is None:
        if holds(n):
            held = n
            if n == max_cameras:
                break
            n = min(2 * n, max_cameras)
        else:
            failed = n
    while failed is not None and failed - held > 1:
        middle = (held + failed) // 2
        if holds(middle):
            held = middle
        else:
            failed = middle
    overload = trial(OVERLOAD * max(held, 1))
    return CapacityResult(held, max_cameras, trials, overload)


@dataclass(frozen=True)
class CapacityRun:
    """How each trial runs: the clip, the detector (built once, kept warm across trials),
    the sinks, and how long."""

    clip: str
    setup: DetectorSetup
    detector: FrameDetector
    video: VideoOutput | None
    seconds: float = 10.0
    """How long each trial reads, from the first camera's stream start."""
    fps: float = 10.0
    """The clip's frame rate: what each camera produces."""
    motion: MotionConfig | None = None
    """Each camera's motion gating (`CameraConfig.motion`); None: the config's default."""

    def __call__(self, cameras: int) -> Trial:
        """One trial of `cameras` cameras (see the module)."""
        from pipeline.runner import Pipeline

        with tempfile.TemporaryDirectory(prefix="ssd-capacity-") as tmp:
            config = pipeline_config(self.clip, cameras, self.setup, Path(tmp), self.video)
            looped = [
                cam.model_copy(
                    update={
                        "source": cam.source.model_copy(update={"realtime": True, "loop": True}),
                        "queue_policy": "drop_oldest",
                        "queue_size": CAMERA_QUEUE,
                        **({"motion": self.motion} if self.motion is not None else {}),
                    }
                )
                for cam in config.cameras
            ]
            config = config.model_copy(update={"cameras": looped})
            latency = LatencySink(WARMUP_S)
            pipeline = Pipeline(config, detector=self.detector, extra_sinks=[latency])
            timer = threading.Timer(self.seconds, pipeline.stop.set)
            latency.on_reading = timer.start
            try:
                summary = pipeline.run()
            finally:
                timer.cancel()
        failed = [p for c in summary.cameras.values() if (p := c.problem)] + summary.sink_errors
        if summary.detector_error or failed:
            raise BenchError(f"capacity trial failed: {summary.detector_error or failed[0]}")
        return Trial(
            cameras=cameras,
            seconds=summary.elapsed_s,
            fps=self.fps,
            frames=latency.frames,
            dropped=sum(c.dropped for c in summary.cameras.values()),
            latency_p50_ms=percentile_ms(latency.latencies_s, 50),
            latency_p99_ms=percentile_ms(latency.latencies_s, 99),
            skipped=sum(c.motion_skipped for c in summary.cameras.values()),
        )


def format_capacity(result: CapacityResult) -> list[str]:
    """The capacity measurement as lines of text."""
    lines = ["capacity (cameras paced in real time, each trial in the order run):"]
    for t in result.trials:
        lines.append(trial_line(t))
    limit = f"p99 under {LATENCY_LIMIT_S * 1000:.0f} ms, no frame dropped"
    at_max = " (the most tried: --capacity-max)" if result.capacity == result.max_cameras else ""
    lines.append(f"  capacity: {result.capacity} camera(s) held{at_max} ({limit})")
    if result.overload is not None:
        lines.append(f"  {OVERLOAD}x overload:" + trial_line(result.overload)[1:])
    return lines


def trial_line(t: Trial) -> str:
    """One trial as a line of text."""
    return (
        f"  {t.cameras:4} camera(s) at {t.fps:g} fps, {t.seconds:.1f} s: "
        f"{'held' if t.held else 'not held'}; latency p50 {t.latency_p50_ms:.0f} ms, "
        f"p99 {t.latency_p99_ms:.0f} ms; {t.dropped} dropped; {t.frames} frames reached the "
        f"sinks ({t.frames / max(t.cameras * t.seconds, 1e-9):.1f}/s per camera)"
        + (f", {t.skipped} not detected (no motion)" if t.skipped else "")
    )
