"""A wrapping sink passes every call of the sink interface on to the sink it wraps."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from sinks.base import ForwardingSink, Sink

# The methods of the interface, public; each must reach the wrapped sink.
HOOKS = sorted(
    name
    for name, member in inspect.getmembers(Sink, inspect.isfunction)
    if not name.startswith("_")
)


class Recorder(Sink):
    """Records each call and its arguments; returns a value of the right kind."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name in HOOKS:
            calls = object.__getattribute__(self, "calls")
            returned = {"describe": "inner", "start_line": "", "metrics": (), "routes": ()}

            def record(*args: Any) -> Any:
                calls.append((name, args))
                return returned.get(name)

            return record
        return object.__getattribute__(self, name)

    def write(self, result: Any) -> None:  # pragma: no cover - replaced by the recorder
        raise AssertionError

    def close(self) -> None:  # pragma: no cover - replaced by the recorder
        raise AssertionError


def _arguments(name: str) -> Sequence[object]:
    parameters = list(inspect.signature(getattr(Sink, name)).parameters)[1:]
    return [object() for _ in parameters]


def test_every_hook_of_the_sink_interface_reaches_the_wrapped_sink() -> None:
    assert {"write", "held_events", "tick", "end", "metrics", "routes"} <= set(HOOKS)
    inner = Recorder()
    wrapper = ForwardingSink(inner)
    for name in HOOKS:
        arguments = _arguments(name)
        getattr(wrapper, name)(*arguments)
        assert inner.calls[-1] == (name, tuple(arguments)), name
    assert wrapper.name == inner.name


def test_a_forwarding_sink_overrides_every_hook_of_the_interface() -> None:
    # a hook added to Sink but not to ForwardingSink would be silently dropped by wrappers
    for name in HOOKS:
        assert getattr(ForwardingSink, name) is not getattr(Sink, name), name
