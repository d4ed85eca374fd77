"""What the coordinator passes on of its shards as it watches them: each camera's counts to
the run's progress callback (`pass_progress`, which keeps what they told in `Reported`),
each live shard's report to the run's status board (`BoardReporter`, read by `cluster
status`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.cluster.ended import Ended
from pipeline.cluster.shard import ShardInfo, ShardProgress
from pipeline.cluster.status import RateWindow, RunStatus, ShardReport
from pipeline.summary import CameraStats, ProgressCallback


@dataclass(frozen=True)
class ShardStatus:
    """A live shard and the cameras it runs now."""

    info: ShardInfo
    cameras: tuple[str, ...]


@dataclass
class Reported:
    """What the shards last told of their cameras (`Shard.progress`): each one's counts,
    and each one whose stream ended."""

    counts: dict[str, CameraStats] = field(default_factory=dict)
    ended: dict[str, Ended] = field(default_factory=dict)


def pass_progress(
    ray: Any,
    shards: dict[str, Any],
    on_progress: ProgressCallback | None,
    reported: Reported,
    timeout_s: float,
) -> dict[str, int]:
    """Passes the counts of each running camera of `shards` (actors by shard name) to
    `on_progress`, and keeps what they told in `reported`; returns each shard's frames
    (those that answered within `timeout_s`)."""
    refs = {actor.progress.remote(): name for name, actor in shards.items()}
    if not refs:
        return {}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    frames: dict[str, int] = {}
    for ref in ready:
        try:
            progress: ShardProgress = ray.get(ref)
        except ray.exceptions.RayError:
            continue  # a shard that died is reported by its run
        frames[refs[ref]] = sum(stats.frames for stats in progress.counts)
        reported.counts.update((stats.camera_id, stats) for stats in progress.counts)
        reported.ended.update(progress.ended)
        if on_progress is not None:
            for stats in progress.counts:
                on_progress(stats)
    return frames


class BoardReporter:
    """Publishes the run `token`'s live shards to its status `board` (a Ray actor), with
    each one's frames/s over the last few seconds."""

    def __init__(self, board: Any, token: str, config_source: str) -> None:
        self._board = board
        self._token = token
        self._config_source = config_source
        self._rates = RateWindow()

    def publish(
        self,
        shards: list[ShardStatus],
        frames: dict[str, int],
        restarts: Counter[str],
        moves: list[str],
    ) -> None:
        """Puts each shard's report on the board: its `frames` so far, and the `restarts`
        of the cameras it runs now; `moves` says what moved where when a shard died."""
        rates = self._rates.update(time.monotonic(), frames)
        reports = tuple(
            ShardReport(
                s.info.name,
                s.info.node_ip,
                s.info.node_id,
                s.info.gpus,
                s.cameras,
                frames.get(s.info.name, 0),
                rates.get(s.info.name, 0.0),
                sum(restarts[c] for c in s.cameras),
            )
            for s in shards
        )
        status = RunStatus(self._token, self._config_source, time.time(), reports, tuple(moves))
        self._board.publish.remote(status)
