"""`python -m pipeline bench`: model-only throughput, end-to-end throughput, naive baseline.

Three measurements in one run (docs/performance.md explains them and records results):

- model only: images/s of the network alone (no decoding, resizing or post-processing) per
  model, batch size and precision, on random uint8 inputs of the model's input size;
- end to end: N copies of a clip through the real `Pipeline` (PyAV decoding, batched
  detection, IoU tracking, video + ZeroMQ + SQL sinks writing into a temporary folder),
  with the busy time of each stage;
- naive: the same clip the way a first script does it: OpenCV reads a frame, the model runs
  on it alone with a per-image float transform and a torchvision-style post-processing
  loop over classes, OpenCV draws the boxes and `cv2.VideoWriter` writes them.

Figures are the median of `repeat` runs, with every run listed. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import VIDEO_CODECS, X264_PRESETS, PipelineConfig, VideoSinkConfig
from pipeline.types import CameraStatus, FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import Sink

# torch, OpenCV and the detector are imported where used: `python -m pipeline` builds this
# command's options for every command, and must not pay for them.
if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from detector.engine import Detector
    from detector.ssd import SSD

DEFAULT_CLIP = "samples/pedestrians.mp4"
PRECISION_CHOICES = ("fp32", "fp16", "bf16", "int8")
RUNTIME_PRECISIONS = {
    "torch": ("fp32", "fp16", "bf16"),
    "compile": ("fp32", "fp16", "bf16"),
    "onnxruntime": ("fp32", "int8"),
}
DEFAULT_MODELS = ("person_ssdlite", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16")


class BenchError(RuntimeError):
    """A benchmark run failed (a camera or a sink of the end-to-end pipeline)."""


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
    return f"{model}, {os.cpu_count()} logical cores (CPU)"


# -- model only ------------------------------------------------------------------------------


def bench_model(
    detector: Detector,
    name: str,
    weights: str,
    precision: str,
    batch_size: int,
    repeat: int,
    min_time_s: float,
) -> ModelResult:
    """images/s of `detector.forward` on random uint8 inputs [batch_size, 3, *input_size]."""
    import torch

    device = detector.device
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (batch_size, 3, *detector.input_size), dtype=torch.uint8, generator=generator
    )
    images = images.to(device).contiguous(memory_format=torch.channels_last)

    def one_pass() -> None:
        with torch.inference_mode(), detector.autocast():
            detector.forward(images)

    one_pass()  # warm-up: kernel selection, allocator, cuDNN autotuning
    _sync(device)
    runs = []
    for _ in range(repeat):
        passes, started = 0, time.perf_counter()
        while True:
            one_pass()
            passes += 1
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= min_time_s:
                break
        runs.append(passes * batch_size / elapsed)
    return ModelResult(
        name, weights, detector.runtime, precision, batch_size, statistics.median(runs), runs
    )


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_variants(
    device: torch.device,
    runtimes: Sequence[str] | None,
    precisions: Sequence[str] | None,
    model: str = "",
    weights: str = "none",
) -> list[tuple[str, str]]:
    """(runtime, precision) pairs to measure for `model` with `weights`: torch and compile
    run fp32 (and fp16/bf16 on CUDA), ONNX Runtime fp32 and int8, on the CPU only."""
    from detector.compat import resolve_runtime

    if not runtimes:
        runtimes = ["torch"]
        if resolve_runtime("auto", device) == "onnxruntime":
            runtimes.append("onnxruntime")
    pairs = []
    for runtime in runtimes:
        resolve_runtime(runtime, device)  # a clear error for onnxruntime on CUDA
        for precision in model_precisions(device, precisions, model, weights):
            if precision in RUNTIME_PRECISIONS[runtime]:
                pairs.append((runtime, precision))
    return pairs


def model_precisions(
    device: torch.device, asked: Sequence[str] | None, model: str = "", weights: str = "none"
) -> list[str]:
    """Precisions to measure: `asked`, or fp32 everywhere, fp16 and bf16 on CUDA, and int8
    where `precision: auto` runs it (the bundled model on the CPU, `auto_precision`)."""
    from detector.compat import auto_precision, resolve_precision

    if asked:
        for p in asked:
            resolve_precision(p, device)  # a clear error for fp16 on the CPU
        return list(asked)
    if device.type == "cuda":
        return ["fp32", "fp16", "bf16"]
    auto = auto_precision("auto", model, weights, device, "onnxruntime")
    return ["fp32", "int8"] if auto == "int8" else ["fp32"]


# -- end to end ------------------------------------------------------------------------------


class TimedSink(Sink):
    """A sink that adds up the time its inner sink spends in `write` (its worker's busy time)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.wants_every_frame = inner.wants_every_frame  # type: ignore[misc]
        self.busy_s = 0.0
        self.frames = 0

    def start(self, info: StreamInfo) -> None:
        self.inner.start(info)

    def write(self, result: FrameResult) -> None:
        started = time.perf_counter()
        self.inner.write(result)
        self.busy_s += time.perf_counter() - started
        self.frames += 1

    def end(self, stream_end: StreamEnd) -> None:
        started = time.perf_counter()
        self.inner.end(stream_end)
        self.busy_s += time.perf_counter() - started

    def status(self, status: CameraStatus) -> None:
        self.inner.status(status)

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
    batch_size: int = 8
    workers: int = 1


@dataclass(frozen=True)
class VideoOutput:
    """The end-to-end video sink's encoder, as `sinks[type=video]` config values; None: the
    config's default."""

    codec: str = "libx264"
    preset: str | None = None
    crf: int | None = None

    def yaml(self) -> str:
        """The sink's encoder fields, as YAML lines of a sink list entry."""
        lines = [f"    codec: {self.codec}"]
        if self.preset is not None:
            lines.append(f"    preset: {self.preset}")
        if self.crf is not None:
            lines.append(f"    crf: {self.crf}")
        return "\n".join(lines)


def _pipeline_config(
    clip: str, copies: int, setup: DetectorSetup, out: Path, video: VideoOutput | None
) -> str:
    """The run's config; `video` None: no video sink."""
    cameras = "\n".join(f"  - id: cam{i}\n    source: {json.dumps(clip)}" for i in range(copies))
    video_sink = (
        ""
        if video is None
        else f"  - type: video\n    dir: {json.dumps(str(out / 'video'))}\n{video.yaml()}\n"
    )
    return f"""
cameras:
{cameras}
detector:
  model: {setup.model}
  weights: {json.dumps(setup.weights)}
  device: {setup.device}
  runtime: {setup.runtime}
  precision: {setup.precision}
  batch_size: {setup.batch_size}
  workers: {setup.workers}
  score_threshold: 0.5
  nms_threshold: 0.6
tracker:
  type: iou
sinks:
{video_sink}  - type: zmq
    endpoint: tcp://127.0.0.1:*
  - type: sql
    url: {json.dumps("sqlite:///" + str(out / "detections.db"))}
"""


def frame_size(clip: str) -> str:
    """ "W x H" of the clip's video stream."""
    import av

    with av.open(clip) as container:
        ctx = container.streams.video[0].codec_context
        return f"{ctx.width}x{ctx.height}"


def scaled_clip(clip: str, size: tuple[int, int], folder: Path) -> str:
    """`clip` re-encoded as H.264 (libx264 veryfast, CRF 23) at `size` (W, H) into `folder`:
    to measure at a resolution the clip does not have (`--scale 1920x1080`)."""
    import av

    width, height = size
    path = folder / f"scaled_{width}x{height}.mp4"
    with av.open(clip) as inp, av.open(str(path), "w") as out:
        source = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=source.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in inp.decode(source):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts = None  # numbered by the encoder at the stream's rate
            out.mux(stream.encode(scaled))
        out.mux(stream.encode(None))
    return str(path)


def _size(text: str) -> tuple[int, int]:
    """argparse type of --scale: "WxH", both even (H.264 4:2:0)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 1920x1080, got {text!r}") from None
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"width and height must be even and >= 2, got {text!r}")
    return width, height


def decode_ms_per_frame(clip: str, max_frames: int | None = None) -> tuple[float, int]:
    """Busy time of decoding `clip` to RGB with the pipeline's own source, ms per frame."""
    from pipeline.sources import AVSource

    source = AVSource(clip, live=False)
    source.open()
    frames, started = 0, time.perf_counter()
    try:
        for _ in source.frames():
            frames += 1
            if max_frames is not None and frames >= max_frames:
                break
    finally:
        source.close()
    return 1000 * (time.perf_counter() - started) / max(frames, 1), frames


def bench_end_to_end(
    clip: str,
    copies: int,
    setup: DetectorSetup,
    repeat: int,
    video: VideoOutput | None = VideoOutput(),
    between: Callable[[], object] | None = None,
) -> EndToEndResult:
    """frames/s of the whole pipeline with its real sinks; stage busy times of the last run.

    `setup.runtime` and `setup.precision` are `detector.*` values ("auto" included); the
    result names the ones that ran. On CUDA, timing the detector's stages synchronises the
    device after each one, which removes the overlap between batches: there the stages are
    timed in one extra run that does not count towards frames/s. `between` runs after each
    counted run: the naive baseline's runs go there, so that both see the same state of a
    shared machine.
    """
    from detector.timing import StageTimes
    from pipeline.build import build_detector, build_sink
    from pipeline.config import parse_config
    from pipeline.runner import Pipeline

    cuda = setup.device.startswith("cuda")
    runs: list[float] = []
    stages: dict[str, float] = {}
    frames, seconds, ran_on, workers, precision = 0, 0.0, setup.runtime, 1, setup.precision
    video_kb, video_settings = 0.0, ""
    for run in range(repeat + 1 if cuda else repeat):
        counted = run < repeat
        timed = not cuda or not counted
        with tempfile.TemporaryDirectory(prefix="ssd-bench-") as tmp:
            text = _pipeline_config(clip, copies, setup, Path(tmp), video)
            config = parse_config(text, source="<bench>")
            video_settings = _video_settings(config)
            detector = build_detector(config.detector)
            detector.stage_times = StageTimes() if timed else None
            sinks = [TimedSink(build_sink(sc, detector.labels, "<bench>")) for sc in config.sinks]
            bare = config.model_copy(update={"sinks": []})
            summary = Pipeline(bare, detector=detector, extra_sinks=sinks).run()
            if not summary.ok:
                errors = [c.error for c in summary.cameras.values() if c.error]
                raise BenchError(f"bench run failed: {'; '.join(errors + summary.sink_errors)}")
            ran_on, workers, precision = detector.runtime, detector.workers, detector.precision
            if counted:
                frames, seconds = summary.frames, summary.elapsed_s
                runs.append(frames / seconds)
                written = sum(p.stat().st_size for p in (Path(tmp) / "video").rglob("*.mp4"))
                video_kb = written / 1000 / max(frames, 1)
                if between is not None:
                    between()
            if detector.stage_times is not None:
                times = detector.stage_times
                n = max(times.images, 1)
                stages = {
                    "detect_prepare": 1000 * times.prepare_s / n,
                    "detect_forward": 1000 * times.forward_s / n,
                    "detect_postprocess": 1000 * times.postprocess_s / n,
                }
                for sink in sinks:
                    stages[f"sink_{sink.name}"] = 1000 * sink.busy_s / max(sink.frames, 1)
    stages["decode (separate pass)"] = decode_ms_per_frame(clip)[0]
    return EndToEndResult(
        clip=clip,
        frame_size=frame_size(clip),
        copies=copies,
        model=setup.model,
        runtime=ran_on,
        precision=precision,
        batch_size=setup.batch_size,
        frames=frames,
        seconds=seconds,
        frames_per_s=statistics.median(runs),
        runs=runs,
        stages_ms_per_frame=stages,
        video=video_settings,
        video_kb_per_frame=video_kb,
        workers=workers,
    )


def _video_settings(config: PipelineConfig) -> str:
    """The video sink's encoder settings as the run's config resolved them; "none" without
    a video sink."""
    for sink in config.sinks:
        if isinstance(sink, VideoSinkConfig):
            return f"{sink.codec} {sink.preset} crf {sink.crf}"
    return "none"


# -- naive baseline --------------------------------------------------------------------------


def naive_postprocess(
    box_regression: Tensor,
    class_logits: Tensor,
    model: SSD,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    topk_candidates: int = 400,
) -> tuple[Tensor, Tensor, Tensor]:
    """One image, as torchvision's `SSD.postprocess_detections`: a Python loop over classes.

    box_regression [A, 4], class_logits [A, C] -> boxes [N, 4] (normalised), scores, labels.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.ops import batched_nms

    boxes = model.box_coder.decode(box_regression[None], model.anchors)[0].clamp(0.0, 1.0)
    if model.score_fn == "softmax":
        scores = F.softmax(class_logits, dim=-1)
    else:
        scores = torch.sigmoid(class_logits)
    all_boxes, all_scores, all_labels = [], [], []
    for label in range(scores.shape[-1]):
        if label == model.background_class:
            continue
        score = scores[:, label]
        keep = score > score_threshold
        score, box = score[keep], boxes[keep]
        score, index = score.topk(min(topk_candidates, score.numel()))
        all_boxes.append(box[index])
        all_scores.append(score)
        all_labels.append(torch.full_like(index, label))
    image_boxes, image_scores = torch.cat(all_boxes), torch.cat(all_scores)
    image_labels = torch.cat(all_labels)
    keep = batched_nms(image_boxes, image_scores, image_labels, nms_threshold)[:max_detections]
    return image_boxes[keep], image_scores[keep], image_labels[keep]


def run_naive(
    clip: str,
    model: SSD,
    labels: LabelMap,
    out_path: Path,
    device: torch.device,
    max_frames: int | None = None,
) -> tuple[int, float]:
    """OpenCV read -> per-frame float transform -> model -> loop postprocess -> draw -> write.

    Returns (frames, seconds).
    """
    import cv2
    import torch
    import torch.nn.functional as F

    capture = cv2.VideoCapture(clip)
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {clip}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer: cv2.VideoWriter | None = None
    frames, started = 0, time.perf_counter()
    try:
        while max_frames is None or frames < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            height, width = bgr.shape[:2]
            if writer is None:
                fourcc = cv2.VideoWriter.fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(out_path), fourcc, fps, (width, height))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            # torchvision's default transform: float 0..1, then resize (per image).
            image = torch.from_numpy(rgb).to(device).permute(2, 0, 1).float() / 255
            image = F.interpolate(
                image[None], size=model.input_size, mode="bilinear", align_corners=False
            )
            with torch.no_grad():
                regression, logits = model(image * 255)
                boxes, scores, classes = naive_postprocess(
                    regression[0], logits[0], model, 0.5, 0.6, 100
                )
            boxes = (boxes * torch.tensor([width, height, width, height], device=device)).cpu()
            for box, score, label in zip(boxes.tolist(), scores.tolist(), classes.tolist(),
                                         strict=True):  # fmt: skip
                x1, y1, x2, y2 = (int(v) for v in box)
                cv2.rectangle(bgr, (x1, y1), (x2, y2), (0, 255, 0), 2)
                caption = f"{labels.name(label)} {score:.2f}"
                cv2.putText(bgr, caption, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (0, 255, 0), 1)  # fmt: skip
            writer.write(bgr)
            frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return frames, time.perf_counter() - started


class NaiveBaseline:
    """The naive baseline's runs, one at a time (`run_once`), on one copy of `clip`, with
    `threads` torch threads and OpenCV's default threads while it runs (what a first script
    gets)."""

    def __init__(
        self, clip: str, model_name: str, weights: str, device: torch.device, threads: int
    ) -> None:
        from detector.models import build_model

        model, self.labels = build_model(model_name, weights)
        self.model = model.to(device).eval()
        self.clip, self.device, self.threads = clip, device, threads
        self.runs: list[float] = []
        self.frames, self.seconds, self.video_kb = 0, 0.0, 0.0

    def run_once(self) -> float:
        """One run over the clip; its frames/s."""
        import cv2
        import torch

        tuned, opencv_threads = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(self.threads)
        cv2.setNumThreads(-1)  # OpenCV's default, whatever a pipeline run set before
        try:
            with tempfile.TemporaryDirectory(prefix="ssd-naive-") as tmp:
                out = Path(tmp) / "naive.mp4"
                self.frames, self.seconds = run_naive(
                    self.clip, self.model, self.labels, out, self.device
                )
                size = out.stat().st_size if out.exists() else 0
                self.video_kb = size / 1000 / max(self.frames, 1)
        finally:
            torch.set_num_threads(tuned)
            cv2.setNumThreads(opencv_threads)
        self.runs.append(self.frames / self.seconds)
        return self.runs[-1]

    def result(self) -> NaiveResult:
        """The runs so far (at least one)."""
        return NaiveResult(
            self.threads,
            self.frames,
            self.seconds,
            statistics.median(self.runs),
            list(self.runs),
            self.video_kb,
        )


# -- command ---------------------------------------------------------------------------------


def run_bench(args: argparse.Namespace) -> BenchReport:
    """Every measurement `args` asks for (see `add_arguments`)."""
    import torch

    from detector.compat import KeywordDetector as Detector
    from detector.compat import resolve_device

    default_threads = torch.get_num_threads()  # what a first script gets: for the naive run
    torch.set_flush_denormal(True)  # random weights make denormals; see Pipeline.run
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - 1))
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick kernels
    clip = str(Path(args.clip).expanduser())
    if not args.skip_end_to_end and not Path(clip).is_file():
        raise FileNotFoundError(f"clip not found: {clip}; pass --clip PATH to a video file")

    results: list[ModelResult] = []
    if not args.skip_model_only:
        for name in args.models:
            weights = "default" if name == "person_ssdlite" else "none"
            variants = model_variants(device, args.runtimes, args.precisions, name, weights)
            for runtime, precision in variants:
                detector = Detector.build(
                    name, weights, str(device), precision=precision, runtime=runtime
                )
                for size in args.batch_sizes:
                    result = bench_model(
                        detector, name, weights, precision, size, args.repeat, args.min_time
                    )
                    results.append(result)
                    _note(args, f"model {name} {result.runtime} {precision} batch {size}: "
                                f"{result.images_per_s:.1f} images/s")  # fmt: skip
    end_to_end = naive = None
    weights = "default" if args.model == "person_ssdlite" else "none"
    if not args.skip_end_to_end:
        setup = DetectorSetup(
            args.model, weights, str(device), args.runtime, args.precision, args.batch_size,
            args.workers,
        )  # fmt: skip
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
                baseline = NaiveBaseline(clip, args.model, weights, device, default_threads)
            end_to_end = bench_end_to_end(
                clip, args.copies, setup, args.repeat, video,
                between=baseline.run_once if baseline is not None else None,
            )  # fmt: skip
            _note(args, f"end to end: {end_to_end.frames_per_s:.1f} frames/s")
            if baseline is not None:
                naive = baseline.result()
                _note(args, f"naive: {naive.frames_per_s:.1f} frames/s")
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
    for flag in ("no_video", "skip_model_only", "skip_end_to_end", "skip_naive", "json"):
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')}")
    return " ".join(parts)


def _note(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, file=sys.stderr, flush=True)


def format_report(report: BenchReport) -> str:
    """The report as readable text."""
    lines = [f"{report.date}  {report.device}  torch {report.torch}, {report.threads} threads"]
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
            f"batch {e2e.batch_size}, {e2e.workers} worker(s): "
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `python -m pipeline bench`."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help=f"video file (default {DEFAULT_CLIP})")
    parser.add_argument("--copies", type=int, default=1, help="cameras reading the clip (1)")
    parser.add_argument(
        "--scale", type=_size, default=None, metavar="WxH",
        help="re-encode the clip as H.264 at this size first (e.g. 1920x1080), for the "
             "end-to-end and naive runs",
    )  # fmt: skip
    parser.add_argument("--model", default="person_ssdlite", help="end-to-end and naive model")
    parser.add_argument("--batch-size", type=int, default=8, help="end-to-end batch size (8)")
    parser.add_argument(
        "--workers", type=int, choices=(1, 2), default=1,
        help="end-to-end `detector.workers`: batches detected at once (1)",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", default=list(DEFAULT_MODELS), help="model-only models"
    )
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=[1, 2, 8], help="model-only batch sizes"
    )
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISION_CHOICES,
        help="model-only precisions (default: fp32; on CUDA also fp16 and bf16; on the CPU "
             "also int8 where precision auto runs it; int8 runs on onnxruntime, CPU only)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--video-codec", default="libx264", choices=VIDEO_CODECS,
        help="the end-to-end video sink's encoder (libx264)",
    )  # fmt: skip
    parser.add_argument(
        "--no-video", action="store_true",
        help="end to end without the video sink (ZeroMQ and SQL only): for GPUs without a "
             "video encoder (H100, H200, A100), where x264 on the CPU would set the pace; the "
             "naive baseline still writes its video",
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
        default="auto",
        choices=("auto", "torch", "compile", "onnxruntime"),
        help="end-to-end runtime, as `detector.runtime` (auto)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", *PRECISION_CHOICES),
        help="end-to-end precision, as `detector.precision` (auto)",
    )
    parser.add_argument(
        "--runtimes", nargs="+", choices=("torch", "compile", "onnxruntime"),
        help="model-only runtimes (default: torch, and onnxruntime on the CPU when installed; "
             "compile: torch.compile, with CUDA graphs on CUDA)",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (default: cores - 1, at least 1: the decoder and the "
        "sinks need the rest; docs/performance.md)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (3)")
    parser.add_argument(
        "--min-time", type=float, default=1.0, help="least seconds per model-only run (1.0)"
    )
    parser.add_argument("--skip-model-only", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--skip-naive", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print the report (text, or JSON with --json)."""
    report = run_bench(args)
    if args.json:
        print(json.dumps(report_dict(report), indent=1))
    else:
        print(format_report(report))
    return 0


def report_dict(report: BenchReport) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    return asdict(report)
