"""A user who opens the server's pages with `?token=` can use them fully: every same-origin
URL a page names (links, pictures, streams, what its script fetches) answers 200 when
requested as the browser would; the pages of a user who sends the token as a header never
hold it, and no log line does."""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")

from pipeline.config.http import HttpConfig
from pipeline.config.server import LiveAuthConfig
from pipeline.metrics import RunMetrics
from pipeline.types import StreamInfo
from pipeline.web.beside_run import start_run_server
from pipeline.web.server import HttpServer
from sinks.live_view.sink import LiveViewSink
from tests.sinks.live_view.conftest import HEIGHT, LABELS, WIDTH, moving_frame
from tests.sinks.live_view.test_page import _chrome, _wait
from tests.sinks.live_view.test_tracks import ended

TOKEN = "a+b/c=d&e token-0123456789"  # characters a URL must escape
AUTH = "?token=" + quote(TOKEN, safe="")
PAGES = ["/", "/docs", "/live/", "/live/tracks"]


class Served:
    """A run's server with a token: the stored runs (with snapshots), the metrics, the
    live view of camera `lobby` with one ended track and its snapshot, and `/docs` with a
    stand-in for Swagger UI (`SWAGGER_STUB`)."""

    def __init__(self, db: str, snapshots: Path, swagger_ui: Path) -> None:
        metrics = RunMetrics()
        metrics.watch({}, [], {})
        config = HttpConfig(
            port=0, auth=LiveAuthConfig(token=TOKEN), api=True, metrics=True, swagger_ui=swagger_ui
        )
        self.sink = LiveViewSink(LABELS, max_fps=0, max_viewers=8, snapshot_dir=snapshots)
        self.server: HttpServer = start_run_server(config, metrics, db, [self.sink])
        self.sink.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic"))
        track = ended(snapshots, 1, whole=True)
        assert track.snapshot is not None and track.snapshot.frame_name is not None
        _, jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), 200, np.uint8))
        for name in (track.snapshot.name, track.snapshot.frame_name):  # pictures a browser shows
            (snapshots / name).write_bytes(jpeg.tobytes())
        self.sink.write(replace(moving_frame("lobby", 0), track_events=(track,)))

    def get(self, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Status and body of GET `target`; only the head of an endless stream's body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request("GET", target, headers=headers or {})
            response = conn.getresponse()
            if response.getheader("Content-Type", "").startswith("multipart/"):
                return response.status, response.read(64)
            return response.status, response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.sink.close()
        self.server.close()


@pytest.fixture
def served(stored: str, tmp_path: Path) -> Iterator[Served]:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    server = Served(stored, folder, swagger_stub(tmp_path / "swagger-ui"))
    yield server
    server.close()


def same_origin(page: str, urls: list[str]) -> list[str]:
    """The URLs among `urls` that lead to this server, each as a path and query."""
    base = "http://127.0.0.1" + page
    found = []
    for url in urls:
        parts = urlsplit(urljoin(base, url))
        if parts.netloc == "127.0.0.1" and parts.scheme == "http":
            found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


def _script(html: str) -> str:
    return "".join(re.findall(r"<script>(.*?)</script>", html, re.S))


_SET_LINK = re.compile(r'getElementById\("([\w-]+)"\)\.href = "([^"]*)" \+ auth')
"""A page's script setting a link to a target with the token."""


def named_in_html(page: str, html: str) -> list[str]:
    """What the HTML's `href` and `src` attributes name, requested as written; but for the
    links the page's script sets (`requested_by_script`)."""
    set_by_script = {name for name, _ in _SET_LINK.findall(_script(html))}
    attributes = re.findall(r'<\w+ (?:id="([\w-]+)" )?(?:href|src)="([^"]*)"', html)
    urls = [unescape(url) for name, url in attributes if name not in set_by_script]
    return same_origin(page, urls)


def requested_by_script(served: Served, page: str, html: str) -> list[str]:
    """What the page's script requests, with the token it reads from the page's address
    appended as the script appends it: the literal `fetch(...)` and `url:` targets, the
    links it sets, and the URLs it builds from what those answer (streams, snapshots, API
    operations), and the files it loads (Swagger UI's)."""
    script = _script(html)
    targets = re.findall(r'fetch\("([^"]+)"', script) + re.findall(r'url: "([^"]+)"', script)
    urls = same_origin(page, targets)
    loaded = same_origin(page, re.findall(r'withToken\("([^"]+)"\)', script))  # /docs' files
    links = same_origin(page, [target for _, target in _SET_LINK.findall(script)])
    built = []
    for url in urls:
        status, body = served.get(url + AUTH)
        assert status == 200, url
        answer = json.loads(body)
        for camera in answer.get("cameras", []):
            built.append(f"cameras/{quote(camera['id'], safe='')}.mjpg")
        for track in answer.get("tracks", []):
            built += [track[key] for key in ("snapshot_url", "frame_url") if track[key]]
        for path, operations in answer.get("paths", {}).items():
            if "get" in operations and "{" not in path:  # "Try it out" without parameters
                built.append(path)
    return [url + AUTH for url in urls + loaded + links + same_origin(page, built)]


@pytest.mark.parametrize("page", PAGES)
def test_every_url_a_page_opened_with_a_token_uses_answers_200(served: Served, page: str) -> None:
    status, body = served.get(page + AUTH)
    html = body.decode()
    assert status == 200
    urls = named_in_html(page, html) + requested_by_script(served, page, html)
    assert urls, "the page names nothing of this server"
    answers = {url: served.get(url)[0] for url in urls}
    assert {url: code for url, code in answers.items() if code != 200} == {}
    assert all(parse_qs(urlsplit(url).query) == {"token": [TOKEN]} for url in urls)
    paths = [urlsplit(url).path for url in urls]
    if page == "/":  # the stored page: the snapshots of its tracks, too
        assert any(path.endswith("/snapshot") for path in paths)
    if page == "/live/tracks":
        assert any(path.startswith("/live/snapshots/") for path in paths)


def test_the_live_view_address_without_its_slash_keeps_the_token(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=10)
    try:
        conn.request("GET", "/live" + AUTH)
        response = conn.getresponse()
        location = response.getheader("Location") or ""
    finally:
        conn.close()
    parts = urlsplit(location)
    assert response.status in (307, 308) and parts.path == "/live/"
    assert served.get(f"{parts.path}?{parts.query}")[0] == 200


@pytest.mark.parametrize("page", PAGES)
def test_pages_for_a_header_token_hold_no_token(served: Served, page: str) -> None:
    status, body = served.get(page, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert b"token-0123456789" not in body and quote(TOKEN).encode() not in body


def test_no_log_line_holds_a_token_of_a_page_or_what_it_links(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for page in PAGES:
        status, body = served.get(page + AUTH)
        assert status == 200
        for url in named_in_html(page, body.decode()):
            served.get(url)
    assert "/live/tracks" in caplog.text  # the requests were logged, the token masked
    assert "token-0123456789" not in caplog.text
    assert quote(TOKEN, safe="") not in caplog.text


SWAGGER_STUB = b"""
// Swagger UI's part in the page: take the config, load the description through its
// requestInterceptor, and keep both for the test to look at.
window.SwaggerUIBundle = function (config) {
  window.swaggerConfig = config;
  const request = config.requestInterceptor({url: config.url});
  fetch(request.url).then(r => { window.specStatus = r.status; });
};
SwaggerUIBundle.presets = {apis: {}};
SwaggerUIBundle.SwaggerUIStandalonePreset = {};
"""


def swagger_stub(folder: Path) -> Path:
    """`folder`, made, holding `SWAGGER_STUB` as Swagger UI's files."""
    folder.mkdir()
    (folder / "swagger-ui-bundle.js").write_bytes(SWAGGER_STUB)
    (folder / "swagger-ui.css").write_text("#swagger-ui { color: #123; }\n")
    return folder


def test_a_browser_on_pages_opened_with_a_token_loads_every_picture_request_and_link(
    served: Served, tmp_path: Path
) -> None:
    driver = _chrome(tmp_path)
    base = f"http://127.0.0.1:{served.server.port}"
    stop = threading.Event()

    def feed() -> None:  # a browser shows a stream's frame once the next one comes
        for index in range(1, 25 * 60):  # at most a minute
            if stop.wait(0.04):
                return
            served.sink.write(moving_frame("lobby", index))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for page, pictures in (("/", ".track img"), ("/live/", "img.feed"),
                               ("/live/tracks", ".track img")):  # fmt: skip
            driver.get(base + page + AUTH)
            _wait(
                lambda selector=pictures: driver.execute_script(
                    "const i = [...document.querySelectorAll(arguments[0])];"
                    "return i.length > 0 && i.every(p => p.naturalWidth > 0);",
                    selector,
                ),
                15,
                f"the pictures of {page} to load",
            )
            requested = driver.execute_script(
                "return performance.getEntriesByType('resource')"
                ".filter(e => e.name.startsWith(location.origin))"
                ".map(e => [e.name, e.responseStatus]);"
            )
            shown = driver.execute_script(  # a stream is shown, and still loading: status 0
                "return [...document.images].filter(i => i.naturalWidth > 0)"
                ".map(i => i.currentSrc);"
            )
            refused = [entry for entry in requested if entry[1] != 200 and entry[0] not in shown]
            assert requested and refused == [], page
            links = driver.execute_script(
                "return [...document.querySelectorAll('a[href]')].map(a => a.href)"
                ".filter(h => h.startsWith(location.origin + '/'));"
            )
            answers = {link: served.get(link.removeprefix(base))[0] for link in links}
            assert links and set(answers.values()) == {200}, answers

        driver.get(base + "/docs" + AUTH)
        assert _wait(lambda: driver.execute_script("return window.specStatus;"), 15,
                     "the OpenAPI description") == 200  # fmt: skip
        tried = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const request = swaggerConfig.requestInterceptor({url: '/api/runs?limit=1'});"
            "fetch(request.url).then(r => done(r.status));"
        )
        assert tried == 200  # "Try it out"
    finally:
        stop.set()
        driver.quit()
        feeder.join(timeout=10)
