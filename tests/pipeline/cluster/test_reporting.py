"""What the coordinator passes on of its shards, without Ray: each camera's counts to the
progress callback (a shard that died skipped), each live shard's report to the board."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from pipeline.cluster.ended import Ended
from pipeline.cluster.reporting import BoardReporter, Reported, ShardStatus, pass_progress
from pipeline.cluster.shard import ShardInfo, ShardProgress
from pipeline.cluster.status import RunStatus
from pipeline.summary import CameraStats
from tests.pipeline.cluster.test_coordinator import FakeRay, RayError, Ref


def _actor(progress: Ref) -> SimpleNamespace:
    return SimpleNamespace(progress=SimpleNamespace(remote=lambda: progress))


def test_progress_passes_on_each_cameras_counts_keeps_the_ends_and_skips_a_shard_that_died() -> (
    None
):
    counts = (CameraStats("gate", "gate.mp4", frames=5), CameraStats("hall", "hall.mp4", frames=2))
    ended = {"gate": Ended(frames=5, last_boxed=3)}
    actors = {
        "shard-0": _actor(Ref(ShardProgress(counts, ended))),
        "shard-1": _actor(Ref(error=RayError("The actor died unexpectedly."))),
    }
    told: list[CameraStats] = []
    reported = Reported()
    frames = pass_progress(FakeRay(), actors, told.append, reported, timeout_s=0.5)
    assert frames == {"shard-0": 7}
    assert told == list(counts)
    assert reported == Reported({"gate": counts[0], "hall": counts[1]}, ended)
    assert pass_progress(FakeRay(), {}, told.append, reported, timeout_s=0.5) == {}


def test_the_board_gets_each_live_shard_with_its_frames_restarts_and_the_moves() -> None:
    published: list[RunStatus] = []
    board = SimpleNamespace(publish=SimpleNamespace(remote=published.append))
    reporter = BoardReporter(board, "cluster abc", "c.yaml")
    shards = [
        ShardStatus(ShardInfo("shard-0", "10.0.0.7", "ab" * 28, 7, ("0",)), ("gate", "yard")),
        ShardStatus(ShardInfo("shard-1", "10.0.0.8", "cd" * 28, 8, ()), ()),
    ]
    moves = ["shard-2 died: gone; cameras yard moved to shard-0"]
    reporter.publish(shards, {"shard-0": 40}, Counter(yard=1), moves)
    [status] = published
    assert (status.run, status.config, status.lost) == ("cluster abc", "c.yaml", tuple(moves))
    assert [(s.name, s.cameras, s.frames, s.restarts) for s in status.shards] == [
        ("shard-0", ("gate", "yard"), 40, 1),
        ("shard-1", (), 0, 0),
    ]
    assert [s.frames_per_s for s in status.shards] == [0.0, 0.0]  # one sample: no rate yet
