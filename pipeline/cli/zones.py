"""`zones`: a frame of a camera with a coordinate grid, as a PNG, to write zones by."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

from pipeline.argtypes import nonempty, out_file, overwrites, same_file, whole
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pipeline.config import ConfigError, load_config
from pipeline.config.cameras import CameraConfig, FileSourceConfig, ImagesSourceConfig

MAX_SKIP = 100_000
"""Most frames `--at-frame` skips: decoding them takes a while already."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "zones",
        help="write a frame of a camera with a coordinate grid (PNG), to write zones and lines",
    )
    p.add_argument("config", type=nonempty, help="YAML config, e.g. config/cams.yaml")
    p.add_argument("--camera", required=True, type=nonempty, help="the camera's id")
    p.add_argument(
        "--out", type=out_file, default=None, help="PNG file to write (default: CAMERA-grid.png)"
    )
    p.add_argument(
        "--at-frame",
        type=whole(0, MAX_SKIP),
        default=0,
        metavar="N",
        help="the camera's N-th frame, counting from 0 (default 0: the first)",
    )
    p.set_defaults(func=cmd_zones)


def cmd_zones(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    camera = next((c for c in config.cameras if c.id == args.camera), None)
    if camera is None:
        known = ", ".join(c.id for c in config.cameras)
        print(
            f"error: no camera {args.camera!r} in {args.config} (it has: {known})", file=sys.stderr
        )
        return EXIT_USAGE

    out = Path(args.out or f"{camera.id}-grid.png")
    if (problem := _destroys_input(out, args.config, camera)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE

    import cv2

    from pipeline.build import make_source
    from pipeline.sources import SourceError
    from pipeline.zone_grid import grid_image, shape_overlays

    source = make_source(camera.source)
    try:
        source.open()
        image = None
        for index, raw in enumerate(source.frames()):
            if index == args.at_frame:
                image = raw.image
                break
    except SourceError as exc:
        print(f"error: camera {camera.id}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        source.close()
    if image is None:
        print(f"error: camera {camera.id}: it has no frame {args.at_frame}", file=sys.stderr)
        return EXIT_FAILED
    gridded = grid_image(image, shape_overlays(camera))
    ok, png = cv2.imencode(".png", cv2.cvtColor(gridded, cv2.COLOR_RGB2BGR))
    if not ok:
        print(f"error: cannot encode the frame as PNG ({image.shape})", file=sys.stderr)
        return EXIT_FAILED
    out.write_bytes(png.tobytes())  # an OSError (full disk...) is main's one-line error
    height, width = image.shape[:2]
    print(f"{out}: frame {args.at_frame} of camera {camera.id}, {width}x{height} pixels")
    return EXIT_OK


def _destroys_input(out: Path, config: str, camera: CameraConfig) -> str | None:
    """Why writing the PNG at `out` would destroy what the command reads, or change what a
    run reads: the config, the camera's video, or a new frame among its images; None
    when it would not."""
    source = camera.source
    inputs: dict[str, str] = {"the config": config}
    if isinstance(source, FileSourceConfig):
        inputs[f"camera {camera.id}'s video"] = source.path
    if (problem := overwrites(str(out), inputs)) is not None:
        return problem
    if isinstance(source, ImagesSourceConfig):
        from pipeline.folders import IMAGE_SUFFIXES

        folder = Path(source.path).expanduser()
        pattern = "*" if folder.is_dir() else folder.name
        folder = folder if folder.is_dir() else folder.parent
        image = out.suffix.lower() in IMAGE_SUFFIXES and fnmatch.fnmatch(out.name, pattern)
        if image and same_file(out.parent if out.parent.parts else ".", folder):
            return (
                f"--out: {out} is among camera {camera.id}'s images, where a run would read "
                "it as a frame; name a file elsewhere"
            )
    return None
