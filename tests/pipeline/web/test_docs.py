"""`/docs` without internet: Swagger UI's files sent by the server from a folder (the one
configured, else the copy the `api` extra installs), and a page that says what to do
instead of staying blank when they cannot be loaded."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from pipeline.cli import main
from pipeline.config import ConfigError, parse_config
from pipeline.config.http import HttpConfig
from pipeline.config.server import LiveAuthConfig
from pipeline.metrics import RunMetrics
from pipeline.web import swagger_ui
from pipeline.web.app import create_app
from pipeline.web.beside_run import start_run_server
from pipeline.web.server import HttpServer
from tests.pipeline.web.test_token_links import AUTH, TOKEN, swagger_stub
from tests.sinks.live_view.test_page import _chrome, _wait


@pytest.fixture
def no_copy(monkeypatch: pytest.MonkeyPatch) -> str:
    """No Swagger UI on this machine, and a CDN that cannot be reached (a closed port of
    127.0.0.1): the CDN's base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/swagger-ui-dist/"
    monkeypatch.setattr(swagger_ui, "packaged_folder", lambda: None)
    monkeypatch.setattr(swagger_ui, "CDN", closed)
    return closed


def serve(stored: str, folder: Path | None) -> HttpServer:
    """A run's server over `stored` with a token, Swagger UI from `folder`."""
    metrics = RunMetrics()
    metrics.watch({}, [], {})
    config = HttpConfig(port=0, auth=LiveAuthConfig(token=TOKEN), swagger_ui=folder)
    return start_run_server(config, metrics, stored)


@pytest.fixture
def offline_server(stored: str, no_copy: str) -> Iterator[HttpServer]:
    server = serve(stored, None)
    yield server
    server.close()


def test_docs_loads_swagger_ui_from_the_configured_folder_with_the_token(
    stored: str, tmp_path: Path
) -> None:
    folder = swagger_stub(tmp_path / "swagger-ui")
    with TestClient(create_app(db=stored, swagger_ui=folder)) as client:
        page = client.get("/docs").text
        assert "cdn.jsdelivr.net" not in page
        assert 'withToken("/docs/swagger-ui-bundle.js")' in page
        assert 'withToken("/docs/swagger-ui.css")' in page
        script = client.get("/docs/swagger-ui-bundle.js")
        assert script.content == (folder / "swagger-ui-bundle.js").read_bytes()
        assert script.headers["content-type"].startswith("text/javascript")
        assert client.get("/docs/swagger-ui.css").headers["content-type"].startswith("text/css")
        (folder / "swagger-ui.css").unlink()  # moved away while the server runs
        assert client.get("/docs/swagger-ui.css").status_code == 404


def test_without_a_folder_docs_loads_swagger_ui_from_its_cdn_and_sends_no_files(
    stored: str, no_copy: str
) -> None:
    with TestClient(create_app(db=stored)) as client:
        page = client.get("/docs").text
        assert f'withToken("{no_copy}swagger-ui-bundle.js")' in page
        assert client.get("/docs/swagger-ui-bundle.js").status_code == 404


def test_the_packaged_copy_is_swagger_ui_5_or_later() -> None:
    folder = swagger_ui.packaged_folder()
    if folder is None:
        pytest.skip("fastapi-offline (in the api extra) is not installed")
    bundle = (folder / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    major = re.findall(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', bundle)
    assert len(major) == 1 and int(major[0]) >= 5  # 4 cannot show OpenAPI 3.1


@pytest.mark.parametrize("missing", ["swagger-ui.css", "swagger-ui-bundle.js"])
def test_a_swagger_ui_folder_without_its_files_is_refused_at_its_yaml_path(
    tmp_path: Path, missing: str
) -> None:
    folder = swagger_stub(tmp_path / "swagger-ui")
    (folder / missing).unlink()
    with pytest.raises(ConfigError) as refused:
        parse_config(
            f"cameras: [{{id: cam, source: clip.mp4}}]\nhttp:\n  swagger_ui: {folder}\n",
            check_sources=False,
        )
    message = str(refused.value)
    assert "http.swagger_ui" in message and missing in message and "\n" not in message


def test_serve_refuses_a_swagger_ui_folder_that_is_not_there(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--db", stored, "--port", "0", "--swagger-ui", str(tmp_path / "none")])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "--swagger-ui" in error and "is not a folder" in error


def test_a_browser_that_cannot_load_swagger_ui_is_told_what_to_do_and_where_the_spec_is(
    offline_server: HttpServer, tmp_path: Path
) -> None:
    driver = _chrome(tmp_path)
    try:
        driver.get(offline_server.url + "docs" + AUTH)
        _wait(
            lambda: driver.execute_script("return !document.getElementById('unavailable').hidden;"),
            15,
            "the page to say that Swagger UI cannot be loaded",
        )
        said = driver.find_element("id", "unavailable").text
        assert "could not be loaded" in said and "swagger_ui: FOLDER" in said
        assert not driver.find_element("id", "swagger-ui").is_displayed()
        spec = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(document.getElementById('spec-link').href)"
            ".then(r => r.json()).then(j => done(j.openapi));"
        )
        assert spec.startswith("3.")  # the link works, token and all
    finally:
        driver.quit()


def test_a_browser_without_internet_shows_the_api_with_the_packaged_swagger_ui(
    stored: str, tmp_path: Path, no_copy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the packaged copy, and the real CDN (which this test never needs)
    folder = swagger_ui.packaged_folder()
    if folder is None:
        pytest.skip("fastapi-offline (in the api extra) is not installed")
    server = serve(stored, None)
    driver = _chrome(tmp_path)
    try:
        driver.get(server.url + "docs" + AUTH)
        shown = listed_operations(driver)
        assert "/api/detections" in shown and "/api/counts/lines" in shown
        assert driver.find_element("id", "unavailable").is_displayed() is False
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);"
        )
        assert all(url.startswith(server.url) for url in loaded), loaded  # nothing from outside
    finally:
        driver.quit()
        server.close()


def listed_operations(driver: Any) -> list[str]:
    """The paths Swagger UI lists on the page `driver` shows, once it lists any (30 s)."""
    shown: list[str] = _wait(
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('.opblock-summary-path')]"
            ".map(e => e.getAttribute('data-path'));"
        ),
        30,
        "Swagger UI to list the operations",
    )
    return shown
