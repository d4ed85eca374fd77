"""What the coordinator checks before adding or removing cameras, and how the summary
says it, without Ray (adding and removing on a running cluster: test_ray_cluster.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.cluster.assign import shard_of
from pipeline.cluster.changes import CameraChanges, LabelsUnavailable
from pipeline.cluster.desk import CameraRequest
from pipeline.cluster.shard import ShardInfo
from pipeline.config import CameraConfig, DetectorConfig, parse_config
from pipeline.config.cameras import CHECK_SOURCES
from pipeline.summary import CameraStats, RunSummary


class RayError(Exception):
    """Ray's base error (an actor that died raises one)."""


class GetTimeoutError(RayError):
    """No answer in time."""


class RayTaskError(RayError):
    """A call that raised."""


def passed_on(refs: Any, timeout: float) -> Any:
    """`ray.get` of the stand-in: a call's result is its value (an error is raised)."""
    if isinstance(refs, Exception):
        raise refs
    return refs


RAY = SimpleNamespace(
    get=passed_on,
    exceptions=SimpleNamespace(
        RayError=RayError, GetTimeoutError=GetTimeoutError, RayTaskError=RayTaskError
    ),
)
PERSON = ("person",)
ZONE = {"id": "lot", "polygon": [[0, 0], [1, 0], [1, 1]], "labels": ["car"]}


def no_labels(camera_id: str) -> tuple[str, ...]:
    raise AssertionError(f"the detector's labels were asked for camera {camera_id}")


def camera(camera_id: str, **fields: Any) -> CameraConfig:
    data = {"id": camera_id, "source": f"{camera_id}.mp4", **fields}
    return CameraConfig.model_validate(data, context={CHECK_SOURCES: False})


@dataclass
class FakeActor:
    """A shard actor that records the cameras it is told to stop and the detector configs
    it is asked the labels of (answering `labels`, or raising it when an error)."""

    stopped: list[str] = field(default_factory=list)
    asked: list[DetectorConfig] = field(default_factory=list)
    labels_answer: tuple[str, ...] | Exception = PERSON

    def __post_init__(self) -> None:
        self.stop_camera = SimpleNamespace(remote=self.stopped.append)
        self.labels = SimpleNamespace(remote=self._labels)

    def _labels(self, detector: DetectorConfig, shards_here: int) -> tuple[str, ...] | Exception:
        self.asked.append(detector)
        return self.labels_answer


@dataclass
class FakeRun:
    actor: FakeActor
    info: ShardInfo
    cameras: list[str]


def shard_run(name: str, *cameras: str) -> FakeRun:
    return FakeRun(FakeActor(), ShardInfo(name, "10.0.0.7", "3f2a9c1b", 1, ()), list(cameras))


def changes() -> CameraChanges:
    return CameraChanges(DetectorConfig.model_validate({"model": "person_ssdlite"}))


def problems_adding(
    done: CameraChanges,
    cameras: list[CameraConfig],
    known: tuple[str, ...] = (),
    *,
    stopping: bool = False,
    shards: int = 2,
    labels: Callable[[str], tuple[str, ...]] = no_labels,
) -> list[str]:
    return done.add_problems(cameras, known, stopping=stopping, shards=shards, labels=labels)


def test_an_id_the_run_has_or_had_is_refused_and_so_is_one_given_twice() -> None:
    done = changes()
    done.removed.add("old")
    problems = problems_adding(
        done, [camera("gate"), camera("old"), camera("new"), camera("new")], ("gate", "old")
    )
    assert problems == [
        "camera gate is already in this run",
        "camera old was removed from this run; add it under another id",
        "camera new is given twice",
    ]
    assert problems_adding(done, [camera("new")], ("gate",)) == []


def test_nothing_is_added_to_a_run_that_stops_or_has_no_shard_left() -> None:
    labelled = [camera("new", zones=[ZONE])]
    assert problems_adding(changes(), labelled, stopping=True) == [
        "the run is stopping: no camera is added"
    ]
    assert problems_adding(changes(), labelled, shards=0) == ["no shard is left to run a camera"]


def test_a_zone_label_the_detector_does_not_report_is_refused_at_its_path() -> None:
    asked: list[str] = []

    def person_only(camera_id: str) -> tuple[str, ...]:
        asked.append(camera_id)
        return PERSON

    done = changes()
    assert problems_adding(done, [camera("gate")], labels=person_only) == []
    assert asked == []  # no labels: no shard is asked
    (problem,) = problems_adding(
        done, [camera("gate"), camera("yard", zones=[ZONE])], labels=person_only
    )
    assert problem == (
        "cameras[0].zones[0].labels (camera yard): 'car' is not a class the detector "
        "reports (person)"
    )
    assert asked == ["yard"]  # the shard it would run on
    people = {**ZONE, "labels": ["person"]}
    assert problems_adding(done, [camera("dock", zones=[people])], labels=person_only) == []
    assert asked == ["yard"]  # once per run: every shard has the run's one detector


def test_labels_a_shard_cannot_give_now_refuse_the_labelled_cameras_and_are_asked_again() -> None:
    answers: list[tuple[str, ...] | Exception] = [
        LabelsUnavailable("shard-1 is still building its detector: add them again in a moment"),
        PERSON,
    ]

    def building_then_ready(camera_id: str) -> tuple[str, ...]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    done = changes()
    cameras = [camera("gate"), camera("yard", zones=[ZONE])]
    assert problems_adding(done, cameras, labels=building_then_ready) == [
        "cannot check the zone and line labels of cameras yard: shard-1 is still building "
        "its detector: add them again in a moment"
    ]
    (problem,) = problems_adding(done, cameras, labels=building_then_ready)
    assert problem.endswith("'car' is not a class the detector reports (person)")
    assert answers == []


def test_removing_stops_each_camera_on_its_shard_and_remembers_it() -> None:
    done = changes()
    runs = [shard_run("shard-0", "gate", "hall"), shard_run("shard-1", "yard")]
    answer = done.remove(RAY, ["hall", "yard"], ["gate", "hall", "yard"], runs)

    assert answer.ok
    assert [r.actor.stopped for r in runs] == [["hall"], ["yard"]]
    assert done.removed == {"hall", "yard"}
    assert answer.lines[0].startswith("camera hall removed from shard-0 on 10.0.0.7")
    assert list(answer.lines) == done.lines


def test_an_unknown_finished_or_removed_camera_is_refused_and_nothing_is_stopped() -> None:
    done = changes()
    done.removed.add("old")
    runs = [shard_run("shard-0", "gate", "old")]
    answer = done.remove(RAY, ["gate", "nope", "old", "over"], ["gate", "old", "over"], runs)

    assert not answer.ok and answer.lines == ()
    assert answer.problems == (
        "no camera 'nope' in this run (its cameras: gate, old, over)",
        "camera old was removed already",
        "camera over is not running any more",
        "no camera was removed",
    )
    assert runs[0].actor.stopped == [] and done.removed == {"old"}


def test_a_camera_removed_before_its_first_frame_is_not_counted_as_failed() -> None:
    done = changes()
    done.removed.update({"early", "late"})
    done.lines.append("camera late removed from shard-0")
    summary = RunSummary(
        cameras={
            "early": CameraStats("early", "e.mp4"),
            "late": CameraStats("late", "l.mp4", frames=7, opened=True),
            "gate": CameraStats("gate", "g.mp4", frames=9, opened=True),
        },
        elapsed_s=1.0,
        outputs=["zmq"],
    )
    settled = done.settle(summary)

    assert list(settled.cameras) == ["late", "gate"] and settled.ok
    assert settled.outputs == ["zmq", "camera late removed from shard-0"]


def cluster_run(*camera_ids: str) -> Any:
    """A coordinator of `camera_ids` with two live shards, whose runs are recorded in
    `started` instead of reaching Ray."""
    from pipeline.cluster.coordinator import Coordinator, _Running

    class Recording(Coordinator):
        started: list[tuple[str, list[str]]]

        def _start(
            self, ray: Any, name: str, cameras: list[str], forwarder: Any, resume: Any
        ) -> _Running:
            self.started.append((name, cameras))
            return _Running(self._alive[name][0], infos[name], cameras, object(), "")

    cams = "".join(f"  - {{id: {c}, source: {c}.mp4}}\n" for c in camera_ids)
    config = parse_config(f"cameras:\n{cams}cluster: {{engine: ray}}\n", check_sources=False)
    run = Recording(config, "cluster abc", "", threading.Event(), lambda _: None)
    infos = {n: ShardInfo(n, "10.0.0.7", "3f2a9c1b", 1, ()) for n in ("shard-0", "shard-1")}
    run._alive = {n: (FakeActor(), info) for n, info in infos.items()}
    run.started = []
    return run


def test_an_added_camera_lands_where_it_hashes_and_moves_when_its_shard_dies() -> None:
    run = cluster_run("gate")
    running: dict[Any, Any] = {}
    answer = run._add(RAY, CameraRequest("add", cameras=(camera("extra"),)), running, None)

    home = shard_of("extra", ["shard-0", "shard-1"])
    assert answer.ok and run.started == [(home, ["extra"])]
    assert [c.id for c in run.config.cameras] == ["gate", "extra"]
    (added,) = running.values()
    del run._alive[home]
    run._take_over(RAY, added, None, f"{home} died", {})
    (survivor,) = run._alive
    assert run.started[-1] == (survivor, ["extra"]) and run.restarts["extra"] == 1


def test_a_removed_camera_is_not_moved_when_its_shard_dies() -> None:
    run = cluster_run("gate", "hall")
    (dead,) = [run._start(RAY, "shard-0", ["gate", "hall"], None, {})]
    run.changes.removed.add("hall")
    del run._alive["shard-0"]
    run._take_over(RAY, dead, None, "shard-0 died", {})

    assert run.started[-1] == ("shard-1", ["gate"])
    assert run.restarts["hall"] == 0


def test_a_removed_camera_is_no_longer_shown_on_its_shard() -> None:
    run = cluster_run("gate", "hall")
    run._running = [run._start(RAY, "shard-0", ["gate", "hall"], None, {})]
    run.changes.removed.add("hall")
    shown = [(s.info.name, s.cameras) for s in run.status()]
    assert shown == [("shard-0", ("gate",)), ("shard-1", ())]


def test_a_camera_whose_shard_does_not_answer_is_not_added_and_can_be_added_again() -> None:
    run = cluster_run("gate")

    def dead(*args: Any) -> Any:
        raise RayError("The actor died unexpectedly")

    run._start = dead
    running: dict[Any, Any] = {}
    answer = run._add(RAY, CameraRequest("add", cameras=(camera("extra"),)), running, None)

    assert answer.lines == () and running == {}
    (problem,) = answer.problems
    assert problem.startswith("cameras extra not added: shard-")
    assert problem.endswith(" The actor died unexpectedly")
    assert [c.id for c in run.config.cameras] == ["gate"]
    assert problems_adding(run.changes, [camera("extra")], ("gate",)) == []


def test_an_added_camera_s_labels_are_asked_of_its_shard_and_no_detector_is_built_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import detector.models
    import pipeline.build

    built: list[str] = []
    monkeypatch.setattr(pipeline.build, "build_run_detector", lambda *a: built.append("run"))
    monkeypatch.setattr(detector.models, "build_model", lambda *a: built.append("model"))
    run = cluster_run("gate")
    running: dict[Any, Any] = {}
    request = CameraRequest("add", cameras=(camera("yard", zones=[ZONE]),))
    answer = run._add(RAY, request, running, None)

    assert answer.problems == (
        "cameras[0].zones[0].labels (camera yard): 'car' is not a class the detector "
        "reports (person)",
        "no camera was added",
    )
    home = shard_of("yard", ["shard-0", "shard-1"])
    asked = {name: actor.asked for name, (actor, _) in run._alive.items()}
    assert asked == {n: [run.config.detector] if n == home else [] for n in asked}
    assert built == [] and run.started == [] and running == {}
    assert [c.id for c in run.config.cameras] == ["gate"]


def failed_task(cause: Exception) -> RayTaskError:
    error = RayTaskError("the task raised")
    error.cause = cause  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (RayError("The actor died unexpectedly."), "{home} The actor died unexpectedly."),
        (GetTimeoutError(), "{home} is still building its detector: add them again in a moment"),
        (
            failed_task(FileNotFoundError("weights.pt is missing\nTraceback ...")),
            "{home} cannot build its detector: weights.pt is missing",
        ),
    ],
)
def test_a_shard_that_cannot_give_its_labels_refuses_the_labelled_cameras_in_one_line(
    error: Exception, said: str
) -> None:
    run = cluster_run("gate")
    home = shard_of("yard", ["shard-0", "shard-1"])
    run._alive[home][0].labels_answer = error
    request = CameraRequest("add", cameras=(camera("yard", zones=[ZONE]),))
    answer = run._add(RAY, request, {}, None)

    assert answer.problems == (
        "cannot check the zone and line labels of cameras yard: " + said.format(home=home),
        "no camera was added",
    )
    assert run.started == []
