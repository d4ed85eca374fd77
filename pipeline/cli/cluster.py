"""`cluster status`: the shards of the pipelines running on a Ray cluster, asked from any
terminal that can reach it (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.argtypes import nonempty
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cluster", help="ask a pipeline running on a Ray cluster")
    actions = p.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="status: the shards of each run"
    )
    status = actions.add_parser(
        "status", help="each shard of the running pipelines: node, GPU, cameras, frames/s, restarts"
    )
    status.add_argument(
        "--address",
        type=nonempty,
        default="auto",
        help="the Ray cluster: auto (the one this machine belongs to), ray://HEAD:10001 "
        "or HEAD:6379 (default: auto)",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline.cluster.engine import ClusterError, join_as_client, require_ray
    from pipeline.cluster.status import format_status, read_status, status_json

    try:
        ray = require_ray()
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        connected = join_as_client(ray, args.address)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        runs = read_status(ray)
    finally:
        if connected:
            ray.shutdown()
    if not runs:
        print(f"error: no pipeline is running on the Ray cluster at {args.address!r}",
              file=sys.stderr)
        return EXIT_FAILED
    print(status_json(runs) if args.json else format_status(runs))
    return EXIT_OK

