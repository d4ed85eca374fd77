"""`cameras add|remove|list` without a cluster: the camera file checked before Ray is
touched, and the coordinator's answer printed with its exit status (the running cluster
is in tests/pipeline/cluster/test_ray_cluster.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.cluster import desk, engine
from pipeline.cluster.desk import Answer, CameraRequest
from pipeline.cluster.engine import ClusterError


@pytest.fixture
def no_ray_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the command reaches for Ray."""

    def reached() -> None:
        raise AssertionError("the command reached for Ray")

    monkeypatch.setattr(engine, "require_ray", reached)


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def test_a_bad_field_in_the_camera_file_is_named_at_its_yaml_path_before_ray_is_asked(
    tmp_path: Path, no_ray_wanted: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cameras = tmp_path / "more.yaml"
    cameras.write_text("cameras:\n  - id: gate\n    source: {type: file, path: g.mp4, fps: 3}\n")

    assert main(["cameras", "add", "--config", str(cameras), "gate"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "cameras[0].source.fps (camera gate, line 3): unknown key" in err


def test_a_camera_file_that_is_not_yaml_is_said_in_one_line(
    tmp_path: Path, no_ray_wanted: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cameras = tmp_path / "more.yaml"
    cameras.write_text("cameras: [\n")

    assert main(["cameras", "add", "--config", str(cameras)]) == 2
    assert "invalid YAML" in one_error_line(capsys.readouterr().err)


def test_an_id_the_camera_file_lacks_is_refused_naming_the_ones_it_has(
    tmp_path: Path, no_ray_wanted: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cameras = tmp_path / "more.yaml"
    cameras.write_text("cameras:\n  - {id: gate, source: g.mp4}\n  - {id: yard, source: y.mp4}\n")

    assert main(["cameras", "add", "--config", str(cameras), "gate", "hall"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "no camera 'hall' (its cameras: gate, yard)" in err


def test_without_ray_each_action_says_what_to_install_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing() -> None:
        raise ClusterError("cluster: Ray is not installed; " + engine.INSTALL_HINT)

    monkeypatch.setattr(engine, "require_ray", missing)
    cameras = tmp_path / "more.yaml"
    cameras.write_text("cameras:\n  - {id: gate, source: g.mp4}\n")
    for argv in (["add", "--config", str(cameras)], ["remove", "gate"], ["list"]):
        assert main(["cameras", *argv]) == 1
        assert "Ray is not installed" in one_error_line(capsys.readouterr().err)


class FakeCoordinator:
    """Answers as a running coordinator would, recording what it was asked."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.asked: list[CameraRequest] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        ray = SimpleNamespace(is_initialized=lambda: True)
        monkeypatch.setattr(engine, "require_ray", lambda: ray)
        monkeypatch.setattr(desk, "find_desk", lambda ray, address, run: self)
        monkeypatch.setattr(desk, "ask", self._ask)

    def _ask(self, ray: Any, found: Any, request: CameraRequest) -> Answer:
        self.asked.append(request)
        return self.answer


def test_the_chosen_cameras_are_sent_validated_and_the_answer_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    coordinator = FakeCoordinator(Answer(("cameras yard added on shard-1 on 10.0.0.8",)))
    coordinator.install(monkeypatch)
    cameras = tmp_path / "more.yaml"
    cameras.write_text("cameras:\n  - {id: gate, source: g.mp4}\n  - {id: yard, source: y.mp4}\n")

    assert main(["cameras", "add", "--config", str(cameras), "yard"]) == 0
    (request,) = coordinator.asked
    assert request.action == "add" and [c.id for c in request.cameras] == ["yard"]
    assert request.cameras[0].source.path == "y.mp4"  # type: ignore[union-attr]
    assert capsys.readouterr().out == "cameras yard added on shard-1 on 10.0.0.8\n"


@pytest.mark.parametrize(("action", "done"), [("add", "added"), ("remove", "removed")])
def test_a_refused_request_prints_each_reason_as_an_error_and_exits_2(
    action: str,
    done: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused = Answer(problems=("camera gate is already in this run", f"no camera was {done}"))
    FakeCoordinator(refused).install(monkeypatch)
    cameras = tmp_path / "more.yaml"
    cameras.write_text("cameras:\n  - {id: gate, source: g.mp4}\n")
    argv = ["add", "--config", str(cameras)] if action == "add" else ["remove", "gate"]

    assert main(["cameras", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: camera gate is already in this run\nerror: no camera was {done}\n"
    )
