"""`cluster status`: what a running coordinator publishes about its shards, and how a second
process finds and reads it. The coordinator keeps a small named Ray actor (a `StatusBoard`,
in the `NAMESPACE` namespace, owned by the driver so that it ends with the run, and on the
driver's node so that no other node's death ends it before) and writes each shard's report
to it as it watches them; `read_status` lists the boards on a cluster."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.cluster.engine import on_driver_node

NAMESPACE = "ssd-pipeline"
"""The Ray namespace of the status boards, whatever namespace the driver runs in."""
BOARD_PREFIX = "coordinator-"
"""A board's actor name: this prefix, then the run's token."""
RATE_WINDOW_S = 5.0
"""Frames/s is measured over this last stretch of the run."""
READ_TIMEOUT_S = 10.0
"""Longest wait for a board to answer (its driver may be busy or going)."""


@dataclass(frozen=True)
class ShardReport:
    """One live shard as `cluster status` shows it."""

    name: str
    node_ip: str
    node_id: str
    gpus: tuple[str, ...]
    cameras: tuple[str, ...]
    frames: int
    frames_per_s: float
    restarts: int
    """Times the cameras it runs now were moved to it from a shard that died."""


@dataclass(frozen=True)
class RunStatus:
    """A running pipeline's shards, as its coordinator last published them."""

    run: str
    config: str
    updated: float
    """When the coordinator published it (seconds since the epoch)."""
    shards: tuple[ShardReport, ...]
    lost: tuple[str, ...] = ()
    """Each shard that died: why, and where its cameras went (one line each)."""


class StatusBoard:
    """Holds the latest `RunStatus` of one run; made a named Ray actor by the coordinator."""

    def __init__(self) -> None:
        self._status: RunStatus | None = None

    def publish(self, status: RunStatus) -> None:
        self._status = status

    def read(self) -> RunStatus | None:
        return self._status


class RateWindow:
    """Frames/s of each shard over the last `RATE_WINDOW_S` seconds, from its frame counts."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def update(self, now: float, frames: dict[str, int]) -> dict[str, float]:
        """Records each shard's frame count at `now`; returns each one's rate (0 until it
        has two samples)."""
        rates = {}
        for name, count in frames.items():
            samples = self._samples.setdefault(name, deque())
            samples.append((now, count))
            while len(samples) > 2 and now - samples[1][0] >= self._window_s:
                samples.popleft()
            (t0, f0), (t1, f1) = samples[0], samples[-1]
            rates[name] = (f1 - f0) / (t1 - t0) if t1 > t0 else 0.0
        for gone in set(self._samples) - set(frames):
            del self._samples[gone]
        return rates


def start_run_actor(ray: Any, cls: type, name: str) -> Any:
    """A new actor of `cls` for a run: named `name` in `NAMESPACE` (so that other processes
    find it), on the driver's node, taking no CPU and never restarted (it ends with the run)."""
    remote = ray.remote(cls).options(
        **on_driver_node(ray),
        name=name,
        namespace=NAMESPACE,
        num_cpus=0,
        max_restarts=0,
    )
    return remote.remote()


def start_board(ray: Any, token: str) -> Any:
    """A new board for the run `token`, findable by `read_status` from other processes."""
    return start_run_actor(ray, StatusBoard, f"{BOARD_PREFIX}{token}")


def read_status(ray: Any) -> list[RunStatus]:
    """The status of every pipeline running on the cluster `ray` is connected to (those
    whose coordinator has published once)."""
    found = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != NAMESPACE or not entry["name"].startswith(BOARD_PREFIX):
            continue
        try:
            board = ray.get_actor(entry["name"], namespace=NAMESPACE)
            status = ray.get(board.read.remote(), timeout=READ_TIMEOUT_S)
        except (ValueError, ray.exceptions.RayError):
            continue  # its run ended between the listing and the call
        if status is not None:
            found.append(status)
    return sorted(found, key=lambda s: s.run)


def format_status(runs: list[RunStatus], now: float | None = None) -> str:
    """A table per run: shard, node, GPU, cameras, frames/s, restarts; then a line for
    each shard that died."""
    now = time.time() if now is None else now
    blocks = []
    for run in runs:
        head = f"{run.run}: {run.config or '(no config file)'}, {len(run.shards)} shards"
        head += f" (as of {max(0.0, now - run.updated):.0f} s ago)"
        rows = [("SHARD", "NODE", "GPU", "CAMERAS", "FRAMES/S", "RESTARTS")]
        rows += [
            (
                s.name,
                f"{s.node_ip} ({s.node_id[:8]})",
                ",".join(s.gpus) or "-",
                ",".join(s.cameras) or "-",
                f"{s.frames_per_s:.1f}",
                str(s.restarts),
            )
            for s in run.shards
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines += [f"lost {line}" for line in run.lost]
        blocks.append("\n".join([head, *lines]))
    return "\n\n".join(blocks)


def status_json(runs: list[RunStatus]) -> str:
    """The runs as JSON: a list of runs, each with its list of shards."""
    return json.dumps([asdict(r) for r in runs], indent=2)
