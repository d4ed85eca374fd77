"""`dataset ACTION`: training datasets made from what the pipeline stored.

`dataset export` writes a run's frames and detections as a COCO dataset that labelling
tools import (docs/training.md); `dataset stats` describes a labelled dataset. Each action
is an `_add_<action>` function below, registered in `ACTIONS`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.argtypes import nonempty, number, out_folder, whole
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, interrupted_status
from pipeline.cli.records import DB_HELP, DEFAULT_DB
from sinks.sql.bounds import ID_MAX


def add_parsers(sub: Any) -> None:
    """The `dataset` subcommand and its actions."""
    p = sub.add_parser(
        "dataset",
        help="make a training dataset of stored runs (export), or describe one (stats)",
    )
    actions = p.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="what to do; `python -m pipeline dataset ACTION --help` tells its options",
    )
    for add in ACTIONS:
        add(actions)


def _add_export(actions: Any) -> None:
    p = actions.add_parser(
        "export",
        help="write a run's frames and stored detections as a COCO dataset that labelling "
        "tools (CVAT, Label Studio) import",
    )
    p.add_argument("--db", type=nonempty, default=DEFAULT_DB, help=DB_HELP)
    p.add_argument(
        "--run",
        type=whole(1, ID_MAX),
        required=True,
        help="the run to export (see query --list runs)",
    )
    p.add_argument("--camera", type=nonempty, help="only this camera (default: every camera)")
    p.add_argument(
        "--every",
        type=whole(1),
        default=1,
        metavar="K",
        help="keep every K-th candidate frame, the first included: those with detections "
        "(and with --include-empty those without); default: 1, every one",
    )
    p.add_argument(
        "--min-score", type=number(0, 1), help="only detections scoring at least this (0 to 1)"
    )
    p.add_argument(
        "--label",
        type=nonempty,
        nargs="+",
        action="extend",
        metavar="NAME",
        help="only detections of these classes (case and surrounding spaces ignored), e.g. "
        "--label person car; they are the "
        "dataset's categories (default: every label the run stored)",
    )
    p.add_argument(
        "--include-empty",
        action="store_true",
        help="also keep frames the run detected on and found nothing in (negative examples)",
    )
    p.add_argument(
        "--source",
        type=nonempty,
        metavar="PATH",
        help="the camera's video file or image folder, when it moved since the run or the "
        "run's config file is gone (one camera: with --camera when the run has several)",
    )
    p.add_argument(
        "--out",
        type=out_folder,
        required=True,
        metavar="DIR",
        help="folder to write images/ and annotations.json in: new, empty, or a previous "
        "export (replaced)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)


def _add_stats(actions: Any) -> None:
    p = actions.add_parser("stats", help="print a labelled dataset's classes, counts and box sizes")
    p.add_argument(
        "data",
        type=nonempty,
        help="a COCO JSON file, a Pascal VOC folder or a YOLO data.yaml (as `train --data`)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_stats)


ACTIONS: list[Callable[[Any], None]] = [_add_export, _add_stats]


def cmd_export(args: argparse.Namespace) -> int:
    from pipeline.dataset_export import ExportError, ExportRefused, ExportRequest, export_dataset

    request = ExportRequest(
        db=args.db,
        run=args.run,
        out=Path(args.out),
        camera=args.camera,
        every=args.every,
        min_score=args.min_score,
        labels=None if args.label is None else tuple(args.label),
        include_empty=args.include_empty,
        source=args.source,
    )
    progress = _ProgressBar(enabled=not args.no_progress)
    try:
        summary = export_dataset(request, on_progress=progress.update)
    except ExportRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        print(
            f"\ninterrupted: the export into {args.out} is not finished; run the same "
            f"command again to write it whole",
            file=sys.stderr,
        )
        return interrupted_status(exc)
    finally:
        progress.close()
    empty = f" ({summary.empty_images} without detections)" if summary.empty_images else ""
    print(
        f"wrote {summary.images} images{empty} of camera(s) {', '.join(summary.cameras)} "
        f"with {summary.boxes} boxes of {', '.join(summary.categories) or 'no labels'}: "
        f"{summary.annotations_file}"
    )
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from detector.training.samples import DatasetError, read_dataset
    from detector.training.stats import SIZE_EDGES, dataset_stats

    try:
        data = read_dataset(args.data)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    folder, splits = data.folder, dataset_stats(data)
    if args.json:
        splits_json = [asdict(s) for s in splits]
        print(json.dumps({"folder": str(folder), "size_edges": SIZE_EDGES, "splits": splits_json}))
        return EXIT_OK
    bins = [f"{low}-{high}" for low, high in itertools.pairwise(SIZE_EDGES)]
    bins.append(f"{SIZE_EDGES[-1]}+")
    for split in splits:
        outside = f"; {split.outside} of them outside {folder}" if split.outside else ""
        print(
            f"{split.name}: {split.images} images ({split.empty_images} without boxes), "
            f"{split.boxes} boxes{outside}"
        )
        width = max([len(c.name) for c in split.classes] + [5])
        print(
            f"  {'class':<{width}} {'boxes':>6} {'images':>6}   box side (px): "
            + " ".join(f"{b:>7}" for b in bins)
        )
        for c in split.classes:
            print(
                f"  {c.name:<{width}} {c.boxes:>6} {c.images:>6}   {'':14} "
                + " ".join(f"{n:>7}" for n in c.sizes)
            )
    return EXIT_OK


class _ProgressBar:
    """A tqdm bar per camera of the frames decoded, on a terminal (stderr) only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._camera: str | None = None

    def update(self, camera: str, decoded: int, total: int) -> None:
        if not self.enabled:
            return
        if camera != self._camera:
            from tqdm import tqdm

            self.close()
            # disable=None: no bar when stderr is not a terminal (a log, a pipe)
            self._bar = tqdm(total=total, desc=camera, unit="frame", disable=None, leave=False)
            self._camera = camera
        self._bar.update(decoded - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._camera = None, None
