"""Zone counts on vtest.avi for several `leave_frames`, and the annotated frame of the docs.

Detects every frame of a config's camera once with the run's own detector (as `run`
builds it: int8 where `run` would choose it), then replays the same detections through the
run's tracker and zone analyzer (`pipeline.build`) once per `leave_frames`, and prints, per
zone, how many tracks were inside at each of `--frames` (the last `zone.occupancy`, as the
video draws it) and the visits over the whole clip. With `--picture FRAME --out PATH` it
also writes that frame as the video sink draws it (the config's own `leave_frames`) as a
JPEG. Figures: docs/analytics.md, "On real footage".

    python -m benchmarks.vtest_zones                     # config/vtest-zones.yaml
    python -m benchmarks.vtest_zones --picture 289 --out docs/images/vtest-zones.jpg
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.machine import machine_line
from pipeline.build import build_run_detector, build_scene_analyzers, build_tracker, stream_scene
from pipeline.config import CameraConfig, ConfigError, FileSourceConfig, PipelineConfig, load_config
from pipeline.sources import AVSource, SourceError
from pipeline.types import Detections, Frame, FrameResult, LabelMap, ZoneEvent, ZoneOccupancy
from sinks.draw import annotate
from sinks.scene_overlay import SceneOverlay

LEAVE_FRAMES = (3, 5, 10)
SAMPLE_FRAMES = (250, 275, 300, 325, 350, 375, 399)
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Detected:
    """A clip's frames (images replaced by an empty view of their size) and detections."""

    frames: list[Frame]
    detections: list[Detections]
    labels: LabelMap
    background: int | None


@dataclass
class ZoneCounts:
    """One zone's figures in one replay: tracks inside at the sampled frames, visits."""

    inside_at: dict[int, int] = field(default_factory=dict)
    visits: int = 0
    tracks: set[int] = field(default_factory=set)


def stub(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An image's shape without its pixels: the tracker and analyzer read only the size."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), image.shape)


def detect(
    config: PipelineConfig, camera: CameraConfig, keep: int | None
) -> tuple[Detected, npt.NDArray[np.uint8] | None]:
    """Every frame of `camera`'s file detected once; the image of frame `keep`, if any."""
    if not isinstance(camera.source, FileSourceConfig):
        raise SystemExit(f"camera {camera.id}: its source is not a file")
    detector = build_run_detector(config.detector)
    print(detector.describe() or "detector: as configured")
    source = AVSource(camera.source.path, live=False)
    source.open()
    frames: list[Frame] = []
    found: list[Detections] = []
    batch: list[Frame] = []
    kept = None

    def flush() -> None:
        found.extend(detector.detect(batch))
        frames.extend(replace(f, image=stub(f.image)) for f in batch)
        batch.clear()

    try:
        for i, raw in enumerate(source.frames()):
            batch.append(Frame(camera.id, i, raw.pts, raw.pts, raw.image))
            if i == keep:
                kept = raw.image.copy()
            if len(batch) == detector.batch_size:
                flush()
        if batch:
            flush()
    finally:
        source.close()
    return Detected(frames, found, detector.labels, detector.background), kept


def replay(
    config: PipelineConfig, camera: CameraConfig, detected: Detected, leave_frames: int
) -> Iterator[FrameResult]:
    """Each frame's result as the run makes it (tracked, then its zones' and lines' events)
    with the camera's `analytics:` but `leave_frames`."""
    rules = config.analytics_of(camera).model_copy(update={"leave_frames": leave_frames})
    analyzer = build_scene_analyzers(
        [camera], lambda _: rules, detected.labels, config.detector.labels, detected.background
    )[camera.id]
    tracker = build_tracker(camera.id, config.tracker)
    for frame, dets in zip(detected.frames, detected.detections, strict=True):
        tracked = tracker.update(dets, frame)
        result = FrameResult(frame, tracked, tuple(tracker.pop_events()))
        yield replace(result, analytics=analyzer.update(result))


def zone_counts(
    config: PipelineConfig,
    camera: CameraConfig,
    detected: Detected,
    leave_frames: int,
    sample_frames: Sequence[int],
) -> dict[str, ZoneCounts]:
    """Per zone: tracks inside at each of `sample_frames` (the last `zone.occupancy` by
    then), and the visits (`zone.entered`) and distinct tracks that made them."""
    counts = {zone.id: ZoneCounts() for zone in camera.zones}
    inside = dict.fromkeys(counts, 0)
    wanted = set(sample_frames)
    for result in replay(config, camera, detected, leave_frames):
        for event in result.analytics:
            if isinstance(event, ZoneOccupancy):
                inside[event.zone_id] = sum(n for _, n in event.counts)
            elif isinstance(event, ZoneEvent) and event.kind == "entered":
                counts[event.zone_id].visits += 1
                counts[event.zone_id].tracks.add(event.track_id)
        if result.frame.index in wanted:
            for zone_id, n in inside.items():
                counts[zone_id].inside_at[result.frame.index] = n
    return counts


def picture(
    config: PipelineConfig,
    camera: CameraConfig,
    detected: Detected,
    index: int,
    image: npt.NDArray[np.uint8],
) -> npt.NDArray[np.uint8]:
    """Frame `index` (its `image`) as the video sink draws it: boxes, zones, lines, counts
    and trails, with the config's own `leave_frames`."""
    rules = config.analytics_of(camera)
    height, width = image.shape[:2]
    overlay = SceneOverlay(stream_scene(camera, rules, width, height))
    for result in replay(config, camera, detected, rules.leave_frames):
        overlay.update(result)
        if result.frame.index == index:
            return annotate(image, result.detections, detected.labels, overlay.view())
    raise SystemExit(f"the clip has no frame {index} ({len(detected.frames)} frames)")


def scene_camera(config: PipelineConfig) -> CameraConfig:
    """The config's first camera with zones."""
    for camera in config.cameras:
        if camera.zones:
            return camera
    raise SystemExit("the config has no camera with zones")


def print_table(
    counts: dict[int, dict[str, ZoneCounts]], sample_frames: Sequence[int], zone_id: str
) -> None:
    """One zone's markdown table: a column per `leave_frames`."""
    columns = list(counts)
    print(f"\nzone {zone_id}: tracks inside (the last zone.occupancy) per leave_frames")
    print("| frame | " + " | ".join(f"`leave_frames: {n}`" for n in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for index in sample_frames:
        row = " | ".join(str(counts[n][zone_id].inside_at.get(index, "-")) for n in columns)
        print(f"| {index} | {row} |")
    visits = " | ".join(
        f"{counts[n][zone_id].visits} ({len(counts[n][zone_id].tracks)} tracks)" for n in columns
    )
    print(f"| visits over the whole clip | {visits} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/vtest-zones.yaml"))
    parser.add_argument("--leave-frames", type=int, nargs="+", default=list(LEAVE_FRAMES))
    parser.add_argument("--frames", type=int, nargs="+", default=list(SAMPLE_FRAMES))
    parser.add_argument("--picture", type=int, metavar="FRAME", help="draw this frame")
    parser.add_argument("--out", type=Path, help="the JPEG --picture writes")
    args = parser.parse_args(argv)
    if (args.picture is None) != (args.out is None):
        parser.error("--picture and --out go together")
    if args.out is not None and not args.out.parent.is_dir():
        parser.error(f"--out: no folder {args.out.parent}")
    if any(n < 1 for n in args.leave_frames):
        parser.error("--leave-frames must be at least 1")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        parser.error(str(exc).splitlines()[0])
    camera = scene_camera(config)

    print(machine_line())
    try:
        detected, image = detect(config, camera, args.picture)
    except SourceError as exc:
        raise SystemExit(f"camera {camera.id}: {exc}") from None
    boxes = sum(len(d) for d in detected.detections)
    print(f"{args.config}, camera {camera.id}: {len(detected.frames)} frames, {boxes} boxes")
    counts = {n: zone_counts(config, camera, detected, n, args.frames) for n in args.leave_frames}
    for zone in camera.zones:
        print_table(counts, args.frames, zone.id)
    if args.picture is not None:
        if image is None:
            raise SystemExit(f"the clip has no frame {args.picture}")
        drawn = picture(config, camera, detected, args.picture, image)
        bgr = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(args.out), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        print(f"\nframe {args.picture} drawn: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
