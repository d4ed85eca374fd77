"""Motion gating on real footage: what it skips, what it misses, and the cameras it adds.

For each motion setting, over every frame of a clip (vtest.avi by default): the share of
frames the gate sends to the detector, and the recall and precision (same label, IoU >= 0.5,
`detector.agreement.compare`) of the boxes a gated camera publishes against detecting every
frame, where a frame not detected carries the boxes of the last frame detected, as the
pipeline publishes it (raw detector boxes on both sides: the tracker is left out of the
comparison). Then the cost of the motion test against a detection, per frame, in the same
run. Then, unless `--skip-capacity`, `bench --capacity` without and with motion gating (the
config's defaults), off, on, on, off with the same warm detector: on the clip, and with
`--still` on a still scene (the clip's first frame held), where gating saves the most.
`--crop X Y W H` takes that part of each frame as the camera's picture (recall only).
`--regions` measures motion regions instead: every frame detected whole against a camera
with `motion: {enabled: true, regions: true}`, frame by frame with the same detector.
Figures: docs/performance.md, "Motion gating" and "Motion regions".

    nice -n 10 python -m benchmarks.motion [--clip PATH] [--skip-capacity] [--still]
    nice -n 10 python -m benchmarks.motion --crop X Y W H | --regions [--max-share S]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from detector.agreement import compare
from pipeline.bench.capacity import (
    LOOPED_CLIP,
    CapacityRun,
    Trial,
    find_capacity,
    format_capacity,
    trial_line,
)
from pipeline.bench.end_to_end import DetectorSetup
from pipeline.build import build_run_detector
from pipeline.config import DetectorConfig
from pipeline.config.cameras import MotionConfig
from pipeline.frame_queue import QueuedFrame
from pipeline.motion import MotionGate
from pipeline.regions import RegionRule, combine
from pipeline.types import Detections, Frame, Region

DEFAULTS = MotionConfig.model_validate({"enabled": True})


@dataclass(frozen=True)
class Setting:
    """One motion setting (`MotionConfig`'s keys)."""

    threshold: int
    min_area: float
    max_skip_s: float

    def gate(self) -> MotionGate:
        return MotionGate(self.threshold, self.min_area, self.max_skip_s)

    def label(self) -> str:
        default = self == Setting(DEFAULTS.threshold, DEFAULTS.min_area, DEFAULTS.max_skip_s)
        text = f"{self.threshold} / {self.min_area:g} / {self.max_skip_s:g} s"
        return text + (" (default)" if default else "")


SETTINGS = (
    Setting(DEFAULTS.threshold, DEFAULTS.min_area, DEFAULTS.max_skip_s),
    Setting(15, 0.0005, 1.0),
    Setting(40, 0.005, 1.0),
    Setting(25, 0.01, 2.0),
    Setting(40, 0.02, 2.0),
    Setting(60, 0.05, 5.0),
)


@dataclass
class Gated:
    """What one setting's gate decided, frame by frame, and the time it took."""

    setting: Setting
    detected: list[bool]
    seconds: float = 0.0


def published(reference: Sequence[Detections], detected: Sequence[bool]) -> list[Detections]:
    """Each frame's boxes as a gated camera publishes them: its own where it was detected,
    else those of the last frame detected."""
    out: list[Detections] = []
    last = Detections.empty()
    for found, was_detected in zip(reference, detected, strict=True):
        if was_detected:
            last = found
        out.append(last)
    return out


Crop = tuple[int, int, int, int]
"""(x, y, width, height): the part of the clip's frames taken as a camera's picture."""


def pictures(
    clip: Path, crop: Crop | None = None
) -> Iterator[tuple[int, float, npt.NDArray[np.uint8]]]:
    """(index, pts, RGB image) of every frame of `clip`, cut to `crop` if given."""
    with av.open(str(clip)) as container:
        for index, picture in enumerate(container.decode(video=0)):
            image = picture.to_ndarray(format="rgb24")
            if crop is not None:
                x, y, width, height = crop
                image = np.ascontiguousarray(image[y : y + height, x : x + width])
            yield index, float(picture.time or 0.0), image


def measure(
    clip: Path, config: DetectorConfig, settings: Sequence[Setting], crop: Crop | None = None
) -> tuple[list[Detections], list[Gated], float, str]:
    """Detections of every frame (of its `crop`), each setting's decisions, the detector's
    seconds, and what ran it."""
    detector = build_run_detector(config)
    cv2.setNumThreads(1)  # as a run on 2 cores does
    gated = [Gated(s, []) for s in settings]
    gates = [s.gate() for s in settings]
    reference: list[Detections] = []
    pending: list[Frame] = []
    detect_s = 0.0

    def flush() -> None:
        nonlocal detect_s
        started = time.perf_counter()
        reference.extend(detector.detect(pending))
        detect_s += time.perf_counter() - started
        pending.clear()

    for index, pts, image in pictures(clip, crop):
        for gate, record in zip(gates, gated, strict=True):
            started = time.perf_counter()
            record.detected.append(gate.take(image, pts))
            record.seconds += time.perf_counter() - started
        pending.append(Frame("clip", index, pts, 0.0, image))
        if len(pending) >= detector.batch_size:
            flush()
    if pending:
        flush()
    return reference, gated, detect_s, detector.describe()


def recall_table(reference: list[Detections], gated: list[Gated], detect_s: float) -> list[str]:
    frames = len(reference)
    lines = [
        "| threshold / min_area / max_skip_s | frames detected | recall | precision "
        "| motion test per frame, share of a detection |",
        "|---|---|---|---|---|",
    ]
    for g in gated:
        agreement = compare(reference, published(reference, g.detected))
        share = sum(g.detected) / frames
        cost = g.seconds / detect_s
        lines.append(
            f"| {g.setting.label()} | {share:.3f} | {agreement.recall:.4f} "
            f"| {agreement.precision:.4f} | {g.seconds / frames * 1000:.2f} ms, {cost:.1%} |"
        )
    return lines


@dataclass
class RegionRun:
    """Motion regions against detecting every frame whole, on the same frames in one run:
    each side's boxes per frame, the images and pixels the detector was given, and its
    seconds."""

    reference: list[Detections]
    regions: list[Detections]
    frames_whole: int = 0
    """Frames detected whole (forced by `max_skip_s`, or regions covering too much)."""
    frames_in_regions: int = 0
    images: int = 0
    pixels: int = 0
    full_pixels: int = 0
    full_s: float = 0.0
    regions_s: float = 0.0
    chosen: list[tuple[Region, ...] | None] = field(default_factory=list)
    """Each frame's regions (() whole, None not detected)."""


def measure_regions(
    clip: Path, config: DetectorConfig, max_share: float, crop: Crop | None = None
) -> RegionRun:
    """Every frame of `clip` detected whole, and as a camera with `motion: {enabled: true,
    regions: true}` (the defaults otherwise) detects it, frame by frame in turn with the
    same detector; a frame not detected carries the last boxes, as the pipeline publishes
    them."""
    detector = build_run_detector(config)
    cv2.setNumThreads(1)
    rule = RegionRule(detector.input_size, max_share)
    gate = MotionGate(DEFAULTS.threshold, DEFAULTS.min_area, DEFAULTS.max_skip_s, regions=rule)
    run = RegionRun([], [])
    last = Detections.empty()
    for index, pts, image in pictures(clip, crop):
        frame = Frame("clip", index, pts, 0.0, image)
        started = time.perf_counter()
        run.reference.extend(detector.detect([frame]))
        run.full_s += time.perf_counter() - started
        run.full_pixels += frame.width * frame.height
        started = time.perf_counter()
        chosen = gate.choose(image, pts)
        if chosen is not None:
            queued = QueuedFrame(frame, True, chosen)
            images = queued.images()
            found = detector.detect(images)
            if chosen:
                last = combine(last, chosen, found, frame.width, frame.height)
                run.frames_in_regions += 1
            else:
                last = found[0]
                run.frames_whole += 1
            run.images += len(images)
            run.pixels += sum(i.width * i.height for i in images)
        run.regions_s += time.perf_counter() - started
        run.regions.append(last)
        run.chosen.append(chosen)
    return run


def region_lines(run: RegionRun) -> list[str]:
    frames = len(run.reference)
    agreement = compare(run.reference, run.regions)
    extra = agreement.candidate - agreement.matched
    undetected = frames - run.frames_whole - run.frames_in_regions
    return [
        f"frames: {frames}, detected whole {run.frames_whole}, in regions "
        f"{run.frames_in_regions}, not detected {undetected}",
        f"detector images: {run.images} ({run.images / frames:.3f} a frame; whole: 1)",
        f"detector input pixels: {run.pixels / run.full_pixels:.3f} of the whole frames'",
        f"recall {agreement.recall:.4f}, precision {agreement.precision:.4f} (IoU >= 0.5, "
        f"against every frame detected whole): {agreement.reference} boxes whole, "
        f"{agreement.candidate} with regions, {agreement.matched} matched, {extra} extra",
        f"frames/s: whole {frames / run.full_s:.1f}, regions {frames / run.regions_s:.1f} "
        f"(gate included), ratio {run.full_s / run.regions_s:.2f}",
        *split_lines(run),
    ]


def split_lines(run: RegionRun) -> list[str]:
    """On the frames detected in regions: recall and precision of the boxes inside the
    regions (found in the crops) and outside them (kept from before)."""
    sides: dict[str, tuple[list[Detections], list[Detections]]] = {
        "inside": ([], []),
        "outside": ([], []),
    }
    for ref, cand, chosen in zip(run.reference, run.regions, run.chosen, strict=True):
        if not chosen:
            continue
        ref_in = np.zeros(len(ref), np.bool_)
        cand_in = np.zeros(len(cand), np.bool_)
        for region in chosen:
            ref_in |= region.contains(ref.xyxy)
            cand_in |= region.contains(cand.xyxy)
        sides["inside"][0].append(ref[ref_in])
        sides["inside"][1].append(cand[cand_in])
        sides["outside"][0].append(ref[~ref_in])
        sides["outside"][1].append(cand[~cand_in])
    lines = []
    for side, (refs, cands) in sides.items():
        a = compare(refs, cands)
        lines.append(
            f"frames in regions, boxes {side} the regions: {a.reference} whole, "
            f"{a.candidate} with regions, recall {a.recall:.4f}, precision {a.precision:.4f}"
        )
    return lines


def capacity(config: DetectorConfig, clips: dict[str, Path], seconds: float, most: int) -> None:
    """`bench --capacity` without and with motion gating (its defaults) on each clip, one
    after the other with the same warm detector; prints each trial as it ends."""
    detector = build_run_detector(config)
    setup = DetectorSetup(config.model, config.weights, "cpu")
    for name, clip in clips.items():
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 10)
            image = next(container.decode(stream)).to_ndarray(format="rgb24")
        detector.detect([Frame("warm-up", 0, 0.0, 0.0, image)] * detector.batch_size)
        held: dict[str, list[int]] = {"off": [], "on": []}
        for motion in (None, DEFAULTS, DEFAULTS, None):  # ABBA: drift in the load cancels
            gating = "on" if motion else "off"
            what = f"{name}, motion gating {gating}"
            run = CapacityRun(str(clip), setup, detector, None, seconds, fps, motion)

            def trial(cameras: int, run: CapacityRun = run, what: str = what) -> Trial:
                result = run(cameras)
                print(f"{what}:{trial_line(result)[1:]}", flush=True)
                return result

            result = find_capacity(trial, most)
            held[gating].append(result.capacity)
            print(f"{what}: {format_capacity(result)[-2].strip()}", flush=True)
        print(f"{name}: cameras held with motion gating {held['on']}, without {held['off']}")


def still_clip(clip: Path, out: Path, seconds: float = 10.0) -> Path:
    """A camera watching a still scene: `clip`'s first frame, held for `seconds`, in H.264."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or 10
        first = next(container.decode(stream)).to_ndarray(format="rgb24")
    with av.open(str(out), "w") as container:
        encoded = container.add_stream("libx264", rate=rate)
        encoded.height, encoded.width = first.shape[:2]
        encoded.pix_fmt = "yuv420p"
        for _ in range(int(seconds * float(rate))):
            container.mux(encoded.encode(av.VideoFrame.from_ndarray(first, format="rgb24")))
        container.mux(encoded.encode(None))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=LOOPED_CLIP, help="real footage")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument(
        "--still", action="store_true",
        help="capacity also on a still scene: the clip's first frame held (looped)",
    )  # fmt: skip
    parser.add_argument(
        "--still-only", action="store_true", help="capacity on the still scene only"
    )
    parser.add_argument(
        "--regions", action="store_true",
        help="motion regions against whole frames (recall, detector work) instead",
    )  # fmt: skip
    parser.add_argument(
        "--max-share", type=float, default=DEFAULTS.regions_max_share,
        help="with --regions: the share of the frame above which it is detected whole",
    )  # fmt: skip
    parser.add_argument(
        "--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"),
        help="take this part of each frame as the camera's picture (recall only)",
    )  # fmt: skip
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--capacity-max", type=int, default=16)
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        print(f"skipped: {args.clip} not found (pass --clip PATH to real footage)")
        return
    config = DetectorConfig.model_validate({"device": "cpu"})
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    crop: Crop | None = tuple(args.crop) if args.crop else None
    cut = f" cut to x, y, width, height {crop}" if crop else ""
    if args.regions:
        run = measure_regions(args.clip, config, args.max_share, crop)
        print(f"{date}  {_cpu_model()}\nclip {args.clip}{cut}, regions_max_share {args.max_share}")
        print("\n".join(region_lines(run)))
        return
    reference, gated, detect_s, described = measure(args.clip, config, SETTINGS, crop)
    print(f"{date}  {_cpu_model()}\n{described}\nclip {args.clip}{cut}, {len(reference)} frames")
    print(f"detector: {detect_s / len(reference) * 1000:.1f} ms a frame")
    print(f"boxes when every frame is detected: {sum(len(r) for r in reference)}")
    print("\n".join(recall_table(reference, gated, detect_s)))
    if args.skip_capacity or crop:
        return
    with tempfile.TemporaryDirectory(prefix="motion-bench-") as tmp:
        clips = {} if args.still_only else {args.clip.name: args.clip}
        if args.still or args.still_only:
            clips["still scene"] = still_clip(args.clip, Path(tmp) / "still.mp4")
        capacity(config, clips, args.trial_seconds, args.capacity_max)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
