"""`validate` and `run` name a host name the run binds or must reach that does not resolve,
at its YAML line, before the detector is prepared."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import EXIT_USAGE, main
from pipeline.config import ConfigError, parse_config
from tests.conftest import VideoFactory


@pytest.fixture
def video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_video: VideoFactory) -> str:
    monkeypatch.chdir(tmp_path)
    synthetic_video("clip.mp4", frames=1, size=(16, 16))  # `validate` decodes its frame
    return "clip.mp4"


@pytest.fixture
def unknown_invalid_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A resolver that knows no name under .invalid (RFC 6761), without asking any server;
    the names asked."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


UNKNOWN_HOST = (
    "host name 'cams.invalid' is unknown (it does not resolve): the HTTP server could not "
    "listen on it; give an address of this machine, or a name that resolves to one"
)


def _problems_when_asked(video: str, sections: str, asked: list[str]) -> list[str]:
    """The problems of a config of one camera and `sections` when its host names are looked
    up (`validate`, `run`), after checking that parsing alone asks no resolver (`asked`: the
    names the patched resolver was asked) and that the look-up asks of cams.invalid."""
    text = f"cameras:\n  - id: a\n    source: {video}\n{sections}"
    parse_config(text)
    assert asked == []
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="cams.yaml", resolve_hosts=True)
    assert asked == ["cams.invalid"]
    return info.value.problems


@pytest.mark.parametrize(
    ("sections", "where"),
    [
        ("http:\n  host: cams.invalid\n  allow_unauthenticated: true\n", "http.host (line 5)"),
        (
            "sinks:\n  - type: live\n    host: cams.invalid\n    allow_unauthenticated: true\n",
            "sinks[0].host (line 6)",
        ),
        (
            "sinks:\n  - type: live\nhttp:\n  host: cams.invalid\n  allow_unauthenticated: true\n",
            "http.host (line 7)",
        ),
    ],
    ids=["http", "live", "live-on-http"],
)
def test_a_server_host_name_that_does_not_resolve_is_named_at_its_yaml_line_when_asked(
    video: str, unknown_invalid_names: list[str], sections: str, where: str
) -> None:
    problems = _problems_when_asked(video, sections, unknown_invalid_names)
    assert problems == [f"{where}: {UNKNOWN_HOST}"]


def test_validate_names_a_server_host_name_that_does_not_resolve_in_one_line(
    video: str, tmp_path: Path, unknown_invalid_names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: a\n    source: {video}\nhttp:\n  host: cams.invalid\n"
        "  allow_unauthenticated: true\n"
    )
    assert main(["validate", str(config)]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {config}: http.host (line 5): {UNKNOWN_HOST}\n")


ZMQ_WHY = (
    "host name 'cams.invalid' is unknown (it does not resolve), and no network interface "
    "here has that name: the zmq sink could not bind it; give an address of this machine, a "
    "name that resolves to one, an interface's name (e.g. eth0) or * (every address)"
)
MQTT_WHY = (
    "host name 'cams.invalid' is unknown (it does not resolve): the mqtt sink could not reach "
    "the broker, and the run would stop as it starts; give the broker's address, or a name "
    "that resolves to it"
)
SINKS = {
    "zmq": ("  - type: zmq\n    endpoint: tcp://cams.invalid:5556\n", "endpoint", ZMQ_WHY),
    "mqtt": ("  - type: mqtt\n    url: mqtt://cams.invalid:1883\n", "url", MQTT_WHY),
}


@pytest.mark.parametrize("kind", list(SINKS))
def test_a_sink_host_name_that_does_not_resolve_is_named_at_its_yaml_line_when_asked(
    video: str, unknown_invalid_names: list[str], kind: str
) -> None:
    # A zmq sink binds its endpoint, failing with ZeroMQ's "No such device", no line; an
    # mqtt sink stops the run as it starts: "cannot reach the broker at ...".
    sink, field, why = SINKS[kind]
    problems = _problems_when_asked(video, f"sinks:\n{sink}", unknown_invalid_names)
    assert problems == [f"sinks[0].{field} (line 6): {why}"]


def test_only_host_names_are_asked_and_one_that_resolves_passes(
    video: str, unknown_invalid_names: list[str]
) -> None:
    # "lo" is an interface's name, which ZeroMQ binds without asking a resolver.
    endpoints = ["tcp://lo:5556", "tcp://*:5557", "tcp://127.0.0.1:5558", "tcp://[::1]:5559",
                 "ipc:///tmp/events", "tcp://localhost:5560"]  # fmt: skip
    sinks = "".join(f"  - {{type: zmq, endpoint: '{e}'}}\n" for e in endpoints)
    sinks += "  - {type: mqtt, url: 'mqtt://127.0.0.1:1883'}\n"
    text = f"cameras:\n  - id: a\n    source: {video}\nsinks:\n{sinks}"
    parse_config(text, resolve_hosts=True)
    assert unknown_invalid_names == ["localhost"]


RUN_CASES = {
    "http": "http:\n  host: cams.invalid\n  allow_unauthenticated: true\n",
    "zmq": f"sinks:\n{SINKS['zmq'][0]}",
    "mqtt": f"sinks:\n{SINKS['mqtt'][0]}",
}


@pytest.mark.parametrize("kind", list(RUN_CASES))
def test_run_refuses_a_host_name_that_does_not_resolve_with_validates_line_before_the_detector(
    video: str, tmp_path: Path, unknown_invalid_names: list[str],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:  # fmt: skip
    # It found the server's only as it bound the port (`error: http: cannot listen on
    # cams.invalid:9464: Name or service not known`, exit 1, no line), the zmq sink's as it
    # bound, after the detector was prepared.
    def prepares(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run went on to prepare the detector")

    monkeypatch.setattr("pipeline.runner.build_run_detector", prepares)
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras:\n  - id: a\n    source: {video}\n{RUN_CASES[kind]}")
    assert main(["validate", str(config)]) == EXIT_USAGE
    validated = capsys.readouterr()
    assert main(["run", "--no-progress", str(config)]) == EXIT_USAGE
    ran = capsys.readouterr()
    assert ran == validated and ran.out == ""
    assert ran.err.startswith(f"error: {config}: ") and ran.err.count("\n") == 1
    assert "host name 'cams.invalid' is unknown (it does not resolve)" in ran.err
