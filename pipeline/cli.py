"""`python -m pipeline run|validate|subscribe|query`."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
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

    p = sub.add_parser("subscribe", help="print events from a running pipeline, one JSON a line")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="PUB socket to connect to")
    p.add_argument("--camera", action="append", default=[], help="only this camera (repeatable)")
    p.add_argument(
        "--type",
        action="append",
        default=[],
        help="only this event type: detections, track.started, track.ended, stream.ended",
    )
    p.add_argument("--count", type=int, default=None, help="exit after N events")
    p.add_argument("--timeout", type=float, default=None, help="exit after N idle seconds")
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("query", help="print stored detections")
    p.add_argument("--db", default="sqlite:///out/detections.db", help="SQLAlchemy URL")
    p.add_argument("--camera")
    p.add_argument("--label")
    p.add_argument("--track", type=int)
    p.add_argument("--run", type=int, help="only this run id")
    p.add_argument("--since", type=_timestamp, help="ISO time, e.g. 2026-11-21T10:00 (local)")
    p.add_argument("--until", type=_timestamp, help="ISO time")
    p.add_argument("--min-score", type=float)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=cmd_query)
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
    _stop_on_signals(pipeline.stop)
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
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED


def _stop_on_signals(stop: Any) -> None:
    """First SIGINT/SIGTERM: stop reading and finish what is decoded. Second: exit at once."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            print("\nforced exit", file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)
        stop.set()
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping; finishing queued frames (again to force)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_subscribe(args: argparse.Namespace) -> int:
    from sinks.zmq_pub import subscribe

    seen = 0
    try:
        for body in subscribe(
            args.endpoint, cameras=args.camera, types=args.type, timeout_s=args.timeout
        ):
            print(json.dumps(body, separators=(",", ":")), flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    except ValueError as exc:  # unknown event type, malformed endpoint
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # how a user ends an open-ended subscription
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    from sinks.sql import DetectionQuery, QueryError, query_detections

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
    try:
        records = query_detections(args.db, query)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    rows = [r.as_dict() for r in records]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        _write_csv(rows, sys.stdout)
    else:
        _write_table(rows, sys.stdout)
    return EXIT_OK


def _timestamp(text: str) -> datetime:
    """ISO-8601 time; without a zone it is local time. Returned timezone-aware."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO time: {text!r} (e.g. 2026-11-21T10:00 or 2026-11-21T09:00:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.astimezone()  # local time, as the user typed it
    return value.astimezone(timezone.utc)


def _write_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def _write_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        out.write("no detections\n")
        return
    columns = list(rows[0])
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(f"({len(rows)} detections)\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)
