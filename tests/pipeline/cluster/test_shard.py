"""A shard's detector, without Ray: the `Shard` class in this process, its runs given
cameras as the coordinator gives them (at the start, added while running, taken over), and
its detector counted through the build function it uses."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from sqlalchemy import create_engine, text

import pipeline.build
import pipeline.runner
import pipeline.source_check
from pipeline.build import make_source
from pipeline.cluster.shard import Shard
from pipeline.config import DetectorConfig, PipelineConfig, parse_config
from pipeline.runner import FrameDetector
from pipeline.types import Detections, Frame, LabelMap
from sinks.base import SinkError
from tests.conftest import free_port, write_video
from tests.cores import pin_cores
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

FRAMES = 4
LABELS = LabelMap(("background", "person"))


class OneBox(FrameDetector):
    """One person box a frame."""

    labels = LABELS
    background = 0

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [
            Detections(
                xyxy=np.array([[10, 10, 50, 60]], np.float32),
                score=np.array([0.9], np.float32),
                label=np.array([1], np.int64),
            )
            for _ in frames
        ]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[DetectorConfig]:
    """The detector configs the shard builds a detector from, in order."""
    built: list[DetectorConfig] = []

    def build(config: DetectorConfig, announce: Any = None, sharing: int = 1) -> OneBox:
        built.append(config)
        return OneBox()

    monkeypatch.setattr(pipeline.build, "build_run_detector", build)
    return built


def config_of(tmp_path: Path, *cameras: str, **detector: Any) -> PipelineConfig:
    cams = "".join(
        f"  - {{id: {c}, source: '{write_video(tmp_path / f'{c}.mp4', frames=FRAMES)}'}}\n"
        for c in cameras
    )
    settings = json.dumps({"model": "person_ssdlite", **detector})
    return parse_config(f"cameras:\n{cams}detector: {settings}\ncluster: {{engine: ray}}\n")


def frames_of(shard: Shard, config: PipelineConfig, cameras: list[str], run: int) -> dict[str, int]:
    summary = shard.run(config, cameras, f"c (cluster abc run {run} on shard-0)", None)
    return {c: s.frames for c, s in summary.cameras.items()}


def test_a_shard_builds_its_detector_once_for_every_run_it_is_given(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    config = config_of(tmp_path, "gate", "extra", "moved")
    shard = Shard("shard-0")

    assert frames_of(shard, config, ["gate"], 1) == {"gate": FRAMES}  # its cameras at the start
    assert frames_of(shard, config, ["extra"], 2) == {"extra": FRAMES}  # `cameras add`
    assert frames_of(shard, config, ["moved"], 3) == {"moved": FRAMES}  # from a dead shard
    assert builds == [config.detector]
    assert shard.labels(config.detector) == ("person",)  # `cameras add` checking zone labels
    assert builds == [config.detector]


def test_asking_a_new_shard_its_labels_builds_the_detector_its_first_run_then_uses(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    config = config_of(tmp_path, "gate")
    shard = Shard("shard-1")

    assert shard.labels(config.detector) == ("person",)
    assert frames_of(shard, config, ["gate"], 1) == {"gate": FRAMES}
    assert builds == [config.detector]


def test_a_run_with_another_detector_config_gets_a_detector_built_from_it(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    config = config_of(tmp_path, "gate")
    stricter = config.model_copy(
        update={"detector": config.detector.model_copy(update={"score_threshold": 0.9})}
    )
    shard = Shard("shard-0")
    frames_of(shard, config, ["gate"], 1)
    frames_of(shard, stricter, ["gate"], 2)

    assert builds == [config.detector, stricter.detector]


def test_a_shard_tells_each_camera_whose_stream_ended_whatever_sinks_the_config_has(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    config = config_of(tmp_path, "gate", "yard")
    shard = Shard("shard-0")
    assert shard.progress().ended == {}

    summary = shard.run(config, ["gate"], "c (cluster abc run 1 on shard-0)", None)
    ended = shard.progress().ended
    assert list(ended) == ["gate"]  # yard is not its
    assert (ended["gate"].frames, ended["gate"].error, ended["gate"].last_boxed) == (
        FRAMES,
        None,
        FRAMES - 1,  # a box every frame
    )
    assert not any("tally" in o for o in summary.outputs)
    assert [s.frames for s in shard.progress().counts] == [FRAMES]


def failing_cameras(tmp_path: Path, sinks: str = "") -> tuple[PipelineConfig, dict[str, str]]:
    """A config whose cameras gone and empty fail their check (and other, another shard's),
    with `sinks`; the line each of the two fails with."""
    (tmp_path / "empty.mp4").touch()
    cams = "".join(f"  - {{id: {c}, source: '{tmp_path / c}.mp4'}}\n" for c in ("gone", "empty"))
    config = parse_config(
        f"cameras:\n{cams}  - {{id: other, source: '{tmp_path / 'other.mp4'}'}}\n"
        f"{sinks}cluster: {{engine: ray}}\n",
        check_sources=False,
    )
    errors = {
        "gone": f"camera gone: file not found: '{tmp_path / 'gone.mp4'}'",
        "empty": f"camera empty: empty file (0 bytes): '{tmp_path / 'empty.mp4'}'",
    }
    return config, errors


def test_a_shard_whose_cameras_all_fail_their_check_reports_them_without_a_detector(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    # was: the detector built first (a first run's export takes many seconds), then failed
    config, errors = failing_cameras(tmp_path)
    shard = Shard("shard-0")
    summary = shard.run(config, ["gone", "empty"], "c (cluster abc run 1 on shard-0)", None)

    assert builds == []
    assert {c: s.error for c, s in summary.cameras.items()} == errors
    assert not summary.ok and not summary.interrupted
    ended = shard.progress().ended  # what the coordinator asks, as for any camera's end
    assert {c: (e.frames, e.error) for c, e in ended.items()} == {
        c: (0, line) for c, line in errors.items()
    }
    assert not any("tally" in o for o in summary.outputs)
    # a later run given a camera that opens builds the detector then
    assert frames_of(shard, config_of(tmp_path, "gate"), ["gate"], 2) == {"gate": FRAMES}
    assert len(builds) == 1


def test_a_shard_whose_cameras_all_fail_their_check_has_its_run_failed_in_the_database(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    skip_without_pg()
    run = "c (cluster abc run 1 on shard-0)"
    with pg_schema() as url:
        sinks = f"sinks:\n  - {{type: sql, url: '{url}', spool_dir: '{tmp_path / 'spool'}'}}\n"
        config, _ = failing_cameras(tmp_path, sinks)
        Shard("shard-0").run(config, ["gone", "empty"], run, None)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                runs = conn.execute(text("SELECT config, status FROM runs")).fetchall()
        finally:
            engine.dispose()
    assert [tuple(r) for r in runs] == [(run, "failed")]  # as when it built its detector first
    assert builds == []


@pytest.mark.parametrize("kind", ["video", "snapshots"])
def test_a_shard_refuses_an_output_folder_it_could_never_write_before_building_its_detector(
    tmp_path: Path, builds: list[DetectorConfig], kind: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / kind
    clip = write_video(tmp_path / "gate.mp4", frames=FRAMES)
    config = parse_config(
        f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
        f"sinks:\n  - {{type: {kind}, dir: '{folder}'}}\ncluster: {{engine: ray}}\n"
    )
    line = f"{kind} sink: cannot make the folder {folder}: {tmp_path / 'a-file'} is not a folder"
    shard = Shard("shard-0")

    assert shard.problem_before_work(config) == line  # what the driver asks each shard first
    with pytest.raises(SinkError) as refused:
        shard.run(config, ["gate"], "c (cluster abc run 1 on shard-0)", None)
    assert str(refused.value) == line
    assert builds == []


def test_a_shard_that_could_write_every_output_folder_has_no_problem_before_work(
    tmp_path: Path,
) -> None:
    clip = write_video(tmp_path / "gate.mp4", frames=FRAMES)
    config = parse_config(
        f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
        f"sinks:\n  - {{type: video, dir: '{tmp_path / 'new' / 'video'}'}}\n"
        "cluster: {engine: ray}\n"
    )
    assert Shard("shard-0").problem_before_work(config) is None
    assert not (tmp_path / "new").exists()  # checked, not made


def test_a_shard_leaves_the_zmq_endpoint_to_the_driver_whose_forwarder_holds_it(
    tmp_path: Path, builds: list[DetectorConfig]
) -> None:
    clip = write_video(tmp_path / "gate.mp4", frames=FRAMES)
    with socket.socket() as forwarder:  # the driver's, bound before the shards run
        forwarder.bind(("127.0.0.1", 0))
        forwarder.listen()
        endpoint = f"tcp://127.0.0.1:{forwarder.getsockname()[1]}"
        config = parse_config(
            f"cameras:\n  - {{id: gate, source: '{clip}'}}\n"
            f"sinks:\n  - {{type: zmq, endpoint: '{endpoint}'}}\ncluster: {{engine: ray}}\n"
        )
        shard = Shard("shard-0")
        assert shard.problem_before_work(config) is None
        publisher = f"tcp://127.0.0.1:{free_port()}"
        with zmq.Context() as context, context.socket(zmq.SUB) as subscriber:
            subscriber.connect(publisher)  # as the forwarder does, for the shard's wait
            subscriber.subscribe(b"")
            summary = shard.run(config, ["gate"], "c (cluster abc run 1 on shard-0)", publisher)
    assert summary.cameras["gate"].frames == FRAMES


def test_a_shard_checks_its_config_once_before_its_run(
    tmp_path: Path, builds: list[DetectorConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.preflight
    import pipeline.runner

    checked: list[PipelineConfig] = []
    real = pipeline.preflight.check_before_work

    def check(config: PipelineConfig) -> None:
        checked.append(config)
        real(config)

    monkeypatch.setattr(pipeline.preflight, "check_before_work", check)
    monkeypatch.setattr(pipeline.runner, "check_before_work", check)
    config = config_of(tmp_path, "gate")
    assert frames_of(Shard("shard-0"), config, ["gate"], 1) == {"gate": FRAMES}
    assert len(checked) == 1


@pytest.mark.parametrize(("cameras_here", "threads"), [(None, 0), (3, 0), (4, 1)])
def test_a_shard_s_decoders_take_their_threads_by_the_cameras_on_its_machine(
    tmp_path: Path,
    builds: list[DetectorConfig],
    monkeypatch: pytest.MonkeyPatch,
    cameras_here: int | None,
    threads: int,
) -> None:
    # One camera of its own; with the other shards' on 4 cores, one thread each.
    pin_cores(monkeypatch, 4)
    given: list[int] = []

    def recording_make_source(source: Any, decoder_threads: int = 0) -> Any:
        given.append(decoder_threads)
        return make_source(source, decoder_threads)

    monkeypatch.setattr(pipeline.source_check, "make_source", recording_make_source)
    config = config_of(tmp_path, "gate", "hall")
    run = "c (cluster abc run 1 on shard-0)"
    summary = Shard("shard-0").run(config, ["gate"], run, None, cameras_here=cameras_here)
    assert summary.cameras["gate"].frames == FRAMES
    assert given == [threads]


@pytest.mark.parametrize(("shards_here", "threads"), [(1, 4), (2, 2)])
def test_a_shard_s_onnxruntime_session_takes_its_share_of_the_machine_s_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards_here: int, threads: int
) -> None:
    # Shards on one machine each gave ONNX Runtime every core: N shards, N x cores threads.
    pytest.importorskip("onnxruntime")
    from detector import models, onnx_runtime
    from tests.detector.test_onnx_runtime import tiny_ssd

    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(models.MODELS, "tiny", lambda weights: (tiny_ssd(9), LABELS))
    pin_cores(monkeypatch, 4)
    real_build = pipeline.build.build_run_detector
    built: list[Any] = []

    def recording_build(config: DetectorConfig, announce: Any = None, sharing: int = 1) -> Any:
        built.append(real_build(config, announce, sharing))
        return built[-1]

    monkeypatch.setattr(pipeline.build, "build_run_detector", recording_build)
    config = config_of(tmp_path, "gate", model="tiny", runtime="onnxruntime", precision="fp32")
    # The first shard exports the network; the second opens the run's cached bundle.
    for shard in (Shard("shard-0"), Shard("shard-1")):
        run = f"c (cluster abc run 1 on {shard.name})"
        summary = shard.run(config, ["gate"], run, None, shards_here=shards_here)
        assert summary.cameras["gate"].frames == FRAMES
    fresh, cached = built
    assert type(fresh).__name__ == "Detector" and type(cached).__name__ == "CachedOnnxDetector"
    sessions = [fresh.network.session, cached.session]
    assert [s.get_session_options().intra_op_num_threads for s in sessions] == [threads] * 2
