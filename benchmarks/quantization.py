"""int8 against float32 on real footage: people per frame, matched boxes, and speed.

Runs the model three ways over a clip (PyTorch float32, the reference; ONNX Runtime
float32; ONNX Runtime int8 as `precision: int8` builds it) and prints, for each span of
frames, every network's detections per frame (people, for the person model), its
difference from float32's, and the recall and precision of its boxes against float32's
(same label, IoU >= 0.5, `detector.agreement`); then the network's images/s in float32
and int8 on the same inputs, interleaved, and their ratio. By default the clip is vtest.avi,
all of it and frames 200 on: the default calibration clip (samples/pedestrians.mp4) is a
re-encoding of its first 200 frames, so the second span holds only frames the quantizer
never saw. Figures: docs/performance.md, "int8 accuracy".

`--sweep` instead quantizes the ONNX network once per group of convolutions with that
group alone kept in float32 (`detector.quantize.quantize_int8`'s `float_layers`) and prints
the same agreement figures against ONNX Runtime float32: how `detector.quantize.FLOAT_LAYERS`
was chosen.

    python -m benchmarks.quantization [--clip ../shared/data/vtest.avi --spans 0: 200:]
    python -m benchmarks.quantization --sweep [PREFIX ...] [--spans 200:]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from detector import Detector, DetectorRequest
from detector.agreement import compare
from detector.quantize import CALIBRATION_FRAMES, FLOAT_LAYERS, quantize_int8
from pipeline.bench.model_only import bench_model
from pipeline.types import Detections, Frame

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"
REFERENCE = "torch fp32"


@dataclasses.dataclass(frozen=True)
class Span:
    """Frames `start`..`stop`-1 of the clip (`stop` None: to its end)."""

    start: int
    stop: int | None

    @classmethod
    def parse(cls, text: str) -> Span:
        """ "START:STOP" or "START:" -> Span."""
        start, _, stop = text.partition(":")
        return cls(int(start or 0), int(stop) if stop else None)

    def of(self, items: Sequence[Detections]) -> Sequence[Detections]:
        return items[self.start : self.stop]

    def label(self, frames: int) -> str:
        return f"{self.start}-{min(self.stop or frames, frames) - 1}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One network over one span, against the reference."""

    span: str
    network: str
    per_frame: float
    difference: float
    """Relative to the reference's detections per frame (0.01: 1 % more)."""
    recall: float
    precision: float

    def markdown(self) -> str:
        if self.network == REFERENCE:
            return f"| {self.span} | {self.network} | {self.per_frame:.3f} | | | |"
        return (
            f"| {self.span} | {self.network} | {self.per_frame:.3f} | {self.difference:+.2%} "
            f"| {self.recall:.3f} | {self.precision:.3f} |"
        )


HEADER = (
    "| frames | network | detections/frame | vs float32 | recall | precision |\n"
    "|---|---|---|---|---|---|"
)


def read_frames(clip: Path, stop: int | None) -> list[Frame]:
    """Frames 0..stop-1 of `clip` (all with None), RGB."""
    frames = []
    with av.open(str(clip)) as container:
        for i, image in enumerate(container.decode(video=0)):
            if stop is not None and i >= stop:
                break
            pts = float(image.time or 0.0)
            frames.append(Frame("clip", i, pts, 0.0, image.to_ndarray(format="rgb24")))
    if not frames:
        raise SystemExit(f"{clip} has no frames")
    return frames


def detect_all(detector: Detector, frames: list[Frame], batch: int) -> list[Detections]:
    found: list[Detections] = []
    for i in range(0, len(frames), batch):
        found += detector.detect(frames[i : i + batch])
    return found


def rows(
    found: dict[str, list[Detections]], reference: str, spans: Sequence[Span], frames: int
) -> list[Row]:
    """Each network of `found` over each span, against `found[reference]`."""
    table = []
    for span in spans:
        ref = span.of(found[reference])
        ref_per_frame = sum(len(d) for d in ref) / max(len(ref), 1)
        for name, detections in found.items():
            agreement = compare(ref, span.of(detections))
            per_frame = agreement.candidate / max(len(ref), 1)
            table.append(
                Row(
                    span.label(frames),
                    name,
                    per_frame,
                    per_frame / ref_per_frame - 1 if ref_per_frame else 0.0,
                    agreement.recall,
                    agreement.precision,
                )
            )
    return table


def images_per_s(detectors: dict[str, Detector], batch: int, rounds: int) -> dict[str, float]:
    """Median images/s of each detector's network (`pipeline.bench.model_only.bench_model`:
    the same seeded random inputs, a warm-up, 1 s a run), measured in turn, so that load on
    the machine hits all alike."""
    runs: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(rounds):
        for name, detector in detectors.items():
            result = bench_model(
                detector, name, "default", detector.precision, batch, 1, min_time_s=1.0
            )
            runs[name].append(result.images_per_s)
    return {name: statistics.median(r) for name, r in runs.items()}


class FileNetwork:
    """An ONNX file run by ONNX Runtime on the CPU, as `detector.networks.Network`: for the
    sweep's variants, which no detector option builds."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 images [B, 3, H, W] -> box_regression [B, A, 4], class_logits [B, A, C]."""
        outputs = self.session.run(None, {self.input: np.ascontiguousarray(images.numpy())})
        return torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1])


def layer_groups(network: Path) -> list[str]:
    """Parameter-name prefixes of the Conv nodes of `network`, one per block of the model
    ("backbone.blocks.3.", "head.cls.0.", ...: up to the first number), in graph order."""
    import onnx

    groups: dict[str, None] = {}
    for node in onnx.load(str(network), load_external_data=False).graph.node:
        params = [name.split(".") for name in node.input[1:] if "." in name]
        if node.op_type == "Conv" and params:
            parts = params[0]
            end = next((i for i, part in enumerate(parts) if part.isdigit()), 1)
            groups[".".join(parts[: end + 1]) + "."] = None
    return list(groups)


def sweep(
    fp32: Detector,
    frames: list[Frame],
    spans: Sequence[Span],
    batch: int,
    calibration: np.ndarray,
    groups: Sequence[str] = (),
) -> None:
    """Agreement with `fp32` (ONNX Runtime) of int8 networks that keep no convolution in
    float32, then each of `groups` (default: every group of `layer_groups`) alone."""
    source = fp32.network.path  # type: ignore[attr-defined]  # an OnnxRuntimeForward
    threads = fp32.network.threads  # type: ignore[attr-defined]
    reference = detect_all(fp32, frames, batch)
    print(f"sweep against onnxruntime fp32; {FLOAT_LAYERS=}\n{HEADER}")
    with tempfile.TemporaryDirectory(prefix="ssd-quant-sweep-") as scratch:
        ranges = Path(scratch) / "ranges"  # calibrated once, reused by every variant
        for group in ["", *(groups or layer_groups(source))]:
            out = Path(scratch) / "int8.onnx"
            quantize_int8(source, out, calibration, "images", (group,) if group else (), ranges)
            fp32.network = FileNetwork(out, threads)
            found = {"fp32": reference, group or "(none)": detect_all(fp32, frames, batch)}
            for row in rows(found, "fp32", spans, len(frames))[1::2]:
                print(row.markdown(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video to compare on")
    parser.add_argument(
        "--spans", type=Span.parse, nargs="+", default=[Span(0, None), Span(200, None)],
        help="frame ranges START:STOP (STOP excluded, empty: the end); default 0: 200:",
    )  # fmt: skip
    parser.add_argument("--model", default="person_ssdlite")
    parser.add_argument("--calibration", type=Path, default=None, help="int8 calibration clip")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per network")
    parser.add_argument(
        "--sweep", nargs="*", metavar="PREFIX", default=None,
        help="the per-layer sweep instead (slow): every block, or those named (e.g. "
             "backbone.blocks.0.)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    torch.set_flush_denormal(True)
    last = None if any(s.stop is None for s in args.spans) else max(s.stop for s in args.spans)
    frames = read_frames(args.clip, last)
    # fp32 asked for: under precision auto the bundled model runs in int8 on VNNI CPUs.
    asked = DetectorRequest(
        model=args.model, device="cpu", precision="fp32", score_threshold=args.score_threshold
    )
    onnx_fp32 = Detector.build(dataclasses.replace(asked, runtime="onnxruntime"))
    if args.sweep is not None:
        from detector.quantize import DEFAULT_CALIBRATION, calibration_images

        images = calibration_images(args.calibration or DEFAULT_CALIBRATION, CALIBRATION_FRAMES)
        inputs = torch.cat([onnx_fp32._resized([image]) for image in images]).numpy()
        sweep(onnx_fp32, frames, args.spans, args.batch, np.ascontiguousarray(inputs), args.sweep)
        return
    int8 = dataclasses.replace(asked, precision="int8", calibration=args.calibration)
    detectors = {
        REFERENCE: Detector.build(dataclasses.replace(asked, runtime="torch")),
        "onnxruntime fp32": onnx_fp32,
        "onnxruntime int8": Detector.build(int8),
    }
    print(f"{args.model} on {args.clip}, score >= {args.score_threshold}, boxes matched at "
          f"IoU >= 0.5 against {REFERENCE}:\n{HEADER}")  # fmt: skip
    found = {name: detect_all(d, frames, args.batch) for name, d in detectors.items()}
    for row in rows(found, REFERENCE, args.spans, len(frames)):
        print(row.markdown())
    del detectors[REFERENCE]
    speeds = images_per_s(detectors, args.batch, args.rounds)
    line = ", ".join(f"{name} {ips:.1f}" for name, ips in speeds.items())
    ratio = speeds["onnxruntime int8"] / speeds["onnxruntime fp32"]
    print(f"network only, batch {args.batch}, images/s (median of {args.rounds}): {line}; "
          f"int8 / fp32 = {ratio:.2f}x")  # fmt: skip
    print(f"CPU flags: {' '.join(_vnni_flags()) or 'no VNNI'}; threads {torch.get_num_threads()}")


def _vnni_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split() if "vnni" in f or f.startswith("amx"))
    except OSError:
        pass  # not Linux
    return []


if __name__ == "__main__":
    main()
