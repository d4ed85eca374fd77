"""Cluster runs on Ray's own multi-node test cluster (`ray.cluster_utils.Cluster`): two
nodes on this machine, each declaring one logical GPU. Every Ray test is in this module,
sharing one cluster (starting one costs seconds); the tests that take a node away come last,
each first adding one back when the one before took it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from pipeline.cluster.assign import assign
from pipeline.config import DetectorConfig, PipelineConfig, parse_config
from pipeline.summary import RunSummary
from sinks.event_bus.schema import Event
from sinks.event_bus.subscriber import EventSubscriber
from tests.conftest import free_port, write_video
from tests.pipeline.test_live_sources import RtspServer, needs_rtsp
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

NODES = 2
NODE_CPUS = 2
CAMERAS = 6
FRAMES = 12
LONG_FRAMES = 20
DETECTIONS_PER_FRAME = 3  # score_threshold 0 and max_detections 3: every frame has 3 boxes
DETECTOR = {
    "model": "person_ssdlite",
    "device": "cpu",
    "batch_size": 4,
    "score_threshold": 0.0,
    "max_detections": DETECTIONS_PER_FRAME,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Two nodes with one logical GPU each, and this process connected as the driver."""
    from pipeline.build import build_run_detector
    from pipeline.cluster.engine import runtime_env

    test_cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": NODE_CPUS, "num_gpus": 1}
    )
    for _ in range(NODES - 1):
        test_cluster.add_node(num_cpus=NODE_CPUS, num_gpus=1)
    test_cluster.wait_for_nodes()
    ray.init(address=test_cluster.address, runtime_env=runtime_env(), logging_level="WARNING")
    # The shards start together: the first builds the ONNX network for all of them.
    build_run_detector(DetectorConfig.model_validate(DETECTOR))
    yield test_cluster
    ray.shutdown()
    test_cluster.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {f"cam{i}": write_video(folder / f"cam{i}.mp4", frames=FRAMES) for i in range(CAMERAS)}


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clips played at their own rate (10 frames/s) for 2 s: long enough to lose a node."""
    folder = tmp_path_factory.mktemp("long_clips")
    return {
        f"cam{i}": write_video(folder / f"cam{i}.mp4", frames=LONG_FRAMES) for i in range(CAMERAS)
    }


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    with pg_schema() as url:
        yield url


def cluster_config(
    clips: dict[str, Path], pg_url: str | None, port: int, *, realtime: bool = False
) -> PipelineConfig:
    cams = "".join(
        f"  - {{id: {cid}, source: {{type: file, path: '{path}', realtime: {realtime}}}}}\n"
        for cid, path in clips.items()
    )
    return config_of(cams, pg_url, port)


def config_of(cameras: str, pg_url: str | None, port: int) -> PipelineConfig:
    return parse_config(
        f"cameras:\n{cameras}"
        f"detector: {json.dumps(DETECTOR)}\n"
        "tracker: {sigma_h: 0.0, t_min: 2}\n"
        "sinks:\n"
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{port}', wait_for_subscribers: 1}}\n"
        + (f"  - {{type: sql, url: '{pg_url}'}}\n" if pg_url else "")
        + "cluster:\n  engine: ray\n  address: auto\n"
        "  resources_per_shard: {num_cpus: 0.5, num_gpus: 1}\n"
    )


def assert_each_frame_once(
    clips: dict[str, Path], frames: int, pg_url: str, events: list[Event]
) -> None:
    """Every frame of every camera has its rows stored once and its detections published
    once, and each camera's `seq` runs from 0 without a gap or a repeat."""
    expected = {(c, f): DETECTIONS_PER_FRAME for c in clips for f in range(frames)}
    assert rows_per_frame(pg_url) == expected
    published: dict[str, list[int]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    for event in events:
        seqs[event.camera].append(event.seq)
        if event.type == "detections":
            assert event.frame is not None
            published[event.camera].append(event.frame)
    assert {c: sorted(f) for c, f in published.items()} == {c: list(range(frames)) for c in clips}
    assert dict(seqs) == {c: list(range(len(seqs[c]))) for c in clips}


def assert_each_event_once(cameras: dict[str, Path], events: list[Event]) -> None:
    """Each camera's tracks started and ended, its reader's states and its stream's end
    reached subscribers once each."""
    for camera in cameras:
        told = Counter(
            (e.type, getattr(e, "track_id", None), getattr(e, "state", None))
            for e in events
            if e.camera == camera and e.type != "detections"
        )
        assert set(told.values()) == {1}, (camera, told)
        started = {track for kind, track, _ in told if kind == "track.started"}
        assert started and started == {track for kind, track, _ in told if kind == "track.ended"}
        assert ("stream.ended", None, None) in told, camera


class Collector:
    """Every event on the endpoint, received in a thread until each camera's stream ended."""

    def __init__(self, endpoint: str, cameras: int) -> None:
        self.events: list[Event] = []
        self.subscriber = EventSubscriber(endpoint)
        self._cameras = cameras
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        ended = 0
        while ended < self._cameras:
            event = self.subscriber.receive(timeout_s=120)
            if event is None:
                return
            self.events.append(event)
            ended += event.type == "stream.ended"

    def join(self) -> list[Event]:
        self._thread.join(timeout=30)
        self.subscriber.close()
        return self.events


def rows_per_frame(pg_url: str) -> Counter[tuple[str, int]]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT camera, frame, count(*) FROM detections GROUP BY 1, 2")
            )
            return Counter({(camera, frame): n for camera, frame, n in rows})
    finally:
        engine.dispose()


def runs_of(pg_url: str) -> dict[str, tuple[str, str | None]]:
    """Each run's status and reason, by its config (which ends naming its shard)."""
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT config, status, reason FROM runs ORDER BY id"))
            return {config: (status, reason) for config, status, reason in rows}
    finally:
        engine.dispose()


def rows_by_run(pg_url: str, camera: str) -> dict[str, int]:
    """How many detections rows of `camera` each run (by its config) stored."""
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.config, count(*) FROM detections d JOIN runs r ON r.id = d.run_id "
                    "WHERE d.camera = :camera GROUP BY r.config"
                ),
                {"camera": camera},
            )
            return {config: n for config, n in rows}
    finally:
        engine.dispose()


def tracks_per_camera(pg_url: str) -> tuple[Counter[tuple[str, int]], set[tuple[str, int]]]:
    """Rows per (camera, track) in `tracks`, and the (camera, track) of the stored boxes."""
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT camera, track_id FROM tracks"))
            tracks = Counter((camera, track) for camera, track in rows)
            boxes = conn.execute(
                text("SELECT DISTINCT camera, track_id FROM detections WHERE track_id IS NOT NULL")
            )
            return tracks, {(camera, track) for camera, track in boxes}
    finally:
        engine.dispose()


def with_a_worker(cluster: Any) -> dict[str, Any]:
    """The cluster's worker nodes by id, one added when a test before took the last one."""
    if not cluster.worker_nodes:
        cluster.add_node(num_cpus=NODE_CPUS, num_gpus=1)
        cluster.wait_for_nodes()
    return {node.node_id: node for node in cluster.worker_nodes}


def run_cluster(config: PipelineConfig) -> RunSummary:
    from pipeline.cluster.run import ClusterRun

    return ClusterRun(config, config_source="cluster.yaml").run()


def test_every_frame_of_every_camera_is_processed_once_across_the_shards(
    cluster: object, clips: dict[str, Path], pg_url: str
) -> None:
    port = free_port()
    collector = Collector(f"tcp://127.0.0.1:{port}", CAMERAS)
    summary = run_cluster(cluster_config(clips, pg_url, port))
    events = collector.join()

    assert summary.ok, summary
    assert {c: s.frames for c, s in summary.cameras.items()} == {c: FRAMES for c in clips}
    shards = {o.split(" on ")[0] for o in summary.outputs if o.startswith("shard-")}
    assert len(shards) > 1, summary.outputs  # the cameras were spread over the nodes
    assert_each_frame_once(clips, FRAMES, pg_url, events)
    assert_each_event_once(clips, events)


def test_cluster_status_shows_each_shard_of_a_running_pipeline_from_the_cli(
    cluster: object, long_clips: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main
    from pipeline.cluster.run import ClusterRun

    capsys.readouterr()
    assert main(["cluster", "status"]) == 1  # nothing runs yet
    assert "no pipeline is running" in capsys.readouterr().err

    port = free_port()
    collector = Collector(f"tcp://127.0.0.1:{port}", CAMERAS)
    run = ClusterRun(cluster_config(long_clips, None, port, realtime=True), config_source="s.yaml")
    runner = threading.Thread(target=run.run)
    runner.start()
    shown: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while runner.is_alive() and time.monotonic() < deadline:
        capsys.readouterr()
        if main(["cluster", "status", "--json"]) == 0:
            (report,) = json.loads(capsys.readouterr().out)
            if report["config"] == "s.yaml" and any(
                s["frames_per_s"] > 0 for s in report["shards"]
            ):
                shown = report["shards"]
                break
        time.sleep(0.2)
    expected = {s.info.name: (s.info.node_id, list(s.cameras)) for s in run.status()}
    runner.join(timeout=120)
    collector.join()

    assert shown, "cluster status never showed the running shards"
    assert {s["name"]: (s["node_id"], s["cameras"]) for s in shown} == expected
    assert sorted(c for s in shown for c in s["cameras"]) == sorted(long_clips)
    assert all(len(s["gpus"]) == 1 and s["restarts"] == 0 for s in shown)
    deadline = time.monotonic() + 10  # the run is over: its board goes with it
    while main(["cluster", "status"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    capsys.readouterr()
    assert main(["cluster", "status"]) == 1
    assert "no pipeline is running" in capsys.readouterr().err


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`python -m pipeline ARGV` in this process (connected to the cluster): its exit
    status, stdout and stderr."""
    from pipeline.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_cluster_run_refuses_an_output_folder_it_could_never_write_before_any_shard_starts(
    cluster: object, clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / "video"
    nobody = f"postgresql://127.0.0.1:{free_port()}/test"  # a database server that is down
    cams = "".join(f"  - {{id: {cid}, source: '{path}'}}\n" for cid, path in clips.items())
    config = tmp_path / "cluster.yaml"
    config.write_text(
        f"cameras:\n{cams}detector: {json.dumps(DETECTOR)}\n"
        f"sinks:\n  - {{type: video, dir: '{folder}'}}\n"
        f"  - {{type: sql, url: '{nobody}', spool_dir: '{tmp_path / 'spool'}'}}\n"
        "cluster:\n  engine: ray\n  address: auto\n"
        "  resources_per_shard: {num_cpus: 0.5, num_gpus: 1}\n"
    )
    code, out, err = cli(capsys, "run", "--no-progress", str(config))

    assert (code, out) == (1, "")
    # the one line alone: no shard was given its cameras (and with them its detector), and
    # the shards were asked before the driver opened the database
    assert err == (
        f"error: video sink: cannot make the folder {folder}: {tmp_path / 'a-file'} is not a "
        "folder\n"
    )


def test_cameras_added_and_removed_while_running_are_stored_up_to_their_end_or_stop(
    cluster: object,
    clips: dict[str, Path],
    long_clips: dict[str, Path],
    tmp_path: Path,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.cluster.assign import shard_of
    from pipeline.cluster.run import ClusterRun

    running = {"stay": long_clips["cam0"], "gone": write_video(tmp_path / "gone.mp4", frames=80)}
    extra = tmp_path / "extra.yaml"
    extra.write_text(f"cameras:\n  - {{id: extra, source: '{clips['cam1']}'}}\n")
    port = free_port()
    collector = Collector(f"tcp://127.0.0.1:{port}", 3)  # stay, gone and extra end
    run = ClusterRun(cluster_config(running, pg_url, port, realtime=True), config_source="c")
    outcome: dict[str, RunSummary] = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=run.run()))
    runner.start()
    deadline = time.monotonic() + 120
    while cli(capsys, "cameras", "list", "--json")[0] != 0 and (time.monotonic() < deadline):
        time.sleep(0.2)

    # A zone label the detector lacks is refused, as the shard the camera hashes to says
    # (that of "stay", whose detector is built once it has detected a frame).
    while time.monotonic() < deadline and not any(
        e.camera == "stay" and e.type == "detections" for e in list(collector.events)
    ):
        time.sleep(0.05)
    shards = sorted(s.info.name for s in run.status())
    home = shard_of("stay", shards)
    lot = next(f"lot{i}" for i in range(64) if shard_of(f"lot{i}", shards) == home)
    wrong = tmp_path / "wrong.yaml"
    zone = "{id: z, polygon: [[0, 0], [1, 0], [1, 1]], labels: [car]}"
    wrong.write_text(f"cameras:\n  - {{id: {lot}, source: '{clips['cam2']}', zones: [{zone}]}}\n")
    code, _, err = cli(capsys, "cameras", "add", "--config", str(wrong))
    assert (code, err) == (
        2,
        f"error: cameras[0].zones[0].labels (camera {lot}): 'car' is not a class the detector "
        "reports (person)\nerror: no camera was added\n",
    )

    code, added, _ = cli(capsys, "cameras", "add", "--config", str(extra), "extra")
    assert code == 0, added
    assert added.startswith(f"cameras extra added on {shard_of('extra', shards)} on ")
    code, _, err = cli(capsys, "cameras", "add", "--config", str(extra))
    assert (code, err) == (
        2,
        "error: camera extra is already in this run\nerror: no camera was added\n",
    )
    code, listed, _ = cli(capsys, "cameras", "list", "--json")
    assert code == 0 and "extra" in {row["camera"] for row in json.loads(listed)}
    while (
        time.monotonic() < deadline
        and runner.is_alive()
        and (sum(e.camera == "gone" and e.type == "detections" for e in list(collector.events)) < 5)
    ):
        time.sleep(0.05)
    # asked while "gone" still runs: once it is removed, the run may end before an answer
    code, _, err = cli(capsys, "cameras", "remove", "nope")
    assert code == 2 and err.startswith("error: no camera 'nope' in this run (its cameras: ")
    assert err.count("\n") == 2
    code, removed, _ = cli(capsys, "cameras", "remove", "gone")
    assert code == 0 and removed.startswith("camera gone removed from shard-"), removed
    runner.join(timeout=120)
    events = collector.join()

    summary = outcome["summary"]
    assert summary.ok and not summary.interrupted, summary
    stopped_at = summary.cameras["gone"].frames
    assert {c: s.frames for c, s in summary.cameras.items()} == {
        "stay": LONG_FRAMES,
        "gone": stopped_at,
        "extra": FRAMES,
    }
    assert 5 <= stopped_at < 80
    frames = {"stay": LONG_FRAMES, "gone": stopped_at, "extra": FRAMES}
    expected = {(c, f): DETECTIONS_PER_FRAME for c, n in frames.items() for f in range(n)}
    assert rows_per_frame(pg_url) == expected  # every frame up to the stop, once
    for camera in frames:
        ended = [e for e in events if e.camera == camera and e.type == "track.ended"]
        started = [e for e in events if e.camera == camera and e.type == "track.started"]
        assert len(ended) == len(started) > 0, camera
        assert events_of(events, camera)[-1] == "stream.ended"
    assert tracks_of(pg_url, "gone") == len(
        [e for e in events if e.camera == "gone" and e.type == "track.ended"]
    )


class Probe:
    """An actor that says which node it runs on."""

    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


def node_of(actor: Any) -> str:
    """The node id of any actor (also one of the project's, which has no such method)."""
    call = actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
    return str(ray.get(call, timeout=60))


PINNED_RUNS = 4
"""Runs whose board and desk are started where Ray would mostly put them elsewhere: Ray
picks a busy caller's node for an unpinned zero-CPU actor now and then (4 times in 10 on
this machine), so several make losing the pinning fail the test all but surely."""


def test_the_status_board_and_the_desk_run_on_the_drivers_node_where_ray_would_not(
    cluster: Any,
) -> None:
    from pipeline.cluster.desk import start_desk
    from pipeline.cluster.status import start_board

    strategies = ray.util.scheduling_strategies
    with_a_worker(cluster)
    driver = ray.get_runtime_context().get_node_id()
    # Every CPU of the driver's node taken, Ray itself places most zero-CPU actors on the
    # idle worker (it keeps them on the caller's node while that is less than half used).
    filler = (
        ray.remote(Probe)
        .options(
            num_cpus=NODE_CPUS,
            scheduling_strategy=strategies.NodeAffinitySchedulingStrategy(driver, soft=False),
        )
        .remote()
    )
    actors = [filler]
    try:
        assert ray.get(filler.node.remote(), timeout=60) == driver
        for run in range(PINNED_RUNS):
            actors += [start_board(ray, f"pinned{run}"), start_desk(ray, f"pinned{run}")]
        assert [node_of(a) for a in actors[1:]] == [driver] * 2 * PINNED_RUNS
    finally:
        for actor in actors:
            ray.kill(actor)


def test_a_stop_while_the_driver_waits_for_a_silent_mqtt_broker_ends_the_run_unstarted(
    cluster: Any, clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Started after the driver's wait, each shard would build its detector (a first run's
    ONNX export and int8 calibration) before it met the stop; they are not started."""
    from pipeline.cluster.run import ClusterRun
    from tests.sinks.mqtt.brokers import SilentBroker  # skips the test without paho-mqtt

    with_a_worker(cluster)
    silent = SilentBroker()  # takes every connection, never answers the login
    cams = "".join(f"  - {{id: {c}, source: '{clips[c]}'}}\n" for c in ["cam0", "cam1"])
    config = parse_config(
        f"cameras:\n{cams}detector: {json.dumps(DETECTOR)}\n"
        "sinks:\n"
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{free_port()}'}}\n"
        f"  - {{type: mqtt, url: '{silent.url}', connect_timeout_s: 600}}\n"
        "cluster:\n  engine: ray\n  address: auto\n"
        "  resources_per_shard: {num_cpus: 0.5, num_gpus: 1}\n"
    )
    run = ClusterRun(config, config_source="silent.yaml")
    outcome: dict[str, RunSummary] = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=run.run()), daemon=True)
    runner.start()
    try:
        assert silent.connected.wait(120), "the driver never connected"
        run.stop.set()  # what Ctrl-C does
        runner.join(60)  # not connect_timeout_s (600 s)
    finally:
        silent.close()

    assert not runner.is_alive(), "the run still waits for the broker"
    summary = outcome["summary"]
    assert summary.interrupted and summary.ok
    assert "stopped while waiting for the broker" in caplog.text  # the driver's status
    assert summary.outputs == []  # no shard ran, so no shard's sink is reported
    assert {s.status for s in summary.cameras.values()} == {"not started: stopped before it opened"}


def test_sigterm_while_a_shard_waits_for_resources_no_node_has_ends_the_run_stopped(
    cluster: Any,
    clips: dict[str, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray keeps a shard it cannot place waiting (the driver gives up after
    PLACEMENT_TIMEOUT_S, 120 s): SIGTERM then ends the run at once, stopped."""
    import pipeline.cluster.run
    from pipeline.cluster.run import ClusterRun

    config = tmp_path / "unplaceable.yaml"
    config.write_text(
        f"cameras:\n  - {{id: cam0, source: '{clips['cam0']}'}}\n"
        f"detector: {json.dumps(DETECTOR)}\n"
        "cluster:\n  engine: ray\n  address: auto\n"
        "  resources_per_shard: {num_cpus: 0.5, resources: {no_such_node: 1}}\n"
    )
    waiting = threading.Event()
    placed = ClusterRun._placed

    def placing(run: ClusterRun, ray: Any, actors: list[Any]) -> Any:
        waiting.set()
        return placed(run, ray, actors)

    monkeypatch.setattr(pipeline.cluster.run.ClusterRun, "_placed", placing)

    def terminate_once_waiting() -> None:
        if waiting.wait(120):
            os.kill(os.getpid(), signal.SIGTERM)  # what a service manager sends

    signaller = threading.Thread(target=terminate_once_waiting, daemon=True)
    signaller.start()
    code, out, err = cli(capfd, "run", "--no-progress", str(config))
    signaller.join()

    assert waiting.is_set(), "the shard was never waited for"
    assert code == 143, (out, err)
    assert err.strip() == "SIGTERM: stopping; finishing queued frames (again to force)"
    assert "cam0" in out and "not started: stopped before it opened" in out
    assert "interrupted" in out


def events_of(events: list[Event], camera: str) -> list[str]:
    return [e.type for e in events if e.camera == camera]


def tracks_of(pg_url: str, camera: str) -> int:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM tracks WHERE camera = :camera")
            return int(conn.execute(query, {"camera": camera}).scalar_one())
    finally:
        engine.dispose()


# Last in the module: it takes a node away from the shared cluster.
def test_a_node_removed_mid_run_moves_its_cameras_and_nothing_is_lost_or_repeated(
    cluster: Any, long_clips: dict[str, Path], pg_url: str
) -> None:
    from pipeline.cluster.run import ClusterRun

    port = free_port()
    collector = Collector(f"tcp://127.0.0.1:{port}", CAMERAS)
    run = ClusterRun(cluster_config(long_clips, pg_url, port, realtime=True), config_source="c")
    outcome: dict[str, RunSummary] = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=run.run()))
    workers = with_a_worker(cluster)
    runner.start()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline and runner.is_alive():
        for shard in run.status():
            published = [e for e in list(collector.events) if e.camera in shard.cameras]
            if shard.info.node_id in workers and len(published) > 2 * len(shard.cameras) + 8:
                victim = shard
                break
        time.sleep(0.05)
    assert victim is not None, "no shard on a removable node got going"
    cluster.remove_node(workers[victim.info.node_id], allow_graceful=False)
    runner.join(timeout=180)
    events = collector.join()

    summary = outcome["summary"]
    assert summary.ok, summary
    assert [m for m in run.moves if m.startswith(victim.info.name)], run.moves
    assert all(run.restarts[c] == 1 for c in victim.cameras)
    assert {c: s.frames for c, s in summary.cameras.items()} == {c: LONG_FRAMES for c in long_clips}
    assert_each_frame_once(long_clips, LONG_FRAMES, pg_url, events)
    assert_each_event_once(long_clips, events)  # also those around the death
    tracks, tracked_boxes = tracks_per_camera(pg_url)
    assert set(tracks) == tracked_boxes and set(tracks.values()) == {1}  # each track once
    runs = runs_of(pg_url)
    ((config, (_, reason)),) = [(c, r) for c, r in runs.items() if r[0] == "lost"]
    assert config.endswith(f"on {victim.info.name})")
    assert (reason or "").startswith(f"{victim.info.describe()} died:")
    assert {status for status, _ in runs.values()} == {"finished", "lost"}


@needs_rtsp
def test_a_live_rtsp_camera_streams_again_from_a_survivor_after_its_node_dies(
    cluster: Any, pg_url: str
) -> None:
    from pipeline.cluster.run import ClusterRun

    # one live camera per shard (assigned by their names), both on the one test stream
    names = [f"live{i}" for i in range(8)]
    plan = assign(names, ["shard-0", "shard-1"])
    cameras = [plan["shard-0"][0], plan["shard-1"][0]]
    server = RtspServer(fps=10)
    server.start()
    try:
        port = free_port()
        collector = Collector(f"tcp://127.0.0.1:{port}", len(cameras))
        source = f"{{type: stream, url: '{server.url}', options: {{rtsp_transport: tcp}}}}"
        config = config_of(
            "".join(f"  - {{id: {c}, source: {source}}}\n" for c in cameras), pg_url, port
        )
        run = ClusterRun(config, config_source="live.yaml")
        outcome: dict[str, RunSummary] = {}
        runner = threading.Thread(target=lambda: outcome.update(summary=run.run()))
        workers = with_a_worker(cluster)
        runner.start()

        def published(camera: str, after: int = 0) -> int:
            events = list(collector.events)[after:]
            return sum(e.camera == camera and e.type == "detections" for e in events)

        victim = None  # the shard on the removable node, once its camera's rows are stored
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and runner.is_alive():
            for shard in run.status():
                if (
                    shard.info.node_id in workers
                    and shard.cameras
                    and published(shard.cameras[0]) >= 5
                ):
                    victim = shard if rows_by_run(pg_url, shard.cameras[0]) else None
            time.sleep(0.2)
        assert victim is not None, "the live camera of the removable node's shard never streamed"
        (moved,) = victim.cameras
        cluster.remove_node(workers[victim.info.node_id], allow_graceful=False)
        # count from the move on: events the dead shard sent before it died can still be
        # arriving until the death is noticed
        deadline = time.monotonic() + 120
        while not run.moves and time.monotonic() < deadline and runner.is_alive():
            time.sleep(0.05)
        removed_at = len(collector.events)
        while (
            published(moved, removed_at) < 5 and time.monotonic() < deadline and runner.is_alive()
        ):
            time.sleep(0.05)
        run.stop.set()
        runner.join(timeout=120)
        events = collector.join()
    finally:
        server.kill()

    assert not runner.is_alive(), "the run did not end after stop"
    summary = outcome["summary"]
    assert summary.interrupted and not summary.sink_errors and not summary.detector_error
    assert all(
        summary.cameras[c].frames > 0 and summary.cameras[c].error is None for c in cameras
    ), {c: (s.frames, s.dropped, s.opened, s.error) for c, s in summary.cameras.items()}
    assert any(
        m.startswith(victim.info.name) and f"cameras {moved} moved to" in m for m in run.moves
    ), run.moves
    assert run.restarts[moved] == 1
    assert published(moved, removed_at) >= 5, "the moved camera published nothing after the death"
    seqs = [e.seq for e in events if e.camera == moved]
    assert seqs == list(range(len(seqs)))  # its events go on numbered without a gap
    by_run = rows_by_run(pg_url, moved)
    dead = [c for c in by_run if c.endswith(f"on {victim.info.name})")]
    survivors = [c for c in by_run if not c.endswith(f"on {victim.info.name})")]
    assert dead and survivors, by_run  # stored before the death, and by another shard after
    runs = runs_of(pg_url)
    assert runs[dead[0]][0] == "lost"
    assert {status for config, (status, _) in runs.items() if config not in dead} == {"interrupted"}
