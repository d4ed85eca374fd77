"""The command: the order the measurements run in, and the report printed."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.bench.capacity import (
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
    bench_device,
    bench_model,
    bench_weights,
    configure_torch,
    model_variants,
)
from pipeline.bench.naive import NaiveBaseline
from pipeline.bench.options import bench_command
from pipeline.bench.report import (
    BenchReport,
    EndToEndResult,
    ModelResult,
    NaiveResult,
    device_name,
    format_report,
    report_dict,
)
from pipeline.config.cameras import MotionConfig
from pipeline.folders import file_problem
from pipeline.types import Frame

if TYPE_CHECKING:
    import torch


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
    """Every measurement `args` asks for (see `pipeline.bench.options`)."""
    import torch

    default_threads = torch.get_num_threads()  # what a first script gets: for the naive run
    device = bench_device(args.device)
    configure_torch(args.threads)
    args.clip = args.clip or DEFAULT_CLIP
    clip = str(Path(args.clip).expanduser())
    if not args.skip_end_to_end:  # checked before the model-only runs, which take minutes
        clip = _video_clip(args.clip)
        _check_end_to_end(args, device)

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


def _video_clip(path: str) -> str:
    """`path`, expanded, once its first frame decodes. Raises FileNotFoundError or
    NotAVideoError, in one line naming the clip, when it does not."""
    from detector.clip_frames import NotAVideoError, sample_frames

    clip = Path(path).expanduser()
    if (why := file_problem(clip)) is not None:
        raise FileNotFoundError(f"clip {why}: {clip}; pass --clip PATH to a video file")
    try:
        sample_frames(clip, count=1)
    except NotAVideoError as exc:
        raise NotAVideoError(
            f"clip {clip} is not a video ({exc}); pass --clip PATH to a video file"
        ) from None
    return str(clip)


def _check_end_to_end(args: argparse.Namespace, device: torch.device) -> None:
    """Raises what `run` would say of the end-to-end detector and video sink the options
    describe (ValidationError, ModelConfigError, WeightsUnavailableError)."""
    from pipeline.preflight import check_detector

    setup = DetectorSetup(
        args.model, bench_weights(args.model), str(device), args.runtime, args.precision,
        args.batch_size, args.workers,
    )  # fmt: skip
    check_detector(setup.config())
    if not args.no_video:
        VideoOutput(args.video_codec, args.video_preset, args.video_crf).config(Path("out"))


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
    clip = _video_clip(args.clip)
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
        print(f"{date}  {where}\n{bench_command(args)}\n{detector.describe()}\n"
              f"clip {clip} at {fps:g} fps")  # fmt: skip
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


def _note(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, file=sys.stderr, flush=True)
