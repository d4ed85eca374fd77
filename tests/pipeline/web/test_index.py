"""What the server's `/` answers in each placement: the page over stored data with an sql
sink, the live view (redirected to) without one, an index of what is served without
either, the live view's own page on its own port; always behind the same credentials, and
never part of the OpenAPI description."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

pytest.importorskip("fastapi")

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.metrics import RunMetrics
from pipeline.web.app import create_app
from sinks.live_view.access import Access, Credentials

TOKEN = "s3cret-token-0123456789"


async def _view_page(request: Request) -> Response:
    return PlainTextResponse("the view's own page")


VIEW: Sequence[BaseRoute] = [Route("/", _view_page)]


def beside_run(
    *,
    db: str | None = None,
    mounts: Sequence[tuple[str, Sequence[BaseRoute]]] = (),
    api: bool = True,
    metrics: bool = True,
    token: str | None = None,
) -> FastAPI:
    """The app as a run serves it (`pipeline.web.beside_run`), with `http:`'s `api` and
    `metrics`."""
    run = RunMetrics()
    run.watch({}, [], {})
    credentials = Credentials(token=token) if token is not None else None
    return create_app(
        db=db,
        metrics=run,
        serve_metrics=metrics,
        serve_status=api,
        access=Access("127.0.0.1", (), credentials),
        mounts=mounts,
    )


def links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', page)


def test_without_an_sql_sink_the_root_redirects_to_the_live_view() -> None:
    with TestClient(beside_run(mounts=[("/live", VIEW)]), base_url="http://127.0.0.1") as client:
        moved = client.get("/", follow_redirects=False)
        assert moved.status_code == 307
        assert moved.headers["location"] == "/live/"
        followed = client.get("/")
        assert followed.status_code == 200 and followed.text == "the view's own page"


def test_without_an_sql_sink_nor_a_live_view_the_root_lists_what_is_served_and_each_answers() -> (
    None
):
    with TestClient(beside_run(), base_url="http://127.0.0.1") as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        served = links(index.text)
        assert served == ["/docs", "/api/status", "/metrics", "/healthz"]
        for path in served:
            assert client.get(path).status_code == 200, path


def test_the_index_lists_only_what_the_http_section_turns_on() -> None:
    with TestClient(beside_run(api=False, metrics=False), base_url="http://127.0.0.1") as client:
        served = links(client.get("/").text)
        assert served == ["/docs", "/healthz"]
        assert client.get("/metrics").status_code == client.get("/api/status").status_code == 404


def test_with_an_sql_sink_the_root_is_the_stored_page_and_links_the_live_view(stored: str) -> None:
    app = beside_run(db=stored, mounts=[("/live", VIEW)])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 200 and "Runs (" in page.text
        foot = [p for p in links(page.text) if not p.startswith("/api/tracks/")]
        assert foot == ["/live/", "/docs", "/api/status", "/metrics", "/healthz"]
        assert client.get("/live/").text == "the view's own page"


def test_serve_links_its_api_and_health_only(stored: str) -> None:
    with TestClient(create_app(db=stored)) as client:
        foot = [p for p in links(client.get("/").text) if not p.startswith("/api/tracks/")]
        assert foot == ["/docs", "/healthz"]


def test_on_the_live_sinks_own_port_the_root_is_the_live_page() -> None:
    app = create_app(metrics=RunMetrics(), serve_metrics=False, serve_status=False,
                     mounts=[("", VIEW)])  # fmt: skip
    with TestClient(app) as client:
        assert client.get("/").text == "the view's own page"


@pytest.mark.parametrize("live", [True, False], ids=["redirect", "index"])
def test_the_root_asks_for_the_credentials_and_passes_a_token_on(live: bool) -> None:
    app = beside_run(mounts=[("/live", VIEW)] if live else (), token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        refused = client.get("/", follow_redirects=False)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith(
            "Bearer"
        )
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 403
        answer = client.get("/", params={"token": TOKEN}, follow_redirects=False)
        if live:
            assert answer.status_code == 307
            assert answer.headers["location"] == f"/live/?token={TOKEN}"
            targets = [answer.headers["location"]]
        else:
            assert answer.status_code == 200
            targets = [t.replace("&amp;", "&") for t in links(answer.text)]
            assert targets and all(t.endswith(f"?token={TOKEN}") for t in targets)
        for target in targets:  # followed with no header, the token in the link is enough
            assert client.get(target).status_code == 200, target


def test_the_root_is_no_part_of_the_openapi_description_in_any_placement(stored: str) -> None:
    redirecting, index = beside_run(mounts=[("/live", VIEW)]), beside_run()
    page, plain = beside_run(db=stored), beside_run(api=False, metrics=False)
    for app in (redirecting, index, page, plain):
        assert "/" not in app.openapi()["paths"] and "/healthz" in app.openapi()["paths"]
    assert redirecting.openapi() == index.openapi()
