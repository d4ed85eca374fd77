"""`/docs` for a user who sends the token in a header (`Authorization: Bearer`): Swagger
UI's files load without it, and the page's own requests to the API carry a short-lived
ticket in that header, which opens nothing else, in no other way, for no longer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from pipeline.web.app import create_app
from pipeline.web.tickets import LIFETIME_S, DocsTickets
from sinks.live_view.access import Access, Credentials
from tests.clock import Clock
from tests.pipeline.web.test_token_links import TOKEN, swagger_stub

HEADER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(stored: str, tmp_path: Path) -> Iterator[TestClient]:
    """The server over `stored` with a token and Swagger UI's files from a folder."""
    access = Access("127.0.0.1", (), Credentials(token=TOKEN))
    app = create_app(db=stored, access=access, swagger_ui=swagger_stub(tmp_path / "swagger"))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def ticket_of(page: str) -> str | None:
    """The ticket the page's script sends, None when it holds none."""
    (ticket,) = re.findall(r"const ticket = (null|\"[^\"]*\");", page)
    return None if ticket == "null" else ticket.strip('"')


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_docs_asked_for_with_a_header_token_loads_its_files_and_the_description(
    client: TestClient,
) -> None:
    page = client.get("/docs", headers=HEADER)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    ticket = ticket_of(page.text)
    assert ticket is not None and TOKEN not in page.text
    for asset in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"):
        assert client.get(asset).status_code == 200  # as the browser asks: no header
    assert client.get("/openapi.json").status_code == 401  # the description stays protected
    assert client.get("/openapi.json", headers=bearer(ticket)).json()["openapi"] >= "3.1"
    assert client.get("/api/runs", headers=bearer(ticket)).status_code == 200  # "Try it out"


def test_a_ticket_opens_nothing_forged_in_a_url_or_for_a_write(client: TestClient) -> None:
    ticket = ticket_of(client.get("/docs", headers=HEADER).text)
    assert ticket is not None
    forged = ticket[:-1] + ("0" if ticket[-1] != "0" else "1")
    assert client.get("/openapi.json", headers=bearer(forged)).status_code == 401
    assert client.get("/openapi.json", params={"token": ticket}).status_code == 401
    assert client.post("/openapi.json", headers=bearer(ticket)).status_code == 401
    assert client.get("/openapi.json", headers=bearer(ticket[:-8])).status_code == 401


def test_a_public_file_or_a_ticket_still_needs_an_allowed_host(client: TestClient) -> None:
    ticket = ticket_of(client.get("/docs", headers=HEADER).text)
    assert ticket is not None
    rebound = {"Host": "attacker.example"}
    assert client.get("/docs/swagger-ui.css", headers=rebound).status_code == 403
    assert client.get("/openapi.json", headers={**bearer(ticket), **rebound}).status_code == 403


@pytest.mark.parametrize(
    "asked", ["query-token", "ticket", "no-credentials"], ids=lambda asked: asked
)
def test_only_a_page_asked_for_with_the_token_in_a_header_holds_a_ticket(
    client: TestClient, asked: str
) -> None:
    if asked == "query-token":
        page = client.get("/docs", params={"token": TOKEN})
    elif asked == "ticket":  # a ticket does not buy another: it cannot be renewed for ever
        ticket = ticket_of(client.get("/docs", headers=HEADER).text)
        assert ticket is not None
        page = client.get("/docs", headers=bearer(ticket))
    else:
        page = client.get("/docs")
        assert page.status_code == 401
        return
    assert page.status_code == 200 and ticket_of(page.text) is None


def test_a_server_without_a_token_gives_no_ticket(stored: str) -> None:
    with TestClient(create_app(db=stored)) as open_client:
        assert ticket_of(open_client.get("/docs", headers=HEADER).text) is None


def test_a_ticket_ends_after_its_lifetime_and_another_server_refuses_it() -> None:
    clock = Clock(1_800_000_000.0)
    tickets = DocsTickets(clock)
    ticket = tickets.for_page(f"Bearer {TOKEN}")
    assert ticket is not None
    assert tickets.accepts("GET", f"Bearer {ticket}")
    clock.now += LIFETIME_S - 1
    assert tickets.accepts("HEAD", f"bearer {ticket}")
    clock.now += 1
    assert not tickets.accepts("GET", f"Bearer {ticket}")
    assert not DocsTickets(Clock(1_800_000_000.0)).accepts(
        "GET", f"Bearer {ticket}"
    )  # its key is its own


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dmlld2VyOnB3", "Bearer docs-ticket.", "Bearer docs-ticket.x.y",
     "Bearer docs-ticket." + "9" * 5000 + ".ab", "Bearer docs-ticket.-5.ab"],
)  # fmt: skip
def test_what_is_not_a_ticket_is_refused_without_an_exception(authorization: str | None) -> None:
    assert not DocsTickets().accepts("GET", authorization)


def test_a_browser_given_the_page_for_a_header_token_shows_the_api(
    stored: str, tmp_path: Path
) -> None:
    from pipeline.web import swagger_ui
    from tests.pipeline.web.test_docs import listed_operations, serve
    from tests.sinks.live_view.test_page import _chrome

    if swagger_ui.packaged_folder() is None:
        pytest.skip("fastapi-offline (in the api extra) is not installed")
    server = serve(stored, None)
    driver = _chrome(tmp_path)
    try:
        # A browser sends a header it is given with the page alone (an extension, a proxy):
        # here the page is fetched with it, then shown, as the browser would show it.
        driver.get(server.url + "docs/swagger-ui.css")  # this server's origin, no token
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/docs', {headers: {Authorization: 'Bearer ' + arguments[0]}})"
            ".then(r => r.text()).then(html => {"
            "  document.open(); document.write(html); document.close(); done(); });",
            TOKEN,
        )
        shown = listed_operations(driver)
        assert "/api/detections" in shown
    finally:
        driver.quit()
        server.close()


def test_a_ticket_whose_time_has_a_digit_past_ascii_is_refused_not_a_server_error(
    client: TestClient,
) -> None:
    """A header is read as Latin-1, where "²" (0xB2) is a digit that `int` refuses: it was a
    500 with a traceback, before any credentials."""
    forged = {"Authorization": b"Bearer docs-ticket.\xb2.ab"}
    assert client.get("/api/runs", headers=forged).status_code == 401
    assert not DocsTickets().accepts("GET", "Bearer docs-ticket.\u00b2.ab")


@pytest.mark.parametrize(
    ("credentials", "schemes"),
    [(Credentials(token=TOKEN), ["bearer", "token"]), (Credentials(password=TOKEN), ["basic"])],
    ids=["token", "password"],
)
def test_the_description_names_the_credentials_and_the_refusals_of_every_operation(
    stored: str, credentials: Credentials, schemes: list[str]
) -> None:
    access = Access("127.0.0.1", (), credentials)
    with TestClient(create_app(db=stored, access=access), base_url="http://127.0.0.1") as client:
        if credentials.token is None:
            described = client.get("/openapi.json", auth=("viewer", TOKEN))
        else:
            described = client.get("/openapi.json", headers=bearer(TOKEN))
        spec = described.json()
    assert spec["security"] == [{name: []} for name in schemes]
    assert sorted(spec["components"]["securitySchemes"]) == sorted(schemes)
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert len(operations) == 9
    assert all({"401", "403"} <= op["responses"].keys() for op in operations)
