"""The coordinator's watch without Ray: a stand-in cluster whose shard runs finish or die
at once, to see where the cameras of a dead shard go (the real cluster is in
test_ray_cluster.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipeline.cluster.assign import assign
from pipeline.cluster.coordinator import Coordinator
from pipeline.cluster.resume import Resume
from pipeline.cluster.shard import ShardInfo
from pipeline.config import parse_config
from pipeline.summary import CameraStats, RunSummary

CAMERAS = ("gate", "hall", "yard", "dock")


class RayError(Exception):
    """Ray's base error (an actor that died raises one)."""


class RayTaskError(RayError):
    """A run that raised."""


class Ref:
    """A finished call: its value, or the error getting it raises."""

    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error


class FakeShard:
    """A shard actor whose runs finish at once, or die when `dies` (once)."""

    def __init__(self, name: str, *, dies: bool = False) -> None:
        self.info = ShardInfo(name, "10.0.0.7", "ab" * 28, 7, ())
        self.runs: list[tuple[list[str], dict[str, Resume]]] = []
        self._dies = dies
        self.run = SimpleNamespace(remote=self._run)
        self.progress = SimpleNamespace(remote=lambda: Ref([]))
        self.stop = SimpleNamespace(remote=lambda: Ref())

    def _run(self, config: Any, cameras: list[str], run_config: str, _: Any, resume: Any) -> Ref:
        self.runs.append((list(cameras), dict(resume)))
        if self._dies:
            self._dies = False
            return Ref(error=RayError("The actor died unexpectedly before finishing this task."))
        stats = {c: CameraStats(c, f"{c}.mp4", frames=3) for c in cameras}
        return Ref(RunSummary(stats, 1.0))


class FakeRay:
    exceptions = SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError)

    def wait(
        self, refs: list[Ref], num_returns: int, timeout: float
    ) -> tuple[list[Ref], list[Ref]]:
        return list(refs), []

    def get(self, ref: Ref, timeout: float | None = None) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value


def coordinator(tmp_path: Path, max_restarts: int) -> Coordinator:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")  # the config checks only that a non-empty file is there
    cameras = "".join(f"  - {{id: {c}, source: '{video}'}}\n" for c in CAMERAS)
    config = parse_config(
        f"cameras:\n{cameras}sinks:\n  - {{type: zmq, endpoint: 'tcp://127.0.0.1:5999'}}\n"
        f"cluster:\n  engine: ray\n  max_restarts: {max_restarts}\n"
    )
    return Coordinator(config, "cluster abc", "c.yaml", threading.Event(), lambda _: None)


def run_with_a_death(
    tmp_path: Path, max_restarts: int, told: list[str] | None = None
) -> tuple[Coordinator, Any, list[str]]:
    """Runs the cameras on shard-0 and shard-1; the first run of shard-1 dies. `told`: the
    cameras the coordinator said lost."""
    told = [] if told is None else told
    fake = FakeRay()
    shards = [FakeShard("shard-0"), FakeShard("shard-1", dies=True)]
    coord = coordinator(tmp_path, max_restarts)
    coord.on_lost = told.append
    board = SimpleNamespace(publish=SimpleNamespace(remote=lambda status: None))
    running = coord.begin(fake, [(s, s.info) for s in shards], None, board)
    done, lost = coord.watch(fake, running, None, None)
    moved = assign(list(CAMERAS), ["shard-0", "shard-1"])["shard-1"]
    return coord, (shards, done, lost), moved


def test_the_cameras_of_a_dead_shard_run_again_on_the_survivor_from_their_start(
    tmp_path: Path,
) -> None:
    coord, (shards, done, lost), moved = run_with_a_death(tmp_path, max_restarts=1)
    assert moved, "the hash gave shard-1 no camera: pick other ids"

    (first, _), (again, resume) = shards[0].runs
    assert sorted(first + again) == sorted(CAMERAS) and again == moved
    assert resume == dict.fromkeys(moved, Resume())  # no database, no bus: from the start
    assert [c for _, s in done for c in s.cameras] == [*first, *moved]
    assert lost == {}
    assert coord.moves == [
        f"{shards[1].info.describe()} died: The actor died unexpectedly before finishing "
        f"this task.; cameras {', '.join(moved)} moved to shard-0"
    ]
    assert {c: coord.restarts[c] for c in CAMERAS} == {c: int(c in moved) for c in CAMERAS}


def test_a_camera_moved_more_than_max_restarts_times_is_failed_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    told: list[str] = []
    coord, (shards, done, lost), moved = run_with_a_death(tmp_path, max_restarts=0, told=told)

    assert len(shards[0].runs) == 1 and coord.moves == []
    assert sorted(lost) == sorted(moved) == sorted(told)  # their MQTT status: offline
    assert all(
        stats.error is not None and stats.error.startswith(f"camera {c}: shard-1 on ")
        for c, stats in lost.items()
    )
    assert [c for _, s in done for c in s.cameras] == shards[0].runs[0][0]
