"""The live view against hostile or many clients: a cap on streams (503 beyond it), bounds
on the time to send a request and to take what is sent, one log line for a client reset,
Host and Origin checked against the view's names, optional credentials, and no exposure
without them; on its own server and beside the metrics and the API."""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import struct
import time
from collections.abc import Iterator
from fractions import Fraction

import pytest
from pydantic import ValidationError

import pipeline.web.server
from pipeline.types import StreamInfo
from sinks.live_view.access import Credentials
from tests.sinks.live_view.conftest import (
    HEIGHT,
    WIDTH,
    ServedView,
    moving_frame,
    read_parts,
)

PASSWORD = "correct horse battery"
TOKEN = "0123456789abcdef-token"


def request(
    sink: ServedView, path: str = "/api/cameras", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    conn.request("GET", sink.prefix + path, headers=headers or {})
    return conn.getresponse()


def status(sink: ServedView, path: str = "/api/cameras", **headers: str) -> int:
    response = request(sink, path, headers)
    response.read()
    return response.status


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(params=["", "/live"], ids=["own server", "beside the API"])
def lobby(request: pytest.FixtureRequest) -> Iterator[ServedView]:
    """A view with one camera, at most two viewers."""
    sink = ServedView(max_viewers=2, under=request.param)
    sink.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    sink.write(moving_frame("lobby", 0))
    yield sink
    sink.close()


def test_streams_beyond_the_cap_get_503_and_the_others_keep_streaming(lobby: ServedView) -> None:
    streams = [request(lobby, "/cameras/lobby.mjpg") for _ in range(2)]
    for stream in streams:
        read_parts(stream, 1)
    refused = request(lobby, "/cameras/lobby.mjpg")
    assert refused.status == 503 and refused.getheader("Retry-After")
    assert b"at most 2" in refused.read()
    assert status(lobby, "/") == 200 and status(lobby, "/cameras/lobby.jpg") == 200
    lobby.write(moving_frame("lobby", 1))
    for stream in streams:
        assert read_parts(stream, 1)[0][0] == 1


def test_a_stream_that_ends_gives_its_place_back(lobby: ServedView) -> None:
    for _ in range(3):  # more streams one after the other than the cap
        stream = request(lobby, "/cameras/lobby.mjpg")
        assert stream.status == 200
        read_parts(stream, 1)
        stream.close()
        for _ in range(100):  # the server notices the client gone
            if lobby.sink._routes.viewers.open == 0:
                break
            time.sleep(0.05)
        assert lobby.sink._routes.viewers.open == 0


def test_a_viewer_that_takes_nothing_is_disconnected_and_frees_its_place(
    lobby: ServedView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline.web.server, "SEND_TIMEOUT_S", 0.5)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", lobby.port))
    stalled.sendall(
        f"GET {lobby.prefix}/cameras/lobby.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    )
    for i in range(1, 200):  # noise: far more than the socket buffers hold
        lobby.write(moving_frame("lobby", i, noise=True))
        if lobby.sink._routes.viewers.open == 0 and i > 1:
            break
        time.sleep(0.02)
    assert lobby.sink._routes.viewers.open == 0, "the stalled viewer still holds its place"
    stalled.close()
    assert status(lobby, "/cameras/lobby.jpg") == 200


def test_a_client_that_never_finishes_its_request_is_disconnected_and_frees_its_place(
    lobby: ServedView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline.web.server, "HEADER_TIMEOUT_S", 0.5)
    slow = socket.create_connection(("127.0.0.1", lobby.port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\n")
    closed = False
    for _ in range(100):  # a header line every 0.1 s, never the blank line ending them
        try:
            slow.sendall(b"X-Slow: 1\r\n")
            slow.settimeout(0.1)
            closed = slow.recv(1024) == b""
        except TimeoutError:
            continue
        except OSError:
            closed = True
        if closed:
            break
    slow.close()
    assert closed
    assert status(lobby) == 200 and status(lobby) == 200


def test_a_crowd_of_clients_connecting_at_once_is_served(live: ServedView) -> None:
    crowd = [socket.create_connection(("127.0.0.1", live.port), timeout=10) for _ in range(150)]
    try:
        for client in crowd:
            client.sendall(
                b"GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
        for client in crowd:
            assert client.recv(12) == b"HTTP/1.1 200"
    finally:
        for client in crowd:
            client.close()


def test_a_client_reset_is_logged_in_one_line_without_traceback(
    live: ServedView, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.web")
    for _ in range(3):
        client = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        client.sendall(b"GET / HT")  # half a request, then a reset (SO_LINGER 0)
        time.sleep(0.05)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    assert status(live) == 200  # served after the resets
    for _ in range(100):
        if len([r for r in caplog.records if "reset" in r.getMessage()]) >= 3:
            break
        time.sleep(0.05)
    resets = [r for r in caplog.records if "reset" in r.getMessage()]
    assert len(resets) == 3 and all(r.exc_info is None for r in resets)
    assert all("\n" not in r.getMessage() for r in resets)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Host": "evil.example.com"}, 403),
        ({"Host": "evil.example.com:8080"}, 403),
        ({"Host": "127.0.0.1.evil.example.com"}, 403),
        ({"Host": "192.168.1.5"}, 403),  # an address the view does not listen on
        ({"Host": "localhost:8080"}, 200),
        ({"Host": "LOCALHOST."}, 200),
        ({"Host": "127.0.0.1"}, 200),
        ({"Host": "[::1]:8080"}, 200),
        ({"Host": "cams.example.org:8080"}, 200),  # allowed by the config
        ({"Host": "localhost", "Origin": "http://evil.example.com"}, 403),
        ({"Host": "localhost", "Origin": "null"}, 403),
        ({"Host": "localhost", "Origin": "http://localhost:8080"}, 200),
        ({"Host": "cams.example.org", "Origin": "https://cams.example.org"}, 200),
    ],
)
@pytest.mark.parametrize("path", ["/", "/api/cameras", "/cameras/lobby.jpg"])
def test_host_and_origin_must_name_the_view(headers: dict[str, str], code: int, path: str) -> None:
    sink = ServedView(allowed_hosts=["cams.example.org"])
    sink.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    sink.write(moving_frame("lobby", 0))
    try:
        assert status(sink, path, **headers) == code
    finally:
        sink.close()


@pytest.mark.parametrize("under", ["", "/live"], ids=["own server", "beside the API"])
def test_an_origin_or_a_path_that_is_no_url_is_refused_without_a_server_error(
    under: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """`http://[::1` is no URL (an unclosed IPv6 address), and a path starting `//[` reads
    as one with such a host: each was a 500 with a traceback."""
    sink = ServedView(auth={"token": TOKEN}, under=under)
    bearer = f"Bearer {TOKEN}"
    try:
        assert status(sink, Origin="http://[::1", Authorization=bearer) == 403
        assert status(sink, "//[::1/api/cameras", Authorization=bearer) == 404
        assert status(sink, "//[::1/api/cameras") == 401
        assert status(sink, f"//[::1/api/cameras?token={TOKEN}") == 404
    finally:
        sink.close()
    assert "Traceback" not in capfd.readouterr().err


def test_listening_on_all_interfaces_allows_addresses_but_not_foreign_names() -> None:
    sink = ServedView(host="0.0.0.0", allow_unauthenticated=True)
    try:
        assert status(sink, Host="192.168.1.5:8080") == 200
        assert status(sink, Host="[fe80::1]") == 200
        assert status(sink, Host="evil.example.com") == 403
    finally:
        sink.close()


@pytest.mark.parametrize(
    "path", ["/", "/api/cameras", "/cameras/lobby.jpg", "/cameras/lobby.mjpg", "/nope"]
)
def test_basic_auth_is_required_on_every_path(path: str) -> None:
    sink = ServedView(auth={"username": "viewer", "password": PASSWORD})
    sink.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    sink.write(moving_frame("lobby", 0))
    try:
        refused = request(sink, path)
        assert refused.status == 401 and refused.getheader("WWW-Authenticate", "").startswith(
            "Basic"
        )
        for wrong in (
            basic("viewer", "wrong"),
            basic("intruder", PASSWORD),
            "Basic !!!",
            f"Bearer {PASSWORD}",
        ):
            assert status(sink, path, Authorization=wrong) == 401
        ok = request(sink, path, {"Authorization": basic("viewer", PASSWORD)})
        assert ok.status == (404 if path == "/nope" else 200)
    finally:
        sink.close()


def test_a_basic_header_past_ascii_is_refused_without_a_server_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Base64 is ASCII: `Basic é` was a 500 with a traceback."""
    sink = ServedView(auth={"username": "viewer", "password": PASSWORD})
    try:
        assert status(sink, Authorization="Basic \xe9") == 401
        assert status(sink, Authorization=basic("viewer", PASSWORD)) == 200
    finally:
        sink.close()
    assert "Traceback" not in capfd.readouterr().err


def test_token_is_accepted_as_bearer_or_query_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = ServedView(auth={"token": TOKEN})
    try:
        assert status(sink) == 401
        assert status(sink, "/api/cameras?token=wrong") == 401
        assert status(sink, Authorization=f"Bearer {TOKEN}") == 200
        assert status(sink, f"/api/cameras?token={TOKEN}") == 200
        assert status(sink, f"/?x=1&token={TOKEN}") == 200
    finally:
        sink.close()
    assert TOKEN not in caplog.text and "token=***" in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "cams.example.org"])
def test_a_view_reachable_from_other_machines_needs_credentials_or_an_explicit_yes(
    host: str,
) -> None:
    with pytest.raises(
        ValidationError, match=r"reachable from other machines.*auth.*allow_unauthenticated"
    ):
        ServedView(host=host)


def test_credentials_are_not_shown_by_repr() -> None:
    assert PASSWORD not in repr(Credentials(password=PASSWORD))
    assert TOKEN not in repr(Credentials(token=TOKEN))
    with pytest.raises(ValueError, match="exactly one of password and token"):
        Credentials(password=PASSWORD, token=TOKEN)


def test_beside_the_api_the_view_and_the_metrics_ask_for_the_same_token() -> None:
    sink = ServedView(under="/live", auth={"token": TOKEN}, allowed_hosts=["cams.example.org"])
    sink.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    sink.write(moving_frame("lobby", 0))
    try:
        for path in ("/", "/api/cameras", "/cameras/lobby.jpg", "/cameras/lobby.mjpg"):
            assert status(sink, path) == 401
            assert (
                status(sink, path, Host="evil.example.com", Authorization=f"Bearer {TOKEN}") == 403
            )
        assert status(sink, f"/cameras/lobby.jpg?token={TOKEN}") == 200
        stream = request(sink, "/cameras/lobby.mjpg", {"Authorization": f"Bearer {TOKEN}"})
        assert read_parts(stream, 1)[0][0] == 0
        stream.close()
        sink.prefix = ""  # the server's own URLs
        assert status(sink, "/metrics") == 401
        assert status(sink, f"/metrics?token={TOKEN}", Host="cams.example.org") == 200
    finally:
        sink.close()
