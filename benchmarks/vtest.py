"""Track ids on real footage: the bundled person model on vtest.avi, with and without
gap bridging.

Detects people in every frame once (cached in --cache), then runs `IoUTracker` with
`max_age=0` (the paper's tracker) and with the default `max_age`, and prints the number of
distinct track ids and the mean track length. See benchmarks/README.md.

    python -m benchmarks.vtest [--video ../shared/data/vtest.avi]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np
import torch

from pipeline.types import Detections, Frame
from trackers import IoUTracker

Array = np.ndarray
DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"


def detect_video(video: Path, batch: int = 16) -> tuple[list[Frame], list[Detections]]:
    """Frames (their images replaced by a 1x1 stub) and the bundled model's detections."""
    from detector import Detector, DetectorRequest

    torch.set_flush_denormal(True)
    request = DetectorRequest(
        model="person_ssdlite", weights="default", device="cpu", score_threshold=0.5
    )
    detector = Detector.build(request)
    frames: list[Frame] = []
    found: list[Detections] = []
    pending: list[Frame] = []
    stub = np.zeros((1, 1, 3), np.uint8)

    def flush() -> None:
        found.extend(detector.detect(pending))
        frames.extend(Frame(f.camera_id, f.index, f.pts, f.wall_time, stub) for f in pending)
        pending.clear()
        print(f"\rdetected {len(frames)} frames", end="", file=sys.stderr, flush=True)

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        for i, vf in enumerate(container.decode(stream)):
            pending.append(Frame("vtest", i, i / rate, i / rate, vf.to_ndarray(format="rgb24")))
            if len(pending) == batch:
                flush()
    if pending:
        flush()
    print(file=sys.stderr)
    return frames, found


def load_or_detect(video: Path, cache: Path) -> tuple[list[Frame], list[Detections]]:
    """Detections from `cache` when it was made from `video`, else detected and cached."""
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        if str(data["video"]) == str(video.resolve()):
            stub = np.zeros((1, 1, 3), np.uint8)
            frames, found = [], []
            for i, pts in enumerate(data["pts"].tolist()):
                rows = data["frame"] == i
                frames.append(Frame("vtest", i, pts, pts, stub))
                found.append(
                    Detections(
                        xyxy=data["xyxy"][rows].astype(np.float32),
                        score=data["score"][rows].astype(np.float32),
                        label=data["label"][rows].astype(np.int64),
                    )
                )
            return frames, found
    frames, found = detect_video(video)
    np.savez(
        cache,
        video=np.array(str(video.resolve())),
        pts=np.array([f.pts for f in frames]),
        frame=np.repeat([f.index for f in frames], [len(d) for d in found]),
        xyxy=np.concatenate([d.xyxy for d in found]),
        score=np.concatenate([d.score for d in found]),
        label=np.concatenate([d.label for d in found]),
    )
    return frames, found


def track_stats(frames: list[Frame], found: list[Detections], **params: int) -> dict[str, float]:
    """Distinct ids, and mean detections and mean span (first to last frame) per track."""
    tracker = IoUTracker("vtest", **params)
    ended = []
    for frame, dets in zip(frames, found, strict=True):
        tracker.update(dets, frame)
        ended += [e.track for e in tracker.pop_events() if e.kind == "ended"]
    ended += [e.track for e in tracker.finish() if e.kind == "ended"]
    return {
        "ids": len(ended),
        "detections": float(np.mean([t.frames for t in ended])),
        "span": float(np.mean([t.last_frame - t.first_frame + 1 for t in ended])),
        "long": sum(t.last_frame - t.first_frame + 1 >= 100 for t in ended),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vtest_detections.npz"))
    args = parser.parse_args(argv)
    if not args.video.is_file():
        sys.exit(f"video not found: {args.video} (pass --video PATH)")
    frames, found = load_or_detect(args.video, args.cache)
    boxes = sum(len(d) for d in found)
    print(f"{args.video.name}: {len(frames)} frames, {boxes} person boxes scoring >= 0.5\n")
    print(
        "| tracker | distinct ids | mean detections per track | mean span (frames) "
        "| tracks spanning >= 100 frames |\n|---|---:|---:|---:|---:|"
    )
    default_age = IoUTracker("x").max_age
    for name, params in (
        ("max_age=0 (paper)", {"max_age": 0}),
        (f"max_age={default_age} (default)", {}),
    ):
        s = track_stats(frames, found, **params)
        print(f"| {name} | {s['ids']} | {s['detections']:.1f} | {s['span']:.1f} | {s['long']} |")


if __name__ == "__main__":
    main()
