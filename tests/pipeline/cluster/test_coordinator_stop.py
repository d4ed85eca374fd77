"""The run's stop and the coordinator's watch, without Ray (the stand-ins of
test_coordinator.py): a stop as the shards are handed their cameras, and a stop while the
database does not answer after a shard died."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.cluster.lost_runs import LostRun, records_path
from tests.pipeline.cluster.test_coordinator import (
    RUN_OF_SHARD_1,
    FakeRay,
    FakeShard,
    Ref,
    coordinator,
    run_with_a_death,
)
from tests.sinks.sql.silent_postgres import SilentPostgres


def test_a_stop_while_the_database_does_not_answer_after_a_shard_died_ends_the_wait_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stops answering as the shard dies: the run's stop ends the driver's wait
    to mark the dead run lost and to read where its cameras resume; they are not moved, and
    do not fail. The dead run stays recorded as lost, for the next try to mark."""
    caplog.set_level(logging.WARNING, "pipeline.cluster.lost_runs")
    silent = SilentPostgres()
    url = silent.url.replace("connect_timeout=600", "connect_timeout=10")
    stop = threading.Event()

    def stop_once_the_database_is_asked() -> None:
        if silent.connected.wait(10):
            stop.set()

    threading.Thread(target=stop_once_the_database_is_asked, daemon=True).start()
    started = time.monotonic()
    told: list[str] = []
    try:
        coord, (shards, done, stopped), moved = run_with_a_death(
            tmp_path,
            max_restarts=1,
            told=told,
            sql_url=url,
            stop=stop,
        )
        assert time.monotonic() - started < 3
    finally:
        silent.close()
    assert len(shards[0].runs) == 1  # nothing moved
    assert [c for _, s in done for c in s.cameras] == shards[0].runs[0][0]
    assert sorted(stopped) == sorted(moved) == sorted(told)  # their MQTT status: offline
    # stopped where their shard died, as its last report had them: the run stopped
    assert all((s.frames, s.ok) == (2, True) for s in stopped.values())
    assert coord.moves == [
        f"{shards[1].info.describe()} died: The actor died unexpectedly before finishing "
        f"this task.; cameras {', '.join(moved)} not moved: the run stopped while the "
        "database did not answer"
    ]
    assert any(
        r.getMessage().startswith(f"the run stopped while marking the runs of {RUN_OF_SHARD_1}")
        for r in caplog.records
    )
    # kept for the next run (`mark_recorded`), which marks it once the database answers
    recorded = records_path(url, tmp_path / "spool").read_text(encoding="utf-8").splitlines()
    assert [LostRun.from_line(line).config for line in recorded] == [RUN_OF_SHARD_1]


def test_a_stop_as_the_shards_are_handed_their_cameras_reaches_them_before_any_wait(
    tmp_path: Path,
) -> None:
    """The stop came after the driver's last look at it, while `begin` started the shards'
    runs: each shard is told at once, before it builds its detector (`Shard.run`), not
    after the coordinator's first wait."""
    stop = threading.Event()
    coord = coordinator(tmp_path, max_restarts=1, stop=stop)
    shards = [FakeShard("shard-0"), FakeShard("shard-1")]
    told: list[str] = []
    for shard in shards:
        shard.stop = SimpleNamespace(remote=lambda name=shard.info.name: told.append(name))
    board = SimpleNamespace(publish=SimpleNamespace(remote=lambda status: None))
    running = coord.begin(FakeRay(), [(s, s.info) for s in shards], None, board)
    stop.set()

    class Watching(FakeRay):
        def wait(
            self, refs: list[Ref], num_returns: int, timeout: float
        ) -> tuple[list[Ref], list[Ref]]:
            assert sorted(told) == ["shard-0", "shard-1"], "a shard was waited for unstopped"
            return super().wait(refs, num_returns, timeout)

    done, _ = coord.watch(Watching(), running, None, None)
    assert len(done) == 2
