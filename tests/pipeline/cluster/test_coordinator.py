"""The coordinator's watch without Ray: a stand-in cluster whose shard runs finish or die
at once, to see where the cameras of a dead shard go (the real cluster is in
test_ray_cluster.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pipeline.cluster.assign import assign
from pipeline.cluster.coordinator import Coordinator
from pipeline.cluster.ended import Ended, StreamTally
from pipeline.cluster.forwarder import EventForwarder
from pipeline.cluster.resume import Resume
from pipeline.cluster.shard import ShardInfo, ShardProgress
from pipeline.config import ZmqSinkConfig, parse_config
from pipeline.summary import CameraStats, RunSummary
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamEnd, TrackEvent
from sinks.event_bus.publisher import EventPublisher
from sinks.sql.sink import SqlSink
from tests.conftest import free_port
from tests.sinks.sql.builders import summary
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

CAMERAS = ("gate", "hall", "yard", "dock")


class RayError(Exception):
    """Ray's base error (an actor that died raises one)."""


class RayTaskError(RayError):
    """A run that raised."""


class Ref:
    """A call: its value, or the error getting it raises, once `ready` (at once)."""

    def __init__(
        self,
        value: Any = None,
        error: Exception | None = None,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.value, self.error, self.ready = value, error, ready


class FakeShard:
    """A shard actor whose runs finish at once, or die when `dies` (once, after the
    coordinator asked its progress once); its progress tells 2 frames of each camera it
    was given, and `ended`, the cameras whose stream ended."""

    def __init__(
        self,
        name: str,
        *,
        dies: bool = False,
        node_ip: str = "10.0.0.7",
        cores_owner: str | None = None,
    ) -> None:
        self.info = ShardInfo(name, node_ip, "ab" * 28, 7, (), cores_owner)
        self.runs: list[tuple[list[str], dict[str, Resume]]] = []
        self.cameras_here: list[int] = []
        """What each run was told of the cameras on its machine."""
        self.shards_here: list[int] = []
        """What each run was told of the shards running cameras on its machine."""
        self.ended: dict[str, Ended] = {}
        self._dies = dies
        self._asked = False
        self.run = SimpleNamespace(remote=self._run)
        self.progress = SimpleNamespace(remote=self._progress)
        self.stop = SimpleNamespace(remote=lambda: Ref())
        # where its events would be published (nothing binds it: the forwarder just waits)
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.publisher_endpoint = SimpleNamespace(remote=lambda: Ref(endpoint))

    def _run(
        self,
        config: Any,
        cameras: list[str],
        run_config: str,
        _: Any,
        resume: Any,
        cameras_here: int,
        shards_here: int,
    ) -> Ref:
        self.runs.append((list(cameras), dict(resume)))
        self.cameras_here.append(cameras_here)
        self.shards_here.append(shards_here)
        if self._dies:
            self._dies = False
            died = RayError("The actor died unexpectedly before finishing this task.")
            return Ref(error=died, ready=lambda: self._asked)
        stats = {c: CameraStats(c, f"{c}.mp4", frames=3) for c in cameras}
        return Ref(RunSummary(stats, 1.0))

    def _progress(self) -> Ref:
        self._asked = True
        counts = tuple(CameraStats(c, f"{c}.mp4", frames=2) for run, _ in self.runs for c in run)
        return Ref(ShardProgress(counts, dict(self.ended)))


class FakeRay:
    exceptions = SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError)

    def wait(
        self, refs: list[Ref], num_returns: int, timeout: float
    ) -> tuple[list[Ref], list[Ref]]:
        ready = [r for r in refs if r.ready()]
        return ready, [r for r in refs if r not in ready]

    def get(self, ref: Ref, timeout: float | None = None) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value


def coordinator(
    tmp_path: Path,
    max_restarts: int,
    sql_url: str | None = None,
    bus: bool = True,
    stop: threading.Event | None = None,
) -> Coordinator:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")  # the config checks only that a non-empty file is there
    cameras = "".join(f"  - {{id: {c}, source: '{video}'}}\n" for c in CAMERAS)
    zmq = "  - {type: zmq, endpoint: 'tcp://127.0.0.1:5999'}\n" if bus else ""
    spool = tmp_path / "spool"
    sql = f"  - {{type: sql, url: '{sql_url}', spool_dir: '{spool}'}}\n" if sql_url else ""
    sinks = f"sinks:\n{zmq}{sql}" if zmq or sql else ""
    config = parse_config(
        f"cameras:\n{cameras}{sinks}cluster:\n  engine: ray\n  max_restarts: {max_restarts}\n"
    )
    stop = threading.Event() if stop is None else stop
    return Coordinator(config, "cluster abc", "c.yaml", stop, lambda _: None)


def run_with_a_death(
    tmp_path: Path,
    max_restarts: int,
    told: list[str] | None = None,
    forwarder: EventForwarder | None = None,
    sql_url: str | None = None,
    ended: dict[str, Ended] | None = None,
    bus: bool = True,
    stop: threading.Event | None = None,
) -> tuple[Coordinator, Any, list[str]]:
    """Runs the cameras on shard-0 and shard-1; the first run of shard-1 dies. `told`: the
    cameras the coordinator said lost; `forwarder`: the run's event bus; `ended`: the
    cameras whose stream shard-1 told ended before it died; `bus`: a `zmq` sink; `stop`:
    the run's."""
    told = [] if told is None else told
    fake = FakeRay()
    shards = [FakeShard("shard-0"), FakeShard("shard-1", dies=True)]
    shards[1].ended = ended or {}
    coord = coordinator(tmp_path, max_restarts, sql_url, bus, stop)
    coord.on_lost = told.append
    board = SimpleNamespace(publish=SimpleNamespace(remote=lambda status: None))
    running = coord.begin(fake, [(s, s.info) for s in shards], forwarder, board)
    done, lost = coord.watch(fake, running, None, forwarder)
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


@pytest.mark.parametrize(
    ("second_machine", "kernels"),
    [
        ("10.0.0.7", (None, None)),
        ("10.0.0.8", (None, None)),
        ("10.0.0.8", ("kernel a, CPUs 0,1", "kernel a, CPUs 0,1")),  # containers, one host
        ("10.0.0.7", ("kernel a, CPUs 0,1", "kernel b, CPUs 0,1")),  # one IP, two hosts
    ],
)
def test_each_shard_s_run_is_told_the_cameras_and_shards_that_share_its_machine(
    tmp_path: Path, second_machine: str, kernels: tuple[str | None, str | None]
) -> None:
    # Shards on one machine share its cores: their decoders' threads count all their
    # cameras, and their detectors' CPU threads split the cores between the shards. The
    # kernel and CPUs they run on tell the machine, else their node's IP.
    shards = [
        FakeShard("shard-1", cores_owner=kernels[0]),
        FakeShard("shard-2", node_ip=second_machine, cores_owner=kernels[1]),
    ]
    coord = coordinator(tmp_path, max_restarts=0)
    board = SimpleNamespace(publish=SimpleNamespace(remote=lambda status: None))
    running = coord.begin(FakeRay(), [(s, s.info) for s in shards], None, board)
    coord.watch(FakeRay(), running, None, None)

    plan = assign(list(CAMERAS), ["shard-1", "shard-2"])
    assert all(plan.values()), "the hash left a shard without a camera: pick other ids"
    if shards[0].info.machine == shards[1].info.machine:
        assert [s.cameras_here for s in shards] == [[len(CAMERAS)], [len(CAMERAS)]]
        assert [s.shards_here for s in shards] == [[2], [2]]
    else:
        assert [s.cameras_here for s in shards] == [[len(plan["shard-1"])], [len(plan["shard-2"])]]
        assert [s.shards_here for s in shards] == [[1], [1]]


def test_a_shard_given_no_camera_keeps_its_share_for_cameras_it_is_given_later(
    tmp_path: Path,
) -> None:
    # The others' detectors keep the threads they start with: were its share theirs, a
    # camera added to it later would have more threads than cores run on the machine.
    shards = [FakeShard(f"shard-{i}") for i in (1, 2, 3)]
    coord = coordinator(tmp_path, max_restarts=0)
    board = SimpleNamespace(publish=SimpleNamespace(remote=lambda status: None))
    running = coord.begin(FakeRay(), [(s, s.info) for s in shards], None, board)
    coord.watch(FakeRay(), running, None, None)

    plan = assign(list(CAMERAS), [s.info.name for s in shards])
    assert plan["shard-3"] == [], "the hash gave shard-3 a camera: pick other ids"
    assert [s.shards_here for s in shards] == [[3], [3], []]


def test_a_survivor_taking_over_a_dead_shard_s_cameras_is_told_the_shards_left_on_its_machine(
    tmp_path: Path,
) -> None:
    _, (shards, _, _), moved = run_with_a_death(tmp_path, max_restarts=1)

    assert moved, "no camera moved"
    assert shards[0].shards_here == [2, 1]  # both at the start; alone once the other died
    assert shards[1].shards_here == [2]


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


@pytest.fixture
def forwarder() -> Iterator[EventForwarder]:
    """The run's event bus, on a free port."""
    forwarder = EventForwarder(ZmqSinkConfig(type="zmq", endpoint="tcp://127.0.0.1:0"))
    yield forwarder
    forwarder.close(quiet_s=0.0)


ENDED = assign(list(CAMERAS), ["shard-0", "shard-1"])["shard-1"][0]
"""A camera of the shard that dies, whose file is over before it dies."""
RUN_OF_SHARD_1 = "c.yaml (cluster abc run 2 on shard-1)"
"""The config the dead shard's run records in the database (`Coordinator._start`)."""


def frame(camera: str, index: int) -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    return FrameResult(Frame(camera, index, index / 10, 0.0, image), Detections.empty())


def end_of(camera: str, frames: int) -> StreamEnd:
    """The stream's end, which closes its one track (a row in the database)."""
    return StreamEnd(camera, frames, (TrackEvent("ended", summary(camera, 1, 0, frames - 1)),))


def tallied(camera: str, frames: int) -> Ended:
    """`camera`'s stream of `frames` frames and its end, as its shard's tally tells it."""
    told: dict[str, Ended] = {}
    tally = StreamTally(told.__setitem__)
    for i in range(frames):
        tally.write(frame(camera, i))
    tally.end(end_of(camera, frames))
    return told[camera]


def ended_on_the_bus(forwarder: EventForwarder, camera: str, frames: int) -> None:
    """`camera`'s frames and end, passed on by `forwarder` as the dead shard sent them."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    forwarder.connect(endpoint)
    publisher = EventPublisher(endpoint, LabelMap(), wait_for_subscribers=1, wait_timeout_s=10)
    for i in range(frames):
        publisher.write(frame(camera, i))
    publisher.end(end_of(camera, frames))
    publisher.close()
    deadline = time.monotonic() + 10
    while camera not in forwarder.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert camera in forwarder.ended


def assert_ended_not_moved(coord: Coordinator, shards: list[FakeShard], moved: list[str]) -> None:
    """ENDED stayed on dead shard-1; the other cameras it ran moved to shard-0."""
    others = [c for c in moved if c != ENDED]
    assert others, "the hash gave shard-1 one camera only: pick other ids"
    (_, _), (again, resume) = shards[0].runs
    assert again == others  # decoded again: all but the one that had ended
    assert set(resume) == set(others)
    assert coord.restarts[ENDED] == 0 and all(coord.restarts[c] == 1 for c in others)
    assert coord.moves[0] == (
        f"{shards[1].info.describe()} died: The actor died unexpectedly before finishing "
        f"this task.; cameras {ENDED} had ended: not moved"
    )


def test_a_camera_whose_stream_ended_before_its_shard_died_is_not_moved_the_others_are(
    tmp_path: Path, forwarder: EventForwarder
) -> None:
    ended_on_the_bus(forwarder, ENDED, frames=5)
    coord, (shards, done, unreported), moved = run_with_a_death(
        tmp_path, max_restarts=1, forwarder=forwarder, ended={ENDED: tallied(ENDED, 5)}
    )

    assert_ended_not_moved(coord, shards, moved)
    stats = unreported[ENDED]  # counted as its end told, not failed
    assert (stats.frames, stats.error, stats.ok) == (5, None, True)
    assert sorted([*unreported, *(c for _, s in done for c in s.cameras)]) == sorted(CAMERAS)


def test_without_a_zmq_sink_a_camera_its_shard_told_ended_is_not_moved(tmp_path: Path) -> None:
    coord, (shards, done, unreported), moved = run_with_a_death(
        tmp_path, max_restarts=1, ended={ENDED: tallied(ENDED, 5)}, bus=False
    )

    assert_ended_not_moved(coord, shards, moved)
    assert (unreported[ENDED].frames, unreported[ENDED].ok) == (5, True)
    assert sorted([*unreported, *(c for _, s in done for c in s.cameras)]) == sorted(CAMERAS)


def test_an_ended_camera_is_moved_while_the_bus_has_not_passed_its_end_on(
    tmp_path: Path, forwarder: EventForwarder
) -> None:
    _, (shards, _, unreported), moved = run_with_a_death(
        tmp_path, max_restarts=1, forwarder=forwarder, ended={ENDED: tallied(ENDED, 5)}
    )

    (_, _), (again, _) = shards[0].runs
    assert again == moved and ENDED not in unreported  # its events were still on their way


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    with pg_schema() as url:
        yield url


@pytest.mark.parametrize("bus", [True, False], ids=["with the bus", "without"])
@pytest.mark.parametrize("stored", [True, False], ids=["rows stored", "rows on their way"])
def test_an_ended_camera_is_moved_only_while_the_database_lacks_rows_its_stream_announced(
    tmp_path: Path, forwarder: EventForwarder, pg_url: str, stored: bool, bus: bool
) -> None:
    sql = SqlSink(pg_url, LabelMap(), run_config=RUN_OF_SHARD_1, spool_dir=tmp_path / "spool")
    if stored:  # else its end's track row was still with the dead shard's writer
        for i in range(5):
            sql.write(frame(ENDED, i))
        sql.end(end_of(ENDED, 5))
    sql.close()
    if bus:
        ended_on_the_bus(forwarder, ENDED, frames=5)
    _, (shards, _, unreported), _ = run_with_a_death(
        tmp_path,
        max_restarts=1,
        forwarder=forwarder if bus else None,
        sql_url=pg_url,
        ended={ENDED: tallied(ENDED, 5)},
        bus=bus,
    )

    (_, _), (again, resume) = shards[0].runs
    assert (ENDED in again) is not stored
    assert (ENDED in unreported) is stored
    if not stored:  # resumed where the bus and the database are: it sends nothing again
        assert resume[ENDED].stored_through == -1 and not resume[ENDED].stored_tracks
        if bus:
            assert resume[ENDED].published.frame == 4 and resume[ENDED].next_seq == 7
