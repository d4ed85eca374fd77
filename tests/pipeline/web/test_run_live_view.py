"""A run serves its live view on its one HTTP server: under /live/ beside /metrics and the
API with an `http:` section, at the root of the live sink's own port without one; and when
the run stops, open streams end and the run returns at once."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest

from pipeline.config import parse_config
from pipeline.runner import Pipeline
from tests.conftest import free_port, write_video
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.live_view.conftest import read_parts


def _get(port: int, path: str) -> tuple[int, bytes]:
    status, body, _ = _answer(port, path)
    return status, body


def _answer(port: int, path: str) -> tuple[int, bytes, str | None]:
    """Status, body and Location of a GET (redirects not followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Location")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("http_section", "view"),
    [(True, "/live/"), (False, "/")],
    ids=["beside the metrics", "on the live sink's own port"],
)
def test_a_run_serves_its_live_view_on_one_server_and_ends_its_streams_when_it_stops(
    tmp_path: Path, http_section: bool, view: str
) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(96, 64))
    port = free_port()
    sinks = "  - type: live\n    max_fps: 0\n" + ("" if http_section else f"    port: {port}\n")
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {{type: file, path: {clip}, loop: true, realtime: true}}\n"
        f"sinks:\n{sinks}" + (f"http:\n  port: {port}\n" if http_section else "")
    )
    pipeline = Pipeline(config, detector=EagerDetector())
    said: list[str] = []
    seen: dict[str, object] = {}

    def watch() -> None:
        try:
            deadline = time.monotonic() + 30
            while not any(line.startswith("live view:") for line in said):
                assert time.monotonic() < deadline, said
                time.sleep(0.05)
            while b'"id": "cam"' not in _get(port, f"{view}api/cameras")[1]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            seen["metrics"] = _get(port, "/metrics")[0]
            seen["root"] = _answer(port, "/")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"{view}cameras/cam.mjpg")
            response = conn.getresponse()
            seen["parts"] = len(read_parts(response, 2))
            stopped = time.monotonic()
            pipeline.stop.set()
            seen["rest"] = response.read()  # returns once the server ends the stream
            seen["ended_after_s"] = time.monotonic() - stopped
            conn.close()
        finally:
            pipeline.stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    summary = pipeline.run(on_start=said.append)
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert f"live view: http://127.0.0.1:{port}{view}" in said
    assert seen["parts"] == 2 and seen["rest"] == b""
    ended_after_s = seen["ended_after_s"]
    assert isinstance(ended_after_s, float) and ended_after_s < 5
    assert seen["metrics"] == (200 if http_section else 404)
    root = seen["root"]
    assert isinstance(root, tuple)
    status, page, moved_to = root
    if http_section:  # no sql sink: `/` leads to the live view
        assert (status, moved_to) == (307, "/live/")
    else:
        assert status == 200 and b"<html" in page.lower()
    assert summary.cameras["cam"].frames > 0 and time.monotonic() - started < 60
    with pytest.raises(ConnectionError):  # the one server is gone with the run
        _get(port, view)
