"""The interface every sink implements. Sinks know only the shared types."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pipeline.types import (
    CameraStatus,
    FrameResult,
    HeldTrackEvents,
    RunOutcome,
    SinkMetric,
    StreamEnd,
    StreamInfo,
)

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


class SinkError(RuntimeError):
    """A sink cannot go on (disk full, database unreachable, port in use...).

    The message is one line naming the sink and what is wrong. Raised while the sink is
    built, before any frame is read, it stops the run at its start: for what will not go
    away by itself (an output folder that cannot be written: `sinks.disk.open_folder`), so
    nothing captured is lost; raised from a hook, it stops that sink alone and the run goes
    on (docs/stopping.md).
    """


class SinkStopped(SinkError):
    """The run's stop ended a sink's opening (a database server that does not answer, a
    locked database): nothing of the sink is left, and the run ends stopped, not failed."""


class Sink(ABC):
    """Consumes results, camera by camera, in frame order per camera.

    The orchestrator calls, for each camera: `start` once, `write` per frame (and
    `held_events` between frames, for "ended" events held for their snapshot, or those
    events in the next `write` for a sink without one: `takes_held_events`), `end` once;
    then `run_ended` and `close` once for the whole run, and `describe` for its summary
    (`start_line` once opened, for the run's start). Between those calls, `tick` comes every
    fraction of a second, whether or not frames come. A sink with pages of its own gives
    their `routes`, which the run serves on its one HTTP server.
    Calls come from a single thread (the sink's worker), so implementations need no locking.
    `close` must flush and release everything, and be safe to call after a failure.
    """

    name: str = "sink"
    wants_every_frame: ClassVar[bool] = False
    """True for sinks that draw frames skipped by detection (`FrameResult.detected` False)."""

    def start(self, info: StreamInfo) -> None:  # noqa: B027 - optional hook
        """A camera's stream opened; its frames follow."""

    @abstractmethod
    def write(self, result: FrameResult) -> None:
        """One processed frame."""

    def held_events(self, held: HeldTrackEvents) -> None:  # noqa: B027 - optional hook
        """A camera's "ended" track events held until their snapshot's files were written
        (or lost), between its frames, as soon as they settle; a sink that records track
        events takes them as a frame's. Called only for a sink that has a `held_events` of
        its own (`takes_held_events`)."""

    def takes_held_events(self) -> bool:
        """Whether held events come to this sink through `held_events`: only when it has
        one of its own. Any other sink finds them first among the track events of its
        camera's next `write`, or of its `end` when no frame comes before it.

        The pipeline cannot tell a sink that records track events from one that ignores
        them: a default that dropped held events would lose "ended" events of a sink that
        records them from `write` without knowing of `held_events`, and a warning would
        bother every sink that ignores them. Handed on with the next frame, they are never
        lost and never noticed where nobody looks; only later, which a sink that wants them
        at once (a camera whose frames stop) avoids by implementing `held_events`.
        """
        return type(self).held_events is not Sink.held_events

    def tick(self) -> None:  # noqa: B027 - optional hook
        """Time has passed (about `pipeline.workers.TICK_S`, between two other calls or
        none): for what is due with time rather than with a message, such as writing out
        a camera whose frames stopped."""

    def end(self, stream_end: StreamEnd) -> None:  # noqa: B027 - optional hook
        """A camera's stream is over (normally or with `stream_end.error`)."""

    def status(self, status: CameraStatus) -> None:  # noqa: B027 - optional hook
        """A camera's reader changed state (connecting, streaming, reconnecting, ...)."""

    def run_ended(self, outcome: RunOutcome) -> None:  # noqa: B027 - optional hook
        """How the run ended; called once, after every camera's `end`, before `close`."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release everything; the run is over."""

    def describe(self) -> str:
        """The run summary's line for this sink: what it wrote, and where; details (one per
        file written, say) may follow on lines of their own."""
        return self.name

    def metrics(self) -> tuple[SinkMetric, ...]:
        """Counts of its own for the run's metrics (what waits, what was dropped); read from
        the metrics server's thread while the sink runs, so only plain reads of counts."""
        return ()

    def start_line(self) -> str:
        """One line for the start of the run, for what a person can use at once (where to
        watch, say); "" for nothing."""
        return ""

    def routes(self, url: str) -> Sequence[BaseRoute]:
        """The HTTP routes this sink serves, relative to `url` (where the run's server
        mounts them, e.g. http://127.0.0.1:9464/live/); called once, before the first
        camera starts, and served until after `close`. () for none."""
        return ()


class ForwardingSink(Sink):
    """A sink that wraps another (`inner`): every call goes to `inner` unless the wrapper
    overrides it, so a hook added to `Sink` reaches wrapped sinks too."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.wants_every_frame = inner.wants_every_frame  # type: ignore[misc]

    def start(self, info: StreamInfo) -> None:
        self.inner.start(info)

    def write(self, result: FrameResult) -> None:
        self.inner.write(result)

    def held_events(self, held: HeldTrackEvents) -> None:
        self.inner.held_events(held)

    def takes_held_events(self) -> bool:
        return self.inner.takes_held_events()

    def tick(self) -> None:
        self.inner.tick()

    def end(self, stream_end: StreamEnd) -> None:
        self.inner.end(stream_end)

    def status(self, status: CameraStatus) -> None:
        self.inner.status(status)

    def run_ended(self, outcome: RunOutcome) -> None:
        self.inner.run_ended(outcome)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()

    def metrics(self) -> tuple[SinkMetric, ...]:
        return self.inner.metrics()

    def start_line(self) -> str:
        return self.inner.start_line()

    def routes(self, url: str) -> Sequence[BaseRoute]:
        return self.inner.routes(url)
