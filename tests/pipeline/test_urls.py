"""Every credential in a text is masked: URL passwords, and secret query parameters; what a
stream URL's address and a listening host must look like; whether the system knows a host
name (a resolver faked: no look-up leaves this machine)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from pipeline.urls import (
    address_problem,
    is_host_name,
    is_interface,
    listen_host_problem,
    mask_credentials,
    name_unknown,
    names_unknown,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("rtsp://cam/1?password=hunter2", "rtsp://cam/1?password=***"),
        ("rtsp://cam/1?user=admin&passwd=hunter2&ch=1", "rtsp://cam/1?user=admin&passwd=***&ch=1"),
        ("http://cam/video?PWD=hunter2", "http://cam/video?PWD=***"),
        ("https://api/x?access_token=hunter2#top", "https://api/x?access_token=***#top"),
        ("https://api/x?a=1&client_secret=hunter2", "https://api/x?a=1&client_secret=***"),
        ("https://api/x?apiKey=hunter2&b=2", "https://api/x?apiKey=***&b=2"),
        ("postgresql://u@db/x?sslpassword=hunter2", "postgresql://u@db/x?sslpassword=***"),
        (
            "s3://b/o?X-Amz-Signature=hunter2&X-Amz-Credential=hunter2",
            "s3://b/o?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        ("GET /cameras/a.mjpg?token=hunter2 HTTP/1.1", "GET /cameras/a.mjpg?token=*** HTTP/1.1"),
        ("'rtsp://cam/1?auth=hunter2'", "'rtsp://cam/1?auth=***'"),
        ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://admin:***@10.0.0.5:554/s1"),
        ("cannot open rtsps://u:p%40ss@cam/x: refused", "cannot open rtsps://u:***@cam/x: refused"),
        ("two: rtsp://a:b@h/1 and rtmp://c:d@h/2", "two: rtsp://a:***@h/1 and rtmp://c:***@h/2"),
        ("rtsp://admin:hun@ter2@cam/1", "rtsp://admin:***@cam/1"),
        ("rtsp://admin:hun/ter2@cam/1", "rtsp://admin:***@cam/1"),
        ("rtsp://admin:hun:ter2@cam/1", "rtsp://admin:***@cam/1"),
        ("rtsp://admin:@cam/1", "rtsp://admin:***@cam/1"),
        (
            "cannot open 'rtsp://admin:hunter2@cam/1': refused",
            "cannot open 'rtsp://admin:***@cam/1': refused",
        ),
    ],
)
def test_url_passwords_and_secret_query_parameters_are_masked(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "http://cam.local:8080/video?channel=1&fps=25",
        "http://cam.local:8080/video",
        "rtsp://user@cam/1",
        "no url here: a:b@c, key=value",
        "sqlite:///out/detections.db",
    ],
)
def test_text_without_credentials_is_kept(text: str) -> None:
    assert mask_credentials(text) == text


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("rtsp://[::1/stream", "its host '[::1' opens '[' without closing it"),
        ("rtsp://cam:70000/x", "its port is no number from 1 to 65535"),
        ("rtsp://cam:554x/x", "its port is no number from 1 to 65535"),
        ("http://cam:0/x", "its port is no number from 1 to 65535"),
        ("rtsp:///stream1", "it names no host"),
        ("http://", "it names no host"),
    ],
)
def test_a_stream_url_that_names_no_address_is_found(url: str, problem: str) -> None:
    assert address_problem(url) == problem


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://[::1]:8554/stream",
        "rtsp://admin:p[a:ss@cam.local/1",  # the password is no part of the address
        "rtsp://cam:/x",
        "udp://:1234",  # FFmpeg listens
        "srt://:9000?mode=listener",
        "http://cam/mjpeg?page=[1]",
    ],
)
def test_a_stream_url_with_an_address_passes(url: str) -> None:
    assert address_problem(url) is None


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "0.0.0.0",
        "::",
        "::1",
        "fe80::1%eth0",
        "127.1",
        "localhost",
        "cams.example.org.",
    ],
)
def test_an_address_or_a_host_name_is_a_host_a_server_may_listen_on(host: str) -> None:
    assert listen_host_problem(host) is None


@pytest.mark.parametrize("host", ["999.1.1.1", "1.2.3.4.5", "[::1]", "-cams", "x.1", "", "a" * 64])
def test_a_host_no_server_could_listen_on_is_named_by_its_text_alone(host: str) -> None:
    assert (problem := listen_host_problem(host)) is not None
    assert problem.startswith(f"host {host!r} is no ")


@pytest.mark.parametrize(
    ("error", "unknown"),
    [
        (socket.EAI_NONAME, True),  # no such name
        (socket.EAI_AGAIN, False),  # the resolver failed this time: the name may resolve
        (socket.EAI_FAIL, False),
        (None, False),  # it resolves
    ],
)
def test_a_host_name_is_unknown_only_where_the_system_says_there_is_no_such_name(
    monkeypatch: pytest.MonkeyPatch, error: int | None, unknown: bool
) -> None:
    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if error is not None:
            raise socket.gaierror(error, "faked")
        return []

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert name_unknown("cams.invalid") is unknown


def test_a_resolver_that_does_not_answer_in_time_leaves_the_name_unjudged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = threading.Event()

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        answer.wait(10)  # a resolver that hangs until the test is over
        raise socket.gaierror(socket.EAI_NONAME, "faked")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        assert not name_unknown("cams.invalid", timeout_s=0.05)
    finally:
        answer.set()


def test_host_names_are_asked_all_at_once_within_one_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Asked one after another, the first would wait for an answer that comes only once the
    # second is asked, and pass unjudged.
    second_asked = threading.Event()

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "first.invalid":
            second_asked.wait(10)
        else:
            second_asked.set()
        raise socket.gaierror(socket.EAI_NONAME, "faked")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    names = ["first.invalid", "second.invalid", "first.invalid"]
    assert names_unknown(names, timeout_s=10) == {"first.invalid", "second.invalid"}


@pytest.mark.parametrize(
    ("host", "name"),
    [("cams.invalid", True), ("localhost", True), ("cam-1.", True), ("127.0.0.1", False),
     ("127.1", False), ("::1", False), ("999.1.1.1", False), ("cam_1", False), ("", False),
     ("*", False)],
)  # fmt: skip
def test_only_a_host_name_is_one_a_resolver_is_asked_about(host: str, name: bool) -> None:
    assert is_host_name(host) is name


def test_a_network_interface_is_known_by_its_name() -> None:
    (first, *_) = [found for _, found in socket.if_nameindex()]
    assert is_interface(first)
    assert not is_interface("cams.invalid")
