"""`python -m pipeline run|validate|subscribe|query|retention|keygen|bench`."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any, TextIO

from pipeline.config import ConfigError, load_config
from pipeline.urls import mask_credentials

log = logging.getLogger("pipeline")

EXIT_OK = 0
EXIT_FAILED = 1  # the run finished but a camera or a sink failed, or it could not start
EXIT_USAGE = 2  # bad config or arguments: nothing was processed
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskCredentials())
    code: int = args.func(args)
    return code


class MaskCredentials(logging.Filter):
    """Replaces passwords in URLs by '***' in every log line, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Real-time video analytics: SSD detection, IoU tracking, video/ZeroMQ/SQL.",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="process the cameras of a config until every file is done")
    p.add_argument("config", help="YAML config, e.g. config/cams.yaml")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a config and name every bad field")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "subscribe", help="print events from a running pipeline (readable, or JSON lines)"
    )
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="PUB socket to connect to")
    p.add_argument("--camera", action="append", default=[], help="only this camera (repeatable)")
    p.add_argument(
        "--type",
        action="append",
        default=[],
        help="only this event type: detections, track.started, track.ended, stream.ended, "
        "camera.status",
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        help="only objects and tracks of this class, e.g. person (repeatable)",
    )
    p.add_argument("--count", type=int, default=None, help="exit after N events")
    p.add_argument("--timeout", type=float, default=None, help="exit after N idle seconds")
    p.add_argument(
        "--format",
        choices=["pretty", "json"],
        default=None,
        help="pretty: one readable line per event; json: one JSON object per line "
        "(default: pretty on a terminal, json otherwise)",
    )
    p.add_argument(
        "--server-key",
        default=os.environ.get("PIPELINE_ZMQ_SERVER_KEY"),
        help="CURVE: the publisher's public key, or its .key file "
        "(default: $PIPELINE_ZMQ_SERVER_KEY)",
    )
    p.add_argument(
        "--client-key",
        default=os.environ.get("PIPELINE_ZMQ_CLIENT_KEY"),
        help="CURVE: this client's .key_secret file, when the publisher only admits known "
        "clients (default: $PIPELINE_ZMQ_CLIENT_KEY; else a fresh key pair)",
    )
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("query", help="print stored detections, or count them")
    p.add_argument("--db", default="sqlite:///out/detections.db", help="SQLAlchemy URL")
    p.add_argument("--camera")
    p.add_argument("--label")
    p.add_argument("--track", type=int)
    p.add_argument("--run", type=int, help="only this run id")
    p.add_argument(
        "--since",
        type=_timestamp,
        help="from this time: '10 minutes ago', '2h', 'yesterday', 'today 08:00', "
        "2026-11-21T10:00 (local unless it ends in Z or +HH:MM)",
    )
    p.add_argument("--until", type=_timestamp, help="before this time (same forms)")
    p.add_argument("--min-score", type=float)
    p.add_argument("--limit", type=int, default=None)
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
    p.add_argument("--db", default="sqlite:///out/detections.db", help="SQLAlchemy URL")
    p.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        help="age of what to delete, e.g. 30d, 12h, '2 weeks'",
    )
    p.add_argument(
        "--video-dir",
        help="also delete the MP4 files of the video output in this folder, e.g. out/video",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument("--no-vacuum", action="store_true", help="do not VACUUM a SQLite database")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("keygen", help="make a CURVE key pair for the ZeroMQ event bus")
    p.add_argument("directory", help="folder for NAME.key (public) and NAME.key_secret")
    p.add_argument("--name", default="server", help="file name stem (default: server)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser(
        "bench", help="measure model-only and end-to-end throughput against a naive baseline"
    )
    from pipeline.bench.cli import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{args.config}: ok ({len(config.cameras)} camera(s), model {config.detector.model}, "
        f"sinks: {', '.join(s.type for s in config.sinks) or 'none'})"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from detector.errors import ModelConfigError, WeightsUnavailableError
    from pipeline.progress import Progress
    from pipeline.runner import Pipeline
    from sinks.base import SinkError

    pipeline = Pipeline(config, config_source=str(args.config))
    received = _stop_on_signals(pipeline.stop)
    progress = Progress([c.id for c in config.cameras], enabled=not args.no_progress)
    try:
        summary = pipeline.run(on_progress=progress.update)
    except (ModelConfigError, WeightsUnavailableError) as exc:
        print(f"error: detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.close()
    progress.print_summary(summary)
    if not summary.ok:
        return EXIT_FAILED  # a failure matters more than how the run was stopped
    if summary.interrupted:
        return 128 + (received[0] if received else signal.SIGINT)  # the shell's convention
    return EXIT_OK


def _stop_on_signals(stop: Any) -> list[int]:
    """First SIGINT/SIGTERM: stop reading and finish what is decoded. Second: exit at once.

    Returns the list the signals received are appended to.
    """
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if stop.is_set():
            print("\nforced exit", file=sys.stderr)
            os._exit(128 + signum)
        stop.set()
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping; finishing queued frames (again to force)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return received


def cmd_subscribe(args: argparse.Namespace) -> int:
    from sinks.event_bus.display import format_event
    from sinks.event_bus.keys import CurveKeyError, read_public_key, read_secret_key
    from sinks.event_bus.subscriber import only_labels, subscribe

    pretty = args.format == "pretty" or (args.format is None and sys.stdout.isatty())
    try:
        server_key = read_public_key(args.server_key) if args.server_key else None
        client_keys = None
        if args.client_key:
            client_keys = (read_public_key(args.client_key), read_secret_key(args.client_key))
        events = subscribe(
            args.endpoint,
            cameras=args.camera,
            types=args.type,
            timeout_s=args.timeout,
            server_key=server_key,
            client_keys=client_keys,
        )
        seen = 0
        for event in events:
            shown = only_labels(event, args.label)
            if shown is None:
                continue
            print(format_event(shown) if pretty else shown.model_dump_json(), flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    except (ValueError, CurveKeyError) as exc:  # bad type, endpoint or key
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # how a user ends an open-ended subscription
        return EXIT_INTERRUPTED
    return EXIT_OK


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


def cmd_bench(args: argparse.Namespace) -> int:
    from detector.errors import ModelConfigError, WeightsUnavailableError
    from pipeline.bench.cli import main as bench_main
    from pipeline.bench.end_to_end import BenchError

    try:
        return bench_main(args)
    except (ModelConfigError, WeightsUnavailableError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sinks.event_bus.keys import create_key_pair

    directory = Path(args.directory)
    public_file = directory / f"{args.name}.key"
    if public_file.exists():
        print(f"error: {public_file} exists; choose another --name or folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        public_path, secret_path, public = create_key_pair(directory, args.name)
    except OSError as exc:
        print(f"error: cannot write keys to {directory}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"public key  {public_path}  ({public.decode()})")
    print(f"secret key  {secret_path}  (keep it private)")
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
