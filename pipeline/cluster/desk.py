"""How `cameras add|remove` reach a running coordinator: a small named Ray actor, the
run's desk, where the command leaves its request and waits for the answer, and which the
coordinator empties as it watches its shards (twice a second). The desk belongs to the
driver, so it ends with the run, and is kept on the driver's node, so that no other node's
death ends it before; it lives in the `NAMESPACE` of the status boards."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.cluster.status import NAMESPACE, start_run_actor
from pipeline.config import CameraConfig

DESK_PREFIX = "cameras-"
"""A desk's actor name: this prefix, then the run's token (as its status board's)."""
ANSWER_TIMEOUT_S = 60.0
"""Longest wait for the coordinator's answer (starting a shard's run for an added camera
takes a moment; a coordinator that never answers is gone or stuck)."""
TAKE_TIMEOUT_S = 5.0
"""Longest wait of the coordinator for its desk (it must go back to its shards)."""


class DeskError(RuntimeError):
    """No running pipeline to ask, or no answer from it (one line)."""


@dataclass(frozen=True)
class CameraRequest:
    """What `cameras add|remove` asks of a run: `cameras` to add, or `camera_ids` to
    remove."""

    action: Literal["add", "remove"]
    cameras: tuple[CameraConfig, ...] = ()
    camera_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The coordinator's answer: a line per camera changed, and one per problem (a
    refused request changes no camera)."""

    lines: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


class CameraDesk:
    """Requests waiting for a run's coordinator, and their answers; made a named async
    Ray actor by the coordinator (`start_desk`)."""

    def __init__(self) -> None:
        self._tickets = itertools.count()
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._requests: list[tuple[int, CameraRequest]] = []

    async def ask(self, request: CameraRequest) -> Answer:
        """Leaves `request` for the coordinator; returns its answer."""
        ticket = next(self._tickets)
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = answer
        self._requests.append((ticket, request))
        return await answer

    async def take(self) -> list[tuple[int, CameraRequest]]:
        """The requests left since the last call, each with its ticket."""
        taken, self._requests = self._requests, []
        return taken

    async def answer(self, ticket: int, answer: Answer) -> None:
        """Hands `answer` to the command waiting on `ticket` (if it still waits)."""
        waiting = self._waiting.pop(ticket, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)


def start_desk(ray: Any, token: str) -> Any:
    """A new desk for the run `token`, findable by `find_desk` from other processes."""
    return start_run_actor(ray, CameraDesk, f"{DESK_PREFIX}{token}")


def find_desk(ray: Any, address: str, run: str | None) -> Any:
    """The desk of the pipeline running on the cluster (`run`: its token, needed when
    several run there); raises DeskError saying why there is none to ask."""
    tokens = sorted(
        entry["name"].removeprefix(DESK_PREFIX)
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(DESK_PREFIX)
    )
    if run is not None:
        wanted = run.split()[-1]
        if wanted not in tokens:
            running = f" (running: {', '.join(tokens)})" if tokens else ""
            raise DeskError(f"no pipeline run {run!r} on the Ray cluster at {address!r}{running}")
        tokens = [wanted]
    if not tokens:
        raise DeskError(f"no pipeline is running on the Ray cluster at {address!r}")
    if len(tokens) > 1:
        raise DeskError(
            f"{len(tokens)} pipelines run on the Ray cluster at {address!r} "
            f"({', '.join(tokens)}): say which with --run"
        )
    try:
        return ray.get_actor(f"{DESK_PREFIX}{tokens[0]}", namespace=NAMESPACE)
    except ValueError:
        raise DeskError(f"the pipeline run {tokens[0]} has just ended") from None


def ask(ray: Any, desk: Any, request: CameraRequest, timeout_s: float = ANSWER_TIMEOUT_S) -> Answer:
    """The coordinator's answer to `request`; raises DeskError when none comes."""
    try:
        answer: Answer = ray.get(desk.ask.remote(request), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise DeskError(f"the pipeline did not answer within {timeout_s:.0f} s") from None
    except ray.exceptions.RayError:
        raise DeskError("the pipeline run ended before it answered") from None
    return answer
