"""`cameras add|remove|list`: change the cameras of a pipeline running on a Ray cluster,
from any terminal that can reach it (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from pipeline.argtypes import nonempty
from pipeline.cli.cluster import ADDRESS_HELP, cluster_address, cluster_client, running_runs
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pipeline.config import CameraConfig, ConfigError, load_config

if TYPE_CHECKING:
    from pipeline.cluster.desk import CameraRequest
    from pipeline.cluster.status import RunStatus

RUN_HELP = "the run to change (its token, as `cluster status` shows it); needed when several run"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cameras", help="add, remove or list the cameras of a running cluster run")
    actions = p.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="add: cameras from a YAML file; remove: cameras by id; list: what runs where",
    )
    add = actions.add_parser("add", help="run cameras from a YAML file on the running cluster")
    add.add_argument(
        "--config",
        required=True,
        type=nonempty,
        help="YAML file with a `cameras:` list, as in a run's config (e.g. the run's own)",
    )
    add.add_argument("ids", nargs="*", metavar="ID", help="the cameras to add (default: all)")
    add.set_defaults(func=cmd_add)
    remove = actions.add_parser("remove", help="stop cameras of the running cluster run")
    remove.add_argument("ids", nargs="+", metavar="ID", help="the cameras to remove")
    remove.set_defaults(func=cmd_remove)
    listing = actions.add_parser("list", help="each running camera with its shard and node")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)
    for action in (add, remove, listing):
        action.add_argument("--address", type=cluster_address, default="auto", help=ADDRESS_HELP)
    for action in (add, remove):
        action.add_argument("--run", type=nonempty, default=None, help=RUN_HELP)


def cmd_add(args: argparse.Namespace) -> int:
    from pipeline.cluster.desk import CameraRequest

    try:
        cameras = chosen_cameras(args.config, args.ids)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _ask(args, CameraRequest("add", cameras=tuple(cameras)))


def cmd_remove(args: argparse.Namespace) -> int:
    from pipeline.cluster.desk import CameraRequest

    return _ask(args, CameraRequest("remove", camera_ids=tuple(args.ids)))


def cmd_list(args: argparse.Namespace) -> int:
    runs = running_runs(args.address)
    if runs is None:
        return EXIT_FAILED
    print(json.dumps(camera_rows(runs), indent=2) if args.json else format_cameras(runs))
    return EXIT_OK


def chosen_cameras(path: str, ids: list[str]) -> list[CameraConfig]:
    """The cameras `ids` of the config at `path` (all of them without `ids`), validated
    as `run` validates them; raises ConfigError naming what is wrong."""
    config = load_config(path, check_sources=False)  # files are on the shards' nodes
    found = {c.id: c for c in config.cameras}
    missing = [i for i in dict.fromkeys(ids) if i not in found]
    if missing:
        raise ConfigError(
            path,
            [f"no camera {', '.join(map(repr, missing))} (its cameras: {', '.join(found)})"],
        )
    return [found[i] for i in dict.fromkeys(ids)] if ids else list(found.values())


def camera_rows(runs: list[RunStatus]) -> list[dict[str, str]]:
    """One row per running camera: its run, shard and node."""
    return [
        {"run": r.run, "camera": c, "shard": s.name, "node_ip": s.node_ip, "node_id": s.node_id}
        for r in runs
        for s in r.shards
        for c in s.cameras
    ]


def format_cameras(runs: list[RunStatus]) -> str:
    """A table of the running cameras: run, camera, shard, node."""
    rows = [("RUN", "CAMERA", "SHARD", "NODE")]
    rows += [
        (r["run"].split()[-1], r["camera"], r["shard"], f"{r['node_ip']} ({r['node_id'][:8]})")
        for r in camera_rows(runs)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _ask(args: argparse.Namespace, request: CameraRequest) -> int:
    """Hands `request` to the running coordinator; prints its answer."""
    from pipeline.cluster.desk import DeskError, ask, find_desk
    from pipeline.cluster.engine import ClusterError

    try:
        with cluster_client(args.address) as ray:
            answer = ask(ray, find_desk(ray, args.address, args.run), request)
    except (ClusterError, DeskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in answer.lines:
        print(line)
    for problem in answer.problems:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_OK if answer.ok else EXIT_USAGE
