"""What the server's `/` links to, and what it answers where no page over stored data is
there: a redirect to the one sink view it serves (the live view), else a short index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

_NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Link:
    """A path the server answers, its short `title` and what a user finds there."""

    path: str
    title: str
    about: str


def served_links(*, mounts: Sequence[str], status: bool, metrics: bool) -> tuple[Link, ...]:
    """What a server answers besides the stored data: the views mounted at `mounts` (their
    paths, such as "/live"), the API's documentation, /api/status with `status`, /metrics
    with `metrics`, and /healthz."""
    links = [
        Link(f"{m}/", f"{m.strip('/')} view", f"the pages of the run's `{m.strip('/')}` sink")
        for m in mounts
    ]
    links.append(
        Link("/docs", "API", "the API's interactive documentation (OpenAPI: /openapi.json)")
    )
    if status:
        links.append(Link("/api/status", "status", "the running cameras and sinks, as JSON"))
    if metrics:
        links.append(Link("/metrics", "metrics", "the run's Prometheus metrics"))
    links.append(Link("/healthz", "health", "200 while no camera nor sink has failed, else 503"))
    return tuple(links)


def with_token(path: str, request: Request) -> str:
    """`path` with the request's `?token=` passed on, so that a link followed still carries
    the credentials the request came with (a header is sent again by the client itself)."""
    token = request.query_params.get("token")
    return path if token is None else f"{path}?{urlencode({'token': token})}"


def link_line(links: Sequence[Link], request: Request) -> str:
    """The links as one line of HTML, by title (the foot of a page)."""
    return " · ".join(
        f'<a href="{escape(with_token(link.path, request))}">{escape(link.title)}</a>'
        for link in links
    )


def root_route(links: Sequence[Link], views: Sequence[str]) -> Route:
    """`/`: a redirect to the view when `views` (the mounted paths) is just one, else the
    index of `links`."""
    if len(views) == 1:
        target = f"{views[0]}/"

        async def redirect(request: Request) -> Response:
            return RedirectResponse(with_token(target, request), 307, _NO_STORE)

        return Route("/", redirect)

    async def index(request: Request) -> Response:
        return HTMLResponse(render_index(links, request), headers=_NO_STORE)

    return Route("/", index)


def render_index(links: Sequence[Link], request: Request) -> str:
    """A short page listing `links`, each by its path."""
    items = "".join(
        f'<li><a href="{escape(with_token(link.path, request))}">{escape(link.path)}</a>: '
        f"{escape(link.about)}</li>"
        for link in links
    )
    # an empty icon: else the browser asks for /favicon.ico, without the page's token (401)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>ssd-pipeline</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}li{{margin:.3em 0}}</style>
</head><body>
<h1>ssd-pipeline</h1>
<p>This server answers:</p>
<ul>{items}</ul>
</body></html>"""
