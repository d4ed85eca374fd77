"""`/docs`: the API's interactive documentation (Swagger UI), for a user of `?token=` or
of `Authorization: Bearer` too, and without internet when the server has Swagger UI's files
(`swagger_ui.served_folder`).

FastAPI's own page fetches the OpenAPI description and sends each "Try it out" request
without the `?token=` the page was opened with, so behind a token both fail (401). This
page's script passes the token of its own address on to every request it makes to this
server (Swagger UI's own files included); the token is never written into the page. A page
asked for with the token in a header gets a short-lived ticket instead (`tickets`), which
its script sends in the header of its requests to the API. Swagger UI's files are served
without credentials (`ASSET_PATHS`): a browser loads them without the page's header, and
they are swagger-ui-dist's public files, the same on every server, telling nothing of this
one; the OpenAPI description and the API stay behind the token. When Swagger UI cannot be
loaded (no internet for its CDN), the page says so, and where the OpenAPI description is,
instead of staying blank.
"""

from __future__ import annotations

import json
import logging
from html import escape
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from pipeline.web import swagger_ui
from pipeline.web.tickets import DocsTickets

log = logging.getLogger(__name__)

ASSETS = "/docs/"
"""Where the server sends Swagger UI's files from its folder."""
ASSET_PATHS = frozenset(ASSETS + name for name in swagger_ui.FILES)
"""The paths of Swagger UI's files, served without credentials (see the module's doc)."""
LOAD_TIMEOUT_MS = 15_000
"""How long the page waits for Swagger UI before it says that it cannot load it (the message
goes when it loads later)."""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>#unavailable {{ font: 16px/1.5 sans-serif; max-width: 46em; margin: 2em auto; }}</style>
</head><body>
<div id="swagger-ui"><p>Loading Swagger UI from {where}...</p></div>
<div id="unavailable" hidden>
<h1>{title}</h1>
<p>Swagger UI, which shows this page, could not be loaded from {where}{why}.</p>
<p>The API's description is here all the same: <a id="spec-link">{spec_path}</a> (OpenAPI
3.1, JSON), and docs/api.md lists the endpoints.</p>
<p>{fix}</p>
</div>
<noscript>This page needs JavaScript; the API's description is at {spec_path}.</noscript>
<script>
"use strict";
// A page opened as /docs?token=...: its requests to this server carry the token too.
const token = new URLSearchParams(location.search).get("token");
function withToken(target) {{
  const url = new URL(target, location.href);
  if (token && url.origin === location.origin && !url.searchParams.has("token")) {{
    url.searchParams.set("token", token);
  }}
  return url.href;
}}
// A page asked for with "Authorization: Bearer": a short-lived ticket, sent in that header
// (never in a URL) by Swagger UI's requests to this server.
const ticket = {ticket};
function withTicket(request) {{
  if (ticket && new URL(request.url, location.href).origin === location.origin) {{
    request.headers = {{ ...request.headers, Authorization: "Bearer " + ticket }};
  }}
  return request;
}}
document.getElementById("spec-link").href = withToken({spec});
function show(loaded) {{
  document.getElementById("swagger-ui").hidden = !loaded;
  document.getElementById("unavailable").hidden = loaded;
}}
const late = setTimeout(() => show(false), {timeout});
const style = document.createElement("link");
style.rel = "stylesheet";
style.href = withToken({css});
document.head.append(style);
const bundle = document.createElement("script");
bundle.src = withToken({js});
bundle.onerror = () => {{ clearTimeout(late); show(false); }};
bundle.onload = () => {{
  clearTimeout(late);
  show(true);
  SwaggerUIBundle({{
    url: {spec},
    dom_id: "#swagger-ui",
    requestInterceptor: (request) => {{
      request.url = withToken(request.url);
      return withTicket(request);
    }},
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    deepLinking: true,
  }});
}};
document.body.append(bundle);
</script>
</body></html>
"""

_FROM_CDN = (
    ": this browser cannot reach it (a network without internet?)",
    "To have this page without internet, give the server Swagger UI's files: install it "
    "with <code>pip install 'ssd-pipeline[api]'</code>, which brings a copy, or name a "
    "folder holding swagger-ui-dist's <code>swagger-ui-bundle.js</code> and "
    "<code>swagger-ui.css</code> (version 5 or later) in the config's <code>http:</code> "
    "section as <code>swagger_ui: FOLDER</code>, or to <code>serve --swagger-ui FOLDER</code>.",
)
_FROM_SERVER = (
    " (this server)",
    "The server could not send its copy of Swagger UI: its log says why (its folder moved "
    "or emptied since it started?).",
)


def _js(text: str) -> str:
    """`text` as a JavaScript string in a page's script ("</" escaped: it cannot end it)."""
    return json.dumps(text).replace("</", "<\\/")


def _js_or_null(text: str | None) -> str:
    return "null" if text is None else _js(text)


def docs_routes(app: FastAPI, folder: Path | None, tickets: DocsTickets | None) -> list[Route]:
    """`/docs` over `app`'s OpenAPI description (not part of it), with Swagger UI's files
    from `folder` (sent at `ASSETS`), or from `swagger_ui.CDN` when None; a page asked for
    with a bearer token holds a ticket of `tickets` (when given: the server has a token)."""

    async def docs(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        spec = root + (app.openapi_url or "")
        base = root + ASSETS if folder is not None else swagger_ui.CDN
        why, fix = _FROM_SERVER if folder is not None else _FROM_CDN
        js, css = (base + name for name in swagger_ui.FILES)
        page = _PAGE.format(
            title=escape(f"{app.title} - API"),
            where=escape(swagger_ui.CDN if folder is None else root + ASSETS),
            why=why,
            fix=fix,
            spec_path=escape(spec),
            spec=_js(spec),
            js=_js(js),
            css=_js(css),
            timeout=LOAD_TIMEOUT_MS,
            ticket=_js_or_null(
                tickets.for_page(request.headers.get("Authorization")) if tickets else None
            ),
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})  # it may hold a ticket

    routes = [Route("/docs", docs, methods=["GET"])]
    if folder is not None:
        routes += [_asset(folder, name) for name in swagger_ui.FILES]
    return routes


def _asset(folder: Path, name: str) -> Route:
    """`ASSETS`/`name`: the file `name` of `folder`; 404 once it is gone."""

    async def send(request: Request) -> Response:
        path = folder / name
        if not path.is_file():
            log.warning("http server: /docs: %s is gone; Swagger UI cannot be sent", path)
            return PlainTextResponse(f"{name} is gone from the server's Swagger UI folder\n", 404)
        return FileResponse(path)

    return Route(ASSETS + name, send, methods=["GET"])
