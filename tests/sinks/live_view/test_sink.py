"""The live view on the run's server: closing the sink ends open streams (so the server
stops at once, viewers connected or not), the port is freed, a port in use is one error
naming it, and the view says where it is in a start line."""

from __future__ import annotations

import logging
import socket
import time
from fractions import Fraction

import pytest

from pipeline.types import StreamInfo
from pipeline.web.server import ServerError
from tests.sinks.live_view.conftest import (
    HEIGHT,
    WIDTH,
    ServedView,
    connect,
    moving_frame,
    read_parts,
)


@pytest.mark.parametrize("under", ["", "/live"])
def test_close_ends_open_streams_and_frees_the_port(under: str) -> None:
    view = ServedView(under=under)
    view.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    view.write(moving_frame("lobby", 0))
    conn = connect(view)
    conn.request("GET", f"{under}/cameras/lobby.mjpg")
    response = conn.getresponse()
    read_parts(response, 1)

    started = time.monotonic()
    view.close()
    assert time.monotonic() - started < 3  # not the server's stop timeout
    assert response.read() == b""  # the stream ended, cleanly
    conn.close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", view.port))


def test_closing_with_a_viewer_that_reads_nothing_does_not_wait_for_it(live: ServedView) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", live.port))
    stalled.sendall(b"GET /cameras/lobby.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    for i in range(40):  # noise frames: more than the socket buffers hold
        live.write(moving_frame("lobby", i, noise=True))
        time.sleep(0.01)
    started = time.monotonic()
    live.sink.close()
    live.server.close()
    assert time.monotonic() - started < 3
    stalled.close()


def test_port_in_use_is_one_error_naming_the_address(live: ServedView) -> None:
    held = live.port
    with pytest.raises(
        ServerError, match=rf"cannot listen on 127\.0\.0\.1:{held}.*set another `port`"
    ):
        from pipeline.config.http import HttpConfig
        from pipeline.metrics import RunMetrics
        from pipeline.web.beside_run import start_run_server

        start_run_server(HttpConfig(port=held), RunMetrics(), None, [live.sink])


def test_the_live_view_says_where_it_is_in_a_start_line_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        view = ServedView()
    try:
        assert view.sink.start_line() == f"live view: http://127.0.0.1:{view.port}/"
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    finally:
        view.close()
    beside = ServedView(under="/live")
    try:
        assert beside.sink.start_line() == f"live view: http://127.0.0.1:{beside.port}/live/"
    finally:
        beside.close()
