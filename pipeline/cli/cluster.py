"""`cluster status`: the shards of the pipelines running on a Ray cluster, asked from any
terminal that can reach it (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipeline.argtypes import nonempty
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK
from pipeline.config.cluster import address_problem

if TYPE_CHECKING:
    from pipeline.cluster.status import RunStatus

ADDRESS_HELP = (
    "the Ray cluster: auto (the one this machine belongs to), ray://HEAD:10001 or HEAD:6379 "
    "(default: auto)"
)


def cluster_address(text: str) -> str:
    """An argparse type: the address of a Ray cluster, as `cluster.address` takes it."""
    if (problem := address_problem(nonempty(text))) is not None:
        raise argparse.ArgumentTypeError(f"{problem}, got {text[:80]!r}")
    return text


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cluster", help="ask a pipeline running on a Ray cluster")
    actions = p.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="status: the shards of each run"
    )
    status = actions.add_parser(
        "status", help="each shard of the running pipelines: node, GPU, cameras, frames/s, restarts"
    )
    status.add_argument("--address", type=cluster_address, default="auto", help=ADDRESS_HELP)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from pipeline.cluster.status import format_status, status_json

    runs = running_runs(args.address)
    if runs is None:
        return EXIT_FAILED
    print(status_json(runs) if args.json else format_status(runs))
    return EXIT_OK


@contextmanager
def cluster_client(address: str) -> Iterator[Any]:
    """The `ray` module joined to the cluster at `address` for the block, left after it
    when this call joined it. Raises ClusterError (one line): no Ray, or nothing answers."""
    from pipeline.cluster.engine import join_as_client, require_ray

    ray = require_ray()
    connected = join_as_client(ray, address)
    try:
        yield ray
    finally:
        if connected:
            ray.shutdown()


def running_runs(address: str) -> list[RunStatus] | None:
    """The status of each pipeline running on the cluster at `address`; None once it said
    on stderr why there is none to show."""
    from pipeline.cluster.engine import ClusterError
    from pipeline.cluster.status import read_status

    try:
        with cluster_client(address) as ray:
            runs = read_status(ray)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if not runs:
        print(f"error: no pipeline is running on the Ray cluster at {address!r}", file=sys.stderr)
        return None
    return runs
