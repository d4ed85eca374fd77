"""`query` and `retention`: the stored detections, printed, counted or deleted by age."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from pipeline.argtypes import nonempty, number, whole
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pipeline.config import SqlSinkConfig

DEFAULT_DB: str = SqlSinkConfig.model_fields["url"].default
"""The database the commands read: the one the `sql` sink writes by default."""


def add_parsers(sub: Any) -> None:
    """The `query` and `retention` subcommands."""
    p = sub.add_parser("query", help="print stored detections, or count them")
    p.add_argument("--db", type=nonempty, default=DEFAULT_DB, help="SQLAlchemy URL")
    p.add_argument("--camera", type=nonempty)
    p.add_argument("--label", type=nonempty)
    p.add_argument("--track", type=whole(1), help="only this track id")
    p.add_argument("--run", type=whole(1), help="only this run id")
    p.add_argument(
        "--since",
        type=_timestamp,
        help="from this time: '10 minutes ago', '2h', 'yesterday', 'today 08:00', "
        "2026-11-21T10:00 (local unless it ends in Z or +HH:MM)",
    )
    p.add_argument("--until", type=_timestamp, help="before this time (same forms)")
    p.add_argument("--min-score", type=number(0, 1), help="from 0 to 1")
    p.add_argument("--limit", type=whole(1), default=None, help="at most this many rows")
    p.add_argument(
        "--count-by",
        choices=["label", "camera", "run"],
        help="print detections and distinct tracks per label, camera or run instead of rows",
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser(
        "retention", help="delete stored records (and video files) older than an age"
    )
    p.add_argument("--db", type=nonempty, default=DEFAULT_DB, help="SQLAlchemy URL")
    p.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        help="age of what to delete, e.g. 30d, 12h, '2 weeks' (at most 36525d)",
    )
    p.add_argument(
        "--video-dir",
        type=nonempty,
        help="also delete the MP4 files of the video output in this folder, e.g. out/video",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument("--no-vacuum", action="store_true", help="do not VACUUM a SQLite database")
    p.set_defaults(func=cmd_retention)


def cmd_query(args: argparse.Namespace) -> int:
    from sinks.sql.query import DetectionQuery, QueryError, count_detections, query_detections

    try:
        query = DetectionQuery(
            camera=args.camera,
            label=args.label,
            track=args.track,
            since=args.since,
            until=args.until,
            min_score=args.min_score,
            run=args.run,
            limit=args.limit,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.count_by:
            counts = count_detections(args.db, query, args.count_by)
            rows = [c.as_dict(args.count_by) for c in counts]
        else:
            rows = [r.as_dict() for r in query_detections(args.db, query)]
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        _write_csv(rows, sys.stdout)
    else:
        _write_table(rows, sys.stdout, "groups" if args.count_by else "detections")
    return EXIT_OK


def cmd_retention(args: argparse.Namespace) -> int:
    from sinks.sql.query import QueryError, delete_older_than
    from sinks.video.files import delete_old_videos

    cutoff = datetime.now(timezone.utc) - args.older_than
    verb = "would delete" if args.dry_run else "deleted"
    try:
        result = delete_older_than(
            args.db, cutoff, dry_run=args.dry_run, vacuum=not args.no_vacuum
        )
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"{verb} {result.detections} detections, {result.tracks} tracks and {result.runs} "
        f"runs from before {cutoff.astimezone():%Y-%m-%d %H:%M:%S %Z}"
        + ("; database vacuumed" if result.vacuumed else "")
    )
    if args.video_dir:
        try:
            files = delete_old_videos(args.video_dir, cutoff.timestamp(), dry_run=args.dry_run)
        except OSError as exc:
            print(f"error: cannot clean {args.video_dir}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{verb} {len(files)} video files from {args.video_dir}")
    return EXIT_OK


def _timestamp(text: str) -> datetime:
    """A time as users type it ('10 minutes ago', 'yesterday', ISO); aware UTC."""
    from pipeline.timeparse import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> timedelta:
    from pipeline.timeparse import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _write_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def _write_table(rows: list[dict[str, Any]], out: TextIO, noun: str = "detections") -> None:
    if not rows:
        out.write("no detections\n")
        return
    columns = list(rows[0])
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(rows)} {noun})\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)
