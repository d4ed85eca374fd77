"""`subscribe` says what it waits for on a terminal, and when nothing came in time."""

from __future__ import annotations

import sys

import pytest

from pipeline.cli import main
from tests.conftest import free_port


@pytest.fixture
def endpoint() -> str:
    """An endpoint nothing publishes on."""
    return f"tcp://127.0.0.1:{free_port()}"


def test_subscribe_on_a_terminal_says_what_it_waits_for_and_that_nothing_came(
    endpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = ["--camera", "a", "--camera", "b", "--type", "track.started", "--label", "person"]
    assert main(["subscribe", "--endpoint", endpoint, *args, "--timeout", "0.1"]) == 0
    out, err = capsys.readouterr()
    wanted = f"events from {endpoint} (camera a, b; type track.started; label person)"
    assert out == ""
    assert err == (
        f"waiting for {wanted}, at most 0.1 s without one; Ctrl-C stops\n"
        f"no {wanted} in 0.1 s\n"
    )


def test_subscribe_in_a_pipe_only_says_that_nothing_came_in_time(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["subscribe", "--endpoint", endpoint, "--timeout", "0.1"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"no events from {endpoint} in 0.1 s\n")
