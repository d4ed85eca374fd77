"""What a bench run measured: one result type per measurement, the whole report, and its
text and JSON forms."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cores import cores_line

if TYPE_CHECKING:
    import torch


@dataclass
class ModelResult:
    """Model-only throughput of one (model, runtime, precision, batch size)."""

    model: str
    weights: str
    runtime: str
    precision: str
    batch_size: int
    images_per_s: float
    runs: list[float]


@dataclass
class EndToEndResult:
    """The real pipeline on `copies` copies of a clip; stage times are busy ms per frame."""

    clip: str
    frame_size: str
    """W x H of the frames decoded (the clip's, or `--scale`'s)."""
    copies: int
    model: str
    runtime: str
    precision: str
    batch_size: int
    frames: int
    seconds: float
    frames_per_s: float
    runs: list[float]
    stages_ms_per_frame: dict[str, float] = field(default_factory=dict)
    video: str = ""
    """The video sink's encoder settings, e.g. "libx264 veryfast crf 23"."""
    video_kb_per_frame: float = 0.0
    """Size of the annotated video written, kB per frame (last run): with `video`, what the
    encoder's CPU time bought."""
    workers: int = 1
    """Batches the detector worked on at once (`detector.workers`)."""
    pipelined: bool = False
    """Whether the next batch was submitted before the one in flight was collected
    (`Detector.pipelined`)."""


@dataclass
class NaiveResult:
    """The per-frame OpenCV + model + draw + VideoWriter baseline on one copy of the clip,
    with torch's default number of threads (what a first script gets)."""

    threads: int
    frames: int
    seconds: float
    frames_per_s: float
    runs: list[float]
    video_kb_per_frame: float = 0.0
    """Size of the MPEG-4 Part 2 file `cv2.VideoWriter` wrote, kB per frame (last run)."""


@dataclass
class BenchReport:
    """Everything one `bench` run measured, with what it ran on."""

    date: str
    command: str
    device: str
    torch: str
    threads: int
    model_only: list[ModelResult]
    end_to_end: EndToEndResult | None
    naive: NaiveResult | None
    speedup_vs_naive: float | None
    """Median end-to-end frames/s over median naive frames/s."""
    speedup_runs: list[float] = field(default_factory=list)
    """Each end-to-end run over the naive run right after it."""


def device_name(device: torch.device) -> str:
    """A readable name of the device: the GPU's name, or the CPU model and core count."""
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: keep platform's name
    return f"{model}, {cores_line()} (CPU)"


def format_report(report: BenchReport) -> str:
    """The report as readable text."""
    lines = [
        f"{report.date}  {report.device}  torch {report.torch}, {report.threads} threads",
        report.command,
    ]
    if report.model_only:
        lines.append("model only (images/s, median of runs):")
        for r in report.model_only:
            spread = f"{min(r.runs):.1f}..{max(r.runs):.1f}"
            lines.append(f"  {r.model:30} {r.runtime:11} {r.precision:5} batch {r.batch_size:3}  "
                         f"{r.images_per_s:9.1f}  ({spread})")  # fmt: skip
    e2e = report.end_to_end
    if e2e is not None:
        lines.append(
            f"end to end: {e2e.copies} x {e2e.clip} ({e2e.frame_size}), {e2e.model} ({e2e.runtime} "
            f"{e2e.precision}), "
            f"batch {e2e.batch_size}, {e2e.workers} worker(s)"
            f"{', pipelined' if e2e.pipelined else ''}: "
            f"{e2e.frames_per_s:.1f} frames/s ({e2e.frames} frames; runs "
            f"{', '.join(f'{r:.1f}' for r in e2e.runs)})"
        )
        for stage, ms in e2e.stages_ms_per_frame.items():
            lines.append(f"  {stage:28} {ms:7.2f} ms/frame busy")
        lines.append(f"  video: {e2e.video}, {e2e.video_kb_per_frame:.1f} kB/frame")
    if report.naive is not None:
        lines.append(
            f"naive baseline: {report.naive.frames_per_s:.1f} frames/s "
            f"({report.naive.threads} torch threads; video: OpenCV mp4v, "
            f"{report.naive.video_kb_per_frame:.1f} kB/frame)"
        )
    if report.speedup_vs_naive is not None:
        pairs = ", ".join(f"{r:.2f}" for r in report.speedup_runs)
        lines.append(f"speed-up over naive: {report.speedup_vs_naive:.2f}x (run by run: {pairs})")
    return "\n".join(lines)


def report_dict(report: BenchReport) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    return asdict(report)
