"""The command: its options, the order the measurements run in, and the report printed."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from detector.request import BOUNDS
from pipeline.argtypes import nonempty, number, whole
from pipeline.bench.capacity import (
    LATENCY_LIMIT_S,
    LOOPED_CLIP,
    OVERLOAD,
    CapacityResult,
    CapacityRun,
    Trial,
    capacity_clip,
    find_capacity,
    format_capacity,
    trial_line,
)
from pipeline.bench.clips import DEFAULT_CLIP, scaled_clip
from pipeline.bench.end_to_end import DetectorSetup, VideoOutput, bench_end_to_end
from pipeline.bench.model_only import (
    PRECISION_CHOICES,
    RUNTIME_CHOICES,
    bench_device,
    bench_model,
    bench_weights,
    configure_torch,
    model_variants,
)
from pipeline.bench.naive import NaiveBaseline
from pipeline.bench.report import (
    BenchReport,
    EndToEndResult,
    ModelResult,
    NaiveResult,
    device_name,
    format_report,
    report_dict,
)
from pipeline.config import VIDEO_CODECS, X264_PRESETS
from pipeline.config.cameras import MotionConfig
from pipeline.types import Frame

if TYPE_CHECKING:
    import torch

WORKER_CHOICES = tuple(range(int(BOUNDS["workers"].ge or 1), int(BOUNDS["workers"].le or 1) + 1))
"""`--workers`: every count the detector takes."""
DEFAULT_MODELS = ("person_ssdlite", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16")
_BATCH = BOUNDS["batch_size"]
BATCH_SIZE = whole(int(_BATCH.ge or 1), int(_BATCH.le or 1))
"""A batch size within the detector's bounds."""
MAX_SIDE = 16384
"""`--scale`: the widest and highest frame (what H.264 encodes)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `python -m pipeline bench`."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--clip", type=nonempty, default=None,
        help=f"video file (default {DEFAULT_CLIP}; with --capacity {LOOPED_CLIP.name} where "
             "present)",
    )  # fmt: skip
    parser.add_argument(
        "--copies", type=whole(1, 1024), default=1, help="cameras reading the clip (1)"
    )
    parser.add_argument(
        "--scale", type=_size, default=None, metavar="WxH",
        help="re-encode the clip as H.264 at this size first (e.g. 1920x1080), for the "
             "end-to-end and naive runs",
    )  # fmt: skip
    parser.add_argument(
        "--model", type=nonempty, default="person_ssdlite", help="end-to-end and naive model"
    )
    e2e = DetectorSetup  # the end-to-end detector's defaults
    parser.add_argument(
        "--batch-size", type=_batch_size_or_auto, default=e2e.batch_size,
        help=f"end-to-end `detector.batch_size`: auto or a number ({e2e.batch_size})",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, choices=WORKER_CHOICES, default=e2e.workers,
        help=f"end-to-end `detector.workers`: batches detected at once ({e2e.workers})",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", type=nonempty, default=list(DEFAULT_MODELS),
        help="model-only models",
    )
    parser.add_argument(
        "--batch-sizes", nargs="+", type=BATCH_SIZE, default=[1, 2, 8],
        help="model-only batch sizes",
    )
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISION_CHOICES,
        help="model-only precisions (default: fp32; on CUDA also fp16 and bf16; on the CPU "
             "also int8 where precision auto runs it; int8 runs on onnxruntime, CPU only)",
    )  # fmt: skip
    parser.add_argument(
        "--device", type=nonempty, default="auto", help="auto | cpu | cuda | cuda:N"
    )
    parser.add_argument(
        "--video-codec", default=VideoOutput.codec, choices=VIDEO_CODECS,
        help=f"the end-to-end video sink's encoder ({VideoOutput.codec})",
    )  # fmt: skip
    parser.add_argument(
        "--no-video", action="store_true",
        help="end to end without the video sink (ZeroMQ and SQL only): for GPUs without a "
             "video encoder (H100, H200, A100), where x264 on the CPU would set the pace; the "
             "naive baseline still writes its video",
    )  # fmt: skip
    parser.add_argument(
        "--no-pipelining", action="store_true",
        help="end to end with each batch collected before the next is submitted (by default "
             "CUDA, and workers 2 on the CPU, detect the next batch while the last is collected)",
    )  # fmt: skip
    parser.add_argument(
        "--video-preset", choices=X264_PRESETS, default=None,
        help="the video sink's `preset` (default: the sink's default)",
    )  # fmt: skip
    parser.add_argument(
        "--video-crf", type=int, default=None, metavar="0..51",
        help="the video sink's `crf` (default: the sink's default)",
    )  # fmt: skip
    parser.add_argument(
        "--runtime",
        default=e2e.runtime,
        choices=("auto", *RUNTIME_CHOICES),
        help=f"end-to-end runtime, as `detector.runtime` ({e2e.runtime})",
    )
    parser.add_argument(
        "--precision",
        default=e2e.precision,
        choices=("auto", *PRECISION_CHOICES),
        help=f"end-to-end precision, as `detector.precision` ({e2e.precision})",
    )
    parser.add_argument(
        "--runtimes", nargs="+", choices=RUNTIME_CHOICES,
        help="model-only runtimes (default: torch, and onnxruntime on the CPU when installed; "
             "compile: torch.compile, with CUDA graphs on CUDA)",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=whole(0, 4096),
        default=0,
        help="torch intra-op threads (default: cores - 1, at least 1: the decoder and the "
        "sinks need the rest; docs/performance.md)",
    )
    parser.add_argument("--repeat", type=whole(1, 1000), default=3, help="runs per figure (3)")
    parser.add_argument(
        "--min-time", type=number(0, 3600), default=1.0,
        help="least seconds per model-only run (1.0)",
    )  # fmt: skip
    parser.add_argument(
        "--skip-model-only", action="store_true", help="leave out the model-only measurement"
    )
    parser.add_argument(
        "--skip-end-to-end", action="store_true", help="leave out the end-to-end measurement"
    )
    parser.add_argument(
        "--skip-naive", action="store_true", help="leave out the naive per-frame baseline"
    )
    parser.add_argument(
        "--capacity", action="store_true",
        help="instead: the most cameras paced in real time (the clip looped at its frame "
             "rate) held with no frame dropped and p99 capture-to-publish latency under "
             f"{LATENCY_LIMIT_S * 1000:.0f} ms, and the latency at {OVERLOAD}x that many",
    )  # fmt: skip
    parser.add_argument(
        "--capacity-max", type=whole(1, 1024), default=64,
        help="with --capacity: the most cameras tried (64)",
    )  # fmt: skip
    parser.add_argument(
        "--motion", action="store_true",
        help="with --capacity: each camera detects only frames where something moved "
             "(the `motion:` settings' defaults, enabled)",
    )  # fmt: skip
    parser.add_argument(
        "--motion-regions", action="store_true",
        help="with --capacity: as --motion, and each camera detects only the regions around "
             "what moved (`motion: {enabled: true, regions: true}`)",
    )  # fmt: skip
    parser.add_argument(
        "--trial-seconds", type=number(2, 3600), default=10.0,
        help="with --capacity: seconds each trial reads (10)",
    )  # fmt: skip


def _batch_size_or_auto(text: str) -> int | Literal["auto"]:
    """argparse type of --batch-size: "auto" or a batch size."""
    return "auto" if text.strip().lower() == "auto" else BATCH_SIZE(text)


def _size(text: str) -> tuple[int, int]:
    """argparse type of --scale: "WxH", both even (H.264 4:2:0)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WxH such as 1920x1080, got {text[:40]!r}"
        ) from None
    if not (2 <= width <= MAX_SIDE and 2 <= height <= MAX_SIDE) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(
            f"width and height must be even, from 2 to {MAX_SIDE}, got {text[:40]!r}"
        )
    return width, height


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print the report (text, or JSON with --json)."""
    if args.capacity:
        return _capacity(args)
    report = run_bench(args)
    if args.json:
        print(json.dumps(report_dict(report), indent=1))
    else:
        print(format_report(report))
    return 0



def run_bench(args: argparse.Namespace) -> BenchReport:
    """Every measurement `args` asks for (see `add_arguments`)."""
    import torch

    default_threads = torch.get_num_threads()  # what a first script gets: for the naive run
    device = bench_device(args.device)
    configure_torch(device, args.threads)
    args.clip = args.clip or DEFAULT_CLIP
    clip = str(Path(args.clip).expanduser())
    if not args.skip_end_to_end and not Path(clip).is_file():
        raise FileNotFoundError(f"clip not found: {clip}; pass --clip PATH to a video file")

    results = [] if args.skip_model_only else _model_only(args, device)
    end_to_end, naive = None, None
    if not args.skip_end_to_end:
        end_to_end, naive = _end_to_end(args, clip, device, default_threads)
    speedup, speedups = None, []
    if end_to_end is not None and naive is not None:
        speedup = end_to_end.frames_per_s / naive.frames_per_s
        speedups = [e / n for e, n in zip(end_to_end.runs, naive.runs, strict=True)]
    return BenchReport(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=bench_command(args),
        device=device_name(device),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        model_only=results,
        end_to_end=end_to_end,
        naive=naive,
        speedup_vs_naive=speedup,
        speedup_runs=speedups,
    )


def _model_only(args: argparse.Namespace, device: torch.device) -> list[ModelResult]:
    """Every (model, runtime, precision, batch size) the model-only options ask for."""
    from detector.engine import Detector
    from detector.request import DetectorRequest

    results: list[ModelResult] = []
    for name in args.models:
        weights = bench_weights(name)
        variants = model_variants(device, args.runtimes, args.precisions, name, weights)
        for runtime, precision in variants:
            request = DetectorRequest(
                model=name,
                weights=weights,
                device=str(device),
                precision=precision,  # type: ignore[arg-type]
                runtime=runtime,  # type: ignore[arg-type]
            )
            detector = Detector.build(request, announce=functools.partial(_note, args))
            for size in args.batch_sizes:
                result = bench_model(
                    detector, name, weights, precision, size, args.repeat, args.min_time
                )
                results.append(result)
                _note(args, f"model {name} {result.runtime} {precision} batch {size}: "
                            f"{result.images_per_s:.1f} images/s")  # fmt: skip
    return results


def _capacity(args: argparse.Namespace) -> int:
    """`--capacity`: the search of `pipeline.bench.capacity`, with the end-to-end sinks and
    the detector the options describe, built once and warmed up."""
    import av

    from pipeline.build import build_run_detector

    args.clip = args.clip or capacity_clip()
    clip = str(Path(args.clip).expanduser())
    if not Path(clip).is_file():
        raise FileNotFoundError(f"clip not found: {clip}; pass --clip PATH to a video file")
    with av.open(clip) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 10)
        image = next(container.decode(stream)).to_ndarray(format="rgb24")
    setup = DetectorSetup(
        args.model, bench_weights(args.model), args.device, args.runtime, args.precision,
        args.batch_size, args.workers,
    )  # fmt: skip
    detector = build_run_detector(setup.config(), functools.partial(_note, args))
    _note(args, detector.describe())
    detector.detect([Frame("warm-up", 0, 0.0, 0.0, image)] * detector.batch_size)
    video = None if args.no_video else VideoOutput(args.video_codec, args.video_preset,
                                                   args.video_crf)  # fmt: skip
    motion = None
    if args.motion or args.motion_regions:
        motion = MotionConfig.model_validate({"enabled": True, "regions": args.motion_regions})
    run = CapacityRun(clip, setup, detector, video, args.trial_seconds, fps, motion)

    def trial(cameras: int) -> Trial:
        result = run(cameras)
        _note(args, trial_line(result))
        return result

    result = find_capacity(trial, args.capacity_max)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    where = _cpu_or_gpu(setup.device)
    if args.json:
        print(json.dumps({"date": date, "command": bench_command(args), "device": where,
                          "detector": detector.describe(), "clip": clip, "fps": fps,
                          **_with_held(result)}, indent=1))  # fmt: skip
    else:
        print(f"{date}  {where}\n{detector.describe()}\nclip {clip} at {fps:g} fps")
        print("\n".join(format_capacity(result)))
    return 0


def _with_held(result: CapacityResult) -> dict[str, object]:
    """`result` as JSON-ready data, each trial with whether it held."""
    data = asdict(result)
    trials = [*result.trials, *([result.overload] if result.overload else [])]
    for entry, trial in zip([*data["trials"], data["overload"]], trials, strict=False):
        entry["held"] = trial.held
    return data


def _cpu_or_gpu(device: str) -> str:
    """`device_name` of the device a `device:` value resolves to (imports torch)."""
    return device_name(bench_device(device))


def _end_to_end(
    args: argparse.Namespace, clip: str, device: torch.device, naive_threads: int
) -> tuple[EndToEndResult, NaiveResult | None]:
    """The end-to-end runs, and the naive baseline's between them unless skipped."""
    weights = bench_weights(args.model)
    setup = DetectorSetup(
        args.model, weights, str(device), args.runtime, args.precision, args.batch_size,
        args.workers,
    )  # fmt: skip
    naive = None
    with tempfile.TemporaryDirectory(prefix="ssd-bench-clip-") as folder:
        if args.scale:
            clip = scaled_clip(clip, args.scale, Path(folder))
            _note(args, f"clip re-encoded at {args.scale[0]}x{args.scale[1]}: {clip}")
        video = (
            None
            if args.no_video
            else VideoOutput(args.video_codec, args.video_preset, args.video_crf)
        )
        # The naive runs alternate with the end-to-end ones: on a shared machine whose
        # speed drifts, both then see the same conditions.
        baseline = None
        if not args.skip_naive:
            baseline = NaiveBaseline(clip, args.model, weights, device, naive_threads)
        end_to_end = bench_end_to_end(
            clip, args.copies, setup, args.repeat, video,
            between=baseline.run_once if baseline is not None else None,
            pipelining=not args.no_pipelining,
        )  # fmt: skip
        _note(args, f"end to end: {end_to_end.frames_per_s:.1f} frames/s")
        if baseline is not None:
            naive = baseline.result()
            _note(args, f"naive: {naive.frames_per_s:.1f} frames/s")
    return end_to_end, naive


def bench_command(args: argparse.Namespace) -> str:
    """The command line that reproduces `args` (every option spelled out)."""
    parts = ["python -m pipeline bench"]
    for key in ("clip", "copies", "model", "batch_size", "device", "runtime", "precision",
                "workers", "video_codec", "threads", "repeat", "min_time"):  # fmt: skip
        parts.append(f"--{key.replace('_', '-')} {getattr(args, key)}")
    parts.append("--models " + " ".join(args.models))
    parts.append("--batch-sizes " + " ".join(str(b) for b in args.batch_sizes))
    if args.precisions:
        parts.append("--precisions " + " ".join(args.precisions))
    if args.runtimes:
        parts.append("--runtimes " + " ".join(args.runtimes))
    if args.scale:
        parts.append(f"--scale {args.scale[0]}x{args.scale[1]}")
    for key in ("video_preset", "video_crf"):
        if getattr(args, key) is not None:
            parts.append(f"--{key.replace('_', '-')} {getattr(args, key)}")
    if args.capacity:
        parts.append(f"--capacity --capacity-max {args.capacity_max} "
                     f"--trial-seconds {args.trial_seconds:g}")  # fmt: skip
    for flag in ("no_video", "no_pipelining", "skip_model_only", "skip_end_to_end",
                 "skip_naive", "json"):  # fmt: skip
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')}")
    return " ".join(parts)


def _note(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, file=sys.stderr, flush=True)
