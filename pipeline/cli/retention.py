"""`retention`: stored records, and the video files and snapshots of a run's outputs,
deleted by age."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.argtypes import duration, in_folder, nonempty
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK
from pipeline.cli.records import DB_HELP, DEFAULT_DB
from pipeline.urls import mask_credentials


def add_parser(sub: Any) -> None:
    """The `retention` subcommand."""
    p = sub.add_parser(
        "retention",
        help="delete stored records (and video files, snapshots) older than an age",
    )
    p.add_argument("--db", type=nonempty, default=DEFAULT_DB, help=DB_HELP)
    p.add_argument(
        "--older-than",
        required=True,
        type=duration,
        help="age of what to delete, e.g. 30d, 12h, '2 weeks' (at most 36525d)",
    )
    p.add_argument(
        "--video-dir",
        type=in_folder,
        help="also delete the MP4 files of the video output in this folder, e.g. out/video",
    )
    p.add_argument(
        "--snapshot-dir",
        type=in_folder,
        help="also delete the track snapshots of the snapshots output in this folder, "
        "e.g. out/snapshots",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument("--no-vacuum", action="store_true", help="do not VACUUM a SQLite database")
    p.set_defaults(func=cmd_retention)


def cmd_retention(args: argparse.Namespace) -> int:
    from sinks.sql.reading import QueryError
    from sinks.sql.retention import delete_older_than
    from sinks.video.files import delete_old_videos

    cutoff = datetime.now(timezone.utc) - args.older_than
    verb = "would delete" if args.dry_run else "deleted"
    try:
        result = delete_older_than(args.db, cutoff, dry_run=args.dry_run, vacuum=not args.no_vacuum)
    except QueryError as exc:
        print(f"error: {mask_credentials(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    scene = "".join(
        f", {n} {name}"
        for n, name in (
            (result.zone_visits, "zone visits"),
            (result.line_crossings, "line crossings"),
        )
        if n
    )
    print(
        f"{verb} {result.detections} detections, {result.tracks} tracks{scene} and "
        f"{result.runs} runs from before {cutoff.astimezone():%Y-%m-%d %H:%M:%S %Z}"
        + ("; database vacuumed" if result.vacuumed else "")
    )
    if args.video_dir:
        try:
            files = delete_old_videos(args.video_dir, cutoff.timestamp(), dry_run=args.dry_run)
        except OSError as exc:
            print(f"error: cannot clean {args.video_dir}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{verb} {len(files)} video files from {args.video_dir}")
    if args.snapshot_dir:
        from sinks.snapshots.retention import old_snapshots

        try:
            shots = old_snapshots(Path(args.snapshot_dir), cutoff.timestamp(), dry_run=args.dry_run)
        except OSError as exc:
            why = exc.strerror or exc
            print(f"error: cannot clean {args.snapshot_dir}: {why}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{verb} {len(shots)} snapshot files from {args.snapshot_dir}")
    return EXIT_OK
