"""`subscribe` says what it waits for, and its exit status tells apart the ways it can end:
the events asked for came (0), nobody publishes at the endpoint (1), a publisher is there but
sent nothing that matched in time (3)."""

from __future__ import annotations

import math
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

import pipeline.cli.events
from pipeline.cli import main
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_NO_EVENTS, EXIT_OK, EXIT_USAGE
from pipeline.types import LabelMap
from sinks.event_bus.endpoints import endpoint_problem
from sinks.event_bus.publisher import EventPublisher
from tests.conftest import free_port
from tests.sinks.event_bus.conftest import result


@pytest.fixture
def endpoint() -> str:
    """An endpoint on a port that was free a moment ago."""
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def silent_publisher(endpoint: str, context: zmq.Context[zmq.Socket[bytes]]) -> Iterator[str]:
    """A PUB socket bound at `endpoint` that sends nothing; the endpoint."""
    socket = context.socket(zmq.PUB)
    socket.bind(endpoint)
    yield endpoint
    socket.close(linger=0)


def publish(endpoint: str, frames: int) -> threading.Thread:
    """A pipeline's zmq sink at `endpoint` that sends `frames` detections events (camera
    "lobby") once a subscriber is there."""

    def run() -> None:
        sink = EventPublisher(endpoint, LabelMap(("background", "person")), wait_for_subscribers=1)
        for i in range(frames):
            sink.write(result("lobby", i))
        sink.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_subscribe_on_a_terminal_says_what_it_waits_for_and_that_nothing_came(
    silent_publisher: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = ["--camera", "a", "--camera", "b", "--type", "track.started", "--label", "person"]
    code = main(["subscribe", "--endpoint", silent_publisher, *args, "--timeout", "0.5"])
    out, err = capsys.readouterr()
    wanted = f"events from {silent_publisher} (camera a, b; type track.started; label person)"
    assert (code, out) == (EXIT_NO_EVENTS, "")
    assert err == (
        f"waiting for {wanted}, at most 0.5 s without one; Ctrl-C stops\nno {wanted} in 0.5 s\n"
    )


def test_a_publisher_that_sends_nothing_in_time_is_exit_3_with_one_line(
    silent_publisher: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["subscribe", "--endpoint", silent_publisher, "--timeout", "0.5"])
    assert (code, *capsys.readouterr()) == (
        EXIT_NO_EVENTS,
        "",
        f"no events from {silent_publisher} in 0.5 s\n",
    )


def test_nobody_publishing_at_the_endpoint_is_an_error_not_an_empty_result(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["subscribe", "--endpoint", endpoint, "--timeout", "0.3"])
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_FAILED, "")
    assert err.startswith(f"error: no publisher at {endpoint}: nothing accepted the connection")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("inproc://x", "inproc:// reaches only the process that binds it"),
        ("tcp://*:5556", "'*' (every address) is for binding"),
        ("tcp://127.0.0.1:*", "port * (any port) is for binding"),
        ("tcp://127.0.0.1:0", "port 0 (any port) is for binding"),
        ("ipc://*", "ipc://* (a name of ZeroMQ's choosing) is for binding"),
    ],
    ids=["inproc", "any-host", "any-port", "port-0", "any-ipc"],
)
def test_an_endpoint_no_other_process_can_publish_to_is_refused_at_once_in_one_line(
    endpoint: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["subscribe", "--endpoint", endpoint, "--timeout", "30"])
    out, err = capsys.readouterr()
    assert (info.value.code, out, err.count("\n")) == (EXIT_USAGE, "", 1)
    assert err.startswith(f"error: --endpoint: cannot subscribe to {endpoint!r}: {why}")


def test_an_endpoint_with_an_unpaired_bracket_is_refused_as_the_config_refuses_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = "tcp://[::1:5556"
    with pytest.raises(SystemExit) as info:
        main(["subscribe", "--endpoint", endpoint, "--timeout", "30"])
    out, err = capsys.readouterr()
    assert (info.value.code, out, err.count("\n")) == (EXIT_USAGE, "", 1)
    assert err.startswith(f"error: --endpoint: {endpoint_problem(endpoint)}")
    assert "has an unpaired bracket" in err  # the zmq sink's `endpoint` rule, word for word


class FakeResolver:
    """socket.getaddrinfo that says a name is unknown (EAI_NONAME), as the system says of a
    host not in DNS yet, its first `unknown_for` look-ups; then asks the real one (which
    looks no name up in DNS: `localhost` is the only name resolved)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, unknown_for: float) -> None:
        self.asked: list[str] = []
        self.unknown_for = unknown_for
        self.real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)
        monkeypatch.setattr(pipeline.cli.events, "NAME_RETRY_S", 0.01)

    def __call__(self, host: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(host)
        if len(self.asked) <= self.unknown_for:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, *args, **kwargs)


def test_a_host_name_that_does_not_resolve_yet_is_said_once_and_waited_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = FakeResolver(monkeypatch, unknown_for=3)  # in DNS by the fourth look-up
    port = free_port()
    sender = publish(f"tcp://127.0.0.1:{port}", frames=3)
    endpoint = f"tcp://localhost:{port}"
    code = main(["subscribe", "--endpoint", endpoint, "--count", "2", "--timeout", "30"])
    sender.join(30)
    out, err = capsys.readouterr()
    assert (code, len(out.splitlines()), resolver.asked) == (EXIT_OK, 2, ["localhost"] * 4)
    assert err == (
        f"no publisher at {endpoint} yet: its host name 'localhost' is unknown (it does not "
        "resolve); asking again every 0.01 s, for at most 30 s; Ctrl-C stops\n"
    )


def test_a_host_name_still_unknown_when_the_timeout_passes_is_an_error_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = FakeResolver(monkeypatch, unknown_for=math.inf)
    endpoint = "tcp://publisher.invalid:5556"
    code = main(["subscribe", "--endpoint", endpoint, "--timeout", "0.2"])
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_FAILED, "")
    why = "its host name 'publisher.invalid' is unknown (it does not resolve)"
    assert err == (
        f"no publisher at {endpoint} yet: {why}; asking again every 0.01 s, for at most 0.2 s; "
        f"Ctrl-C stops\nerror: no publisher at {endpoint}: {why}, still after 0.2 s\n"
    )
    assert len(resolver.asked) > 1 and set(resolver.asked) == {"publisher.invalid"}


def test_ctrl_c_while_a_host_name_is_waited_for_is_exit_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeResolver(monkeypatch, unknown_for=math.inf)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.cli.events.time, "sleep", interrupted)
    code = main(["subscribe", "--endpoint", "tcp://publisher.invalid:5556"])
    out, err = capsys.readouterr()
    assert (code, out, err.count("\n")) == (130, "", 1)
    assert "asking again every 0.01 s; Ctrl-C stops" in err  # no --timeout: no limit named


def test_the_count_reached_is_success(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    sender = publish(endpoint, frames=5)
    code = main(["subscribe", "--endpoint", endpoint, "--count", "3", "--timeout", "30"])
    sender.join(30)
    out, err = capsys.readouterr()
    assert (code, err) == (EXIT_OK, "")
    assert [line.count('"type":"detections"') for line in out.splitlines()] == [1, 1, 1]


def test_fewer_events_than_the_count_before_the_timeout_is_exit_3(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sender = publish(endpoint, frames=2)
    code = main(["subscribe", "--endpoint", endpoint, "--count", "5", "--timeout", "2"])
    sender.join(30)
    out, err = capsys.readouterr()
    assert (code, len(out.splitlines())) == (EXIT_NO_EVENTS, 2)
    assert err == f"only 2 of 5 events from {endpoint} before 2 s passed without one\n"


@pytest.mark.parametrize("server_key", ["none", "wrong"])
def test_a_publisher_that_refuses_the_handshake_is_named_with_the_way_out(
    endpoint: str,
    context: zmq.Context[zmq.Socket[bytes]],
    capsys: pytest.CaptureFixture[str],
    server_key: str,
) -> None:
    secured = context.socket(zmq.PUB)
    secured.curve_secretkey = zmq.curve_keypair()[1]
    secured.curve_server = True
    secured.bind(endpoint)
    # "--server-key=KEY": a Z85 key may start with "-", which argparse takes for an option
    keys = [] if server_key == "none" else [f"--server-key={zmq.curve_keypair()[0].decode()}"]
    code = main(["subscribe", "--endpoint", endpoint, *keys, "--timeout", "0.5"])
    secured.close(linger=0)
    out, err = capsys.readouterr()
    assert (code, out, err.count("\n")) == (EXIT_FAILED, "", 1)
    assert err.startswith(f"error: the publisher at {endpoint} refused the connection: ")
    assert ("--server-key" in err) and ("--client-key" in err) == (server_key == "wrong")


def test_subscribe_help_names_every_event_type(capsys: pytest.CaptureFixture[str]) -> None:
    from sinks.event_bus.schema import EVENT_TYPES

    with pytest.raises(SystemExit):
        main(["subscribe", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for event_type in EVENT_TYPES:
        assert event_type in help_text
