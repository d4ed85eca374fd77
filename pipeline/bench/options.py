"""The options of `python -m pipeline bench`, each stated once, and the command line they make."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from detector.request import BOUNDS
from pipeline.argtypes import frame_size, nonempty, seconds, whole, whole_like
from pipeline.bench.capacity import LATENCY_LIMIT_S, LOOPED_CLIP, OVERLOAD
from pipeline.bench.clips import DEFAULT_CLIP
from pipeline.bench.end_to_end import DetectorSetup, VideoOutput
from pipeline.bench.model_only import PRECISION_CHOICES, RUNTIME_CHOICES
from pipeline.config import VIDEO_CODECS, X264_PRESETS, VideoSinkConfig

WORKER_CHOICES = tuple(range(int(BOUNDS["workers"].ge or 1), int(BOUNDS["workers"].le or 1) + 1))
"""`--workers`: every count the detector takes."""
DEFAULT_MODELS = ("person_ssdlite", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16")
_BATCH = BOUNDS["batch_size"]
BATCH_SIZE = whole(int(_BATCH.ge or 1), int(_BATCH.le or 1))
"""A batch size within the detector's bounds."""
VIDEO_CRF = whole_like(VideoSinkConfig, "crf")
"""A `crf` within the video sink's bounds."""


def _batch_size_or_auto(text: str) -> int | Literal["auto"]:
    """argparse type of --batch-size: "auto" or a batch size."""
    return "auto" if text.strip().lower() == "auto" else BATCH_SIZE(text)


def _shown(value: Any) -> str:
    """A value as typed on the command line: a float without a needless `.0`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass(frozen=True)
class Option:
    """One option: its flag and what `ArgumentParser.add_argument` takes for it; `switch`: a
    flag without a value (`store_true`). `%(default)s` in `help` shows the default; `shown`
    writes a value back as `type` reads it."""

    flag: str
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    choices: Sequence[Any] | None = None
    nargs: Literal["+"] | None = None
    metavar: str | None = None
    switch: bool = False
    shown: Callable[[Any], str] = _shown

    @property
    def dest(self) -> str:
        """The option's name in the parsed arguments."""
        return self.flag.removeprefix("--").replace("-", "_")

    def spelled(self, value: Any) -> list[str]:
        """The words of the command line that give this option `value` (none when unset)."""
        if self.switch:
            return [self.flag] if value else []
        if value is None:
            return []
        values = value if self.nargs else [value]
        return [self.flag, *(self.shown(v) for v in values)]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.switch:
            parser.add_argument(self.flag, action="store_true", help=self.help)
            return
        parser.add_argument(
            self.flag, default=self.default, type=self.type, choices=self.choices,
            nargs=self.nargs, metavar=self.metavar, help=self.help,
        )  # fmt: skip


def _switch(flag: str, help: str) -> Option:
    return Option(flag, help, switch=True)


_E2E = DetectorSetup  # the end-to-end detector's defaults

OPTIONS: tuple[Option, ...] = (
    _switch("--json", "print one JSON object"),
    Option("--clip", f"video file (default {DEFAULT_CLIP}; with --capacity {LOOPED_CLIP.name} "
           "where present)", type=nonempty),
    Option("--copies", "cameras reading the clip (%(default)s)", 1, whole(1, 1024)),
    Option("--scale", "re-encode the clip as H.264 at this size first (e.g. 1920x1080), for the "
           "end-to-end and naive runs", type=frame_size, metavar="WxH", shown=_shown_size),
    Option("--model", "end-to-end and naive model", "person_ssdlite", nonempty),
    Option("--batch-size", "end-to-end `detector.batch_size`: auto or a number (%(default)s)",
           _E2E.batch_size, _batch_size_or_auto),
    Option("--workers", "end-to-end `detector.workers`: batches detected at once (%(default)s)",
           _E2E.workers, int, WORKER_CHOICES),
    Option("--models", "model-only models", list(DEFAULT_MODELS), nonempty, nargs="+"),
    Option("--batch-sizes", "model-only batch sizes", [1, 2, 8], BATCH_SIZE, nargs="+"),
    Option("--precisions", "model-only precisions (default: fp32; on CUDA also fp16 and bf16; "
           "on the CPU also int8 where precision auto runs it; int8 runs on onnxruntime, CPU "
           "only)", choices=PRECISION_CHOICES, nargs="+"),
    Option("--device", "auto | cpu | cuda | cuda:N", "auto", nonempty),
    Option("--video-codec", "the end-to-end video sink's encoder (%(default)s)",
           VideoOutput.codec, choices=VIDEO_CODECS),
    _switch("--no-video", "end to end without the video sink (ZeroMQ and SQL only): for GPUs "
            "without a video encoder (H100, H200, A100), where x264 on the CPU would set the "
            "pace; the naive baseline still writes its video"),
    _switch("--no-pipelining", "end to end with each batch collected before the next is "
            "submitted (by default CUDA, and workers 2 on the CPU, detect the next batch while "
            "the last is collected)"),
    Option("--video-preset", "the video sink's `preset` (default: the sink's default)",
           choices=X264_PRESETS),
    Option("--video-crf", "the video sink's `crf` (default: the sink's default)",
           type=VIDEO_CRF, metavar="0..51"),
    Option("--runtime", "end-to-end runtime, as `detector.runtime` (%(default)s)",
           _E2E.runtime, choices=("auto", *RUNTIME_CHOICES)),
    Option("--precision", "end-to-end precision, as `detector.precision` (%(default)s)",
           _E2E.precision, choices=("auto", *PRECISION_CHOICES)),
    Option("--runtimes", "model-only runtimes (default: torch, and onnxruntime on the CPU when "
           "installed; compile: torch.compile, with CUDA graphs on CUDA)",
           choices=RUNTIME_CHOICES, nargs="+"),
    Option("--threads", "torch intra-op threads (default: cores - 1, at least 1: the decoder "
           "and the sinks need the rest; docs/performance.md)", 0, whole(0, 4096)),
    Option("--repeat", "runs per figure (%(default)s)", 3, whole(1, 1000)),
    Option("--min-time", "least seconds per model-only run (%(default)s)", 1.0, seconds(0, 3600)),
    _switch("--skip-model-only", "leave out the model-only measurement"),
    _switch("--skip-end-to-end", "leave out the end-to-end measurement"),
    _switch("--skip-naive", "leave out the naive per-frame baseline"),
    _switch("--capacity", "instead: the most cameras paced in real time (the clip looped at its "
            "frame rate) held with no frame dropped and p99 capture-to-publish latency under "
            f"{LATENCY_LIMIT_S * 1000:.0f} ms, and the latency at {OVERLOAD}x that many"),
    Option("--capacity-max", "with --capacity: the most cameras tried (%(default)s)", 64,
           whole(1, 1024)),
    _switch("--motion", "with --capacity: each camera detects only frames where something "
            "moved (the `motion:` settings' defaults, enabled)"),
    _switch("--motion-regions", "with --capacity: as --motion, and each camera detects only the "
            "regions around what moved (`motion: {enabled: true, regions: true}`)"),
    Option("--trial-seconds", "with --capacity: seconds each trial reads (%(default)g)", 10.0,
           seconds(2, 3600)),
)  # fmt: skip
"""Every option of the command, in the order `--help` lists them."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `python -m pipeline bench`."""
    for option in OPTIONS:
        option.add_to(parser)


def bench_command(args: argparse.Namespace) -> str:
    """The command line that reproduces `args`: every option of `OPTIONS` that has a value
    spelled out, defaults too (so that it means the same after a default changes)."""
    words = [word for option in OPTIONS for word in option.spelled(getattr(args, option.dest))]
    return shlex.join(["python", "-m", "pipeline", "bench", *words])
