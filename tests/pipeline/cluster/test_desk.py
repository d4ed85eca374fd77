"""The desk `cameras add|remove` leave requests at, without Ray: a request waits for the
coordinator's answer, and the command finds the one run to ask (or says why not)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.cluster.desk import Answer, CameraDesk, CameraRequest, DeskError, find_desk
from pipeline.cluster.status import NAMESPACE


def test_a_request_waits_at_the_desk_until_the_coordinator_answers_it() -> None:
    async def scenario() -> tuple[bool, Answer]:
        desk = CameraDesk()
        asked = asyncio.ensure_future(desk.ask(CameraRequest("remove", camera_ids=("gate",))))
        await asyncio.sleep(0)
        ((ticket, request),) = await desk.take()
        assert request.camera_ids == ("gate",)
        assert await desk.take() == []  # taken once
        waited = not asked.done()
        await desk.answer(ticket, Answer(("camera gate removed",)))
        return waited, await asked

    waited, answer = asyncio.run(scenario())
    assert waited and answer == Answer(("camera gate removed",))


def fake_ray(*names: str) -> Any:
    actors = [{"namespace": NAMESPACE, "name": n} for n in names]
    actors.append({"namespace": "other", "name": "cameras-elsewhere"})
    return SimpleNamespace(
        util=SimpleNamespace(list_named_actors=lambda all_namespaces: actors),
        get_actor=lambda name, namespace: f"actor {name}",
    )


def test_the_one_running_pipeline_is_found_whatever_else_runs_on_the_cluster() -> None:
    ray = fake_ray("coordinator-abc", "cameras-abc")
    assert find_desk(ray, "auto", None) == "actor cameras-abc"
    assert find_desk(ray, "auto", "cluster abc") == "actor cameras-abc"


@pytest.mark.parametrize(
    ("names", "run", "said"),
    [
        ((), None, "no pipeline is running on the Ray cluster at 'auto'"),
        (
            ("cameras-abc", "cameras-def"),
            None,
            "2 pipelines run on the Ray cluster at 'auto' (abc, def): say which with --run",
        ),
        (
            ("cameras-abc",),
            "xyz",
            "no pipeline run 'xyz' on the Ray cluster at 'auto' (running: abc)",
        ),
    ],
)
def test_no_run_or_an_unclear_one_is_said_in_one_line(
    names: tuple[str, ...], run: str | None, said: str
) -> None:
    with pytest.raises(DeskError) as error:
        find_desk(fake_ray(*names), "auto", run)
    assert str(error.value) == said
