"""`query`: the stored detections, printed or counted, and the stored zone visits and line
crossings, listed (visits) and counted; the database the commands read by default."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from pipeline.argtypes import duration, moment, nonempty, number, whole
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pipeline.config import SqlSinkConfig
from pipeline.urls import mask_credentials
from sinks.sql.bounds import ID_MAX, LIMIT_MAX

DEFAULT_DB: str = SqlSinkConfig.model_fields["url"].default
"""The database the commands read: the one the `sql` sink writes by default."""
DB_HELP = f"SQLAlchemy URL (default: {DEFAULT_DB}, where the sql sink writes by default)"
DEFAULT_PAGE = 50
"""Rows `query` prints without `--limit`: the newest, so that a large table does not scroll
past; the footer says how many more there are."""
DECIMALS = {"score": 3, "pts": 3, "x1": 1, "y1": 1, "x2": 1, "y2": 1, "dwell_s": 2}
"""Decimals `query` prints of each float column (a `best_` one too), in every format:
scores and stream times to a thousandth, boxes to a tenth of a pixel, dwell to a hundredth
of a second."""
LISTS = ("runs", "tracks", "visits")
OF_A_RUN = ("tracks", "visits")
"""The `--list`s of one run: the latest unless `--run` says which."""
SCENE_COUNTS = ("line", "zone")
"""`--count-by` values that count what zones and lines saw, not detections."""
UNUSED_BY = {
    "runs": ("camera", "label", "track", "run", "since", "until", "min_score"),
    "tracks": ("track", "since", "until"),
    "visits": ("min_score",),
}
"""The filters each `--list` does not take."""


def add_parser(sub: Any) -> None:
    """The `query` subcommand."""
    p = sub.add_parser(
        "query",
        help="print stored detections (newest first), count them, or list runs, tracks or "
        "zone visits",
    )
    p.add_argument("--db", type=nonempty, default=DEFAULT_DB, help=DB_HELP)
    p.add_argument("--camera", type=nonempty, help="only this camera id")
    p.add_argument(
        "--label", type=nonempty, help="only this class, e.g. person (case and spaces aside)"
    )
    p.add_argument(
        "--track",
        type=whole(1, ID_MAX),
        help="only this track; track ids are per run: of the latest run unless --run says which",
    )
    p.add_argument("--run", type=whole(1, ID_MAX), help="only this run id (see --list runs)")
    p.add_argument(
        "--since",
        type=moment,
        help="from this time: '10 minutes ago', '2h', 'yesterday', 'today 08:00', "
        "2026-11-21T10:00 (local unless it ends in Z or +HH:MM)",
    )
    p.add_argument("--until", type=moment, help="before this time (same forms)")
    p.add_argument(
        "--min-score", type=number(0, 1), help="only detections scoring at least this (0 to 1)"
    )
    p.add_argument(
        "--limit",
        type=whole(1, LIMIT_MAX),
        default=None,
        help=f"print the newest N rows (default: {DEFAULT_PAGE}); how many more there are is said",
    )
    p.add_argument("--all", action="store_true", help="print every matching row, not a page")
    p.add_argument(
        "--count-by",
        choices=["label", "camera", "run", *SCENE_COUNTS],
        help="print detections and distinct tracks per label, camera or run instead of rows; "
        "line: line crossings per line and direction; zone: finished zone visits per zone, "
        "with their dwell",
    )
    p.add_argument(
        "--every",
        type=duration,
        help="with --count-by line or zone: per period, e.g. 15m, 1h, 1d (aligned on UTC "
        "multiples of it); a zone's periods also give `peak`, the most visits at once",
    )
    p.add_argument(
        "--list",
        choices=LISTS,
        help="runs: the stored runs, newest first, with their detections and tracks counted; "
        "tracks: the finished tracks of a run (the latest unless --run), newest first; "
        "visits: the finished zone visits of a run (the latest unless --run), newest first, "
        "each with the last frame its track was seen inside",
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table (default), json (a list of objects) or csv (a header line, then rows)",
    )
    p.set_defaults(func=cmd_query)


def cmd_query(args: argparse.Namespace) -> int:
    from sinks.sql.reading import DetectionQuery, QueryError

    problem = _conflict(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        query = DetectionQuery(
            camera=args.camera,
            label=args.label,
            track=args.track,
            since=args.since,
            until=args.until,
            min_score=args.min_score,
            run=args.run,
            limit=None if args.all or args.count_by else args.limit or DEFAULT_PAGE,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = _select(args, query)
        # json and csv are written as the rows are read (millions with --all); the table
        # holds them all, for its column widths
        rows = (_rounded(row) for row in result.rows)
        table: list[dict[str, Any]] = []
        if args.format == "json":
            shown = _write_json(rows, sys.stdout)
        elif args.format == "csv":
            shown = _write_csv(rows, sys.stdout)
        else:
            table = list(rows)
            shown = len(table)
    except QueryError as exc:
        print(f"error: {mask_credentials(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    if args.format != "table":
        if result.more(shown):
            print(f"note: {result.footer(shown)}", file=sys.stderr)
    elif table:
        _write_table(table, sys.stdout)
        print(f"({result.footer(shown)})")
    else:
        print(result.nothing())
    return EXIT_OK


@dataclass(frozen=True)
class _Result:
    """What `query` prints: the rows (read as they are iterated), what they are, and how
    many match in all (None: all of them are in `rows`)."""

    rows: Iterable[dict[str, Any]]
    noun: str
    total: int | None = None
    scope: str = ""
    counted: str = "detections"
    """What the groups (`--count-by`) count."""

    def nothing(self) -> str:
        """What the table says when no row matches."""
        return f"no {self.counted if self.noun == 'groups' else self.noun}{self.scope}"

    def more(self, shown: int) -> int:
        """Matching rows beyond the `shown` ones."""
        return 0 if self.total is None else max(self.total - shown, 0)

    def footer(self, shown: int) -> str:
        """What the table's last line says once `shown` rows are printed."""
        said = f"{shown} {self.noun}{self.scope}"
        if self.noun == "groups":
            return said
        if more := self.more(shown):
            return f"{said}, newest first; {more} more: --limit N or --all to see them"
        return f"{said}, newest first"


def _select(args: argparse.Namespace, query: Any) -> _Result:
    """The rows `args` ask for; a `--track`, `--list tracks` or `--list visits` without
    `--run` is of the latest run. Raises QueryError."""
    from dataclasses import replace

    from sinks.sql.query import (
        count_detections,
        latest_run,
        list_runs,
        run_is_stored,
        stream_latest_detections,
        stream_tracks,
    )
    from sinks.sql.reading import QueryError

    if args.list == "runs":
        runs = list_runs(args.db, query.limit)
        return _Result([r.as_dict() for r in runs.rows], "runs", runs.total)
    scope = ""
    if query.run is None and (args.track is not None or args.list in OF_A_RUN):
        run = latest_run(args.db)
        if run is None:
            raise QueryError(f"database {args.db} holds no runs yet")
        query, scope = replace(query, run=run), f" of run {run} (the latest; --run to choose)"
    elif query.run is not None:
        if not run_is_stored(args.db, query.run):
            raise QueryError(_no_such_run(args.db, query.run))
        scope = f" of run {query.run}"
    if args.track is not None:
        scope = f" of track {args.track}{scope}"
    if args.count_by in SCENE_COUNTS:
        from sinks.sql.scene_query import count_crossings, count_visits

        if args.count_by == "line":
            return _Result(
                count_crossings(args.db, query, args.every), "groups", counted="line crossings"
            )
        return _Result(count_visits(args.db, query, args.every), "groups", counted="zone visits")
    if args.count_by:
        counts = count_detections(args.db, query, args.count_by)
        return _Result([c.as_dict(args.count_by) for c in counts], "groups")
    if args.list == "tracks":
        tracks = stream_tracks(args.db, query)
        return _Result((t.as_dict() for t in tracks.rows), "tracks", tracks.total, scope)
    if args.list == "visits":
        from sinks.sql.scene_query import list_visits

        visits = list_visits(args.db, query)
        return _Result([v.as_dict() for v in visits.rows], "zone visits", visits.total, scope)
    found = stream_latest_detections(args.db, query)
    return _Result((r.as_dict() for r in found.rows), "detections", found.total, scope)


def _no_such_run(db: str, run: int) -> str:
    """Why `--run` names no run of `db`, and which runs it holds."""
    from sinks.sql.query import stored_runs

    stored = stored_runs(db)
    if stored.count == 0:
        return f"--run {run}: database {db} holds no runs yet"
    if stored.count == 1:
        held = f"its one run is {stored.highest}"
    else:
        held = f"it holds {stored.count} runs, ids {stored.lowest} to {stored.highest}"
    return f"--run {run}: no such run in database {db} ({held}; --list runs lists them)"


def _conflict(args: argparse.Namespace) -> str | None:
    """Why the options given cannot go together; None when they can."""
    if args.all and args.limit is not None:
        return "--all and --limit exclude each other"
    if args.since is not None and args.until is not None and args.since > args.until:
        return (
            f"--since ({args.since:%Y-%m-%d %H:%M:%S} UTC) is after --until "
            f"({args.until:%Y-%m-%d %H:%M:%S} UTC): no time is in between"
        )
    if args.list and args.count_by:
        return "--list and --count-by exclude each other"
    if args.every is not None and args.count_by not in SCENE_COUNTS:
        return "--every goes with --count-by line or --count-by zone"
    if args.count_by in SCENE_COUNTS:
        unused = [
            option
            for option, value in (("--track", args.track), ("--min-score", args.min_score))
            if value is not None
        ]
        if unused:
            return f"--count-by {args.count_by} does not take {', '.join(unused)}"
    if args.list is not None:
        unused = [
            f"--{name.replace('_', '-')}"
            for name in UNUSED_BY[args.list]
            if getattr(args, name) is not None
        ]
        if unused:
            return f"--list {args.list} does not take {', '.join(unused)}"
    return None


def _write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Writes `rows` as `json.dump(list(rows), out, indent=1)` would, and a newline, one row
    at a time; how many there were."""
    shown = 0
    for row in rows:
        out.write(",\n" if shown else "[\n")
        out.write(textwrap.indent(json.dumps(row, indent=1), " "))
        shown += 1
    out.write("\n]\n" if shown else "[]\n")
    return shown


def _write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Writes `rows` as CSV, a header line first (nothing without a row), one row at a time;
    how many there were."""
    writer: csv.DictWriter[str] | None = None
    shown = 0
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)
        shown += 1
    return shown


def _write_table(rows: list[dict[str, Any]], out: TextIO) -> None:
    columns = list(rows[0])
    cells = [["-" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its scores and coordinates rounded to `DECIMALS`, the same in every format."""
    return {
        key: round(value, DECIMALS[key.removeprefix("best_")])
        if isinstance(value, float) and key.removeprefix("best_") in DECIMALS
        else value
        for key, value in row.items()
    }
