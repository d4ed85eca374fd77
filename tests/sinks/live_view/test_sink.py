"""LiveViewSink's close ends open streams and frees the port; a port in use is a SinkError."""

from __future__ import annotations

import http.client
import logging
from fractions import Fraction

import pytest

from pipeline.types import StreamInfo
from sinks.base import SinkError
from sinks.live_view.sink import LiveViewSink
from tests.sinks.live_view.conftest import (
    HEIGHT,
    LABELS,
    WIDTH,
    moving_frame,
    read_parts,
)


def test_close_ends_open_streams_and_frees_the_port(live: LiveViewSink) -> None:
    live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
    live.write(moving_frame("lobby", 0))
    port = int(live.url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/cameras/lobby.mjpg")
    response = conn.getresponse()
    read_parts(response, 1)

    live.close()
    assert response.fp.read() == b""  # the server ended the stream
    conn.close()
    again = LiveViewSink(LABELS, port=port)
    again.close()


def test_port_in_use_raises_sink_error_naming_the_address(live: LiveViewSink) -> None:
    port = int(live.url.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(SinkError, match=rf"cannot listen on 127\.0\.0\.1:{port}.*set another `port`"):
        LiveViewSink(LABELS, port=port)


def test_the_live_view_says_where_it_is_in_a_start_line_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        sink = LiveViewSink(LABELS, port=0)
    try:
        assert sink.start_line() == f"live view: {sink.url}"
        assert sink.url.startswith("http://127.0.0.1:")
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    finally:
        sink.close()
