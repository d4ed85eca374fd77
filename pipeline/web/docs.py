"""`/docs`: the API's interactive documentation (Swagger UI), for a user of `?token=` too.

FastAPI's own page fetches the OpenAPI description and sends each "Try it out" request
without the `?token=` the page was opened with, so behind a token both fail (401). This
page's script passes the token of its own address on to every request it makes to this
server; the token is never written into the page, which is the same for every user.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
"""Where the page loads Swagger UI from (as FastAPI's own page does)."""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
<title>{title}</title>
</head><body>
<div id="swagger-ui"></div>
<script src="{js}"></script>
<script>
"use strict";
// A page opened as /docs?token=...: its requests to this server carry the token too.
const token = new URLSearchParams(location.search).get("token");
function withToken(request) {{
  const url = new URL(request.url, location.href);
  if (token && url.origin === location.origin && !url.searchParams.has("token")) {{
    url.searchParams.set("token", token);
    request.url = url.href;
  }}
  return request;
}}
SwaggerUIBundle({{
  url: {spec},
  dom_id: "#swagger-ui",
  requestInterceptor: withToken,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
}});
</script>
</body></html>
"""


def docs_route(app: FastAPI) -> Route:
    """`/docs` over `app`'s OpenAPI description; not part of that description."""

    async def docs(request: Request) -> Response:
        spec = request.scope.get("root_path", "").rstrip("/") + (app.openapi_url or "")
        # json.dumps makes a JS string; "</" escaped so that it cannot end the script
        literal = json.dumps(spec).replace("</", "<\\/")
        page = _PAGE.format(
            css=f"{SWAGGER_UI}swagger-ui.css",
            js=f"{SWAGGER_UI}swagger-ui-bundle.js",
            title=f"{app.title} - API",
            spec=literal,
        )
        return HTMLResponse(page)

    return Route("/docs", docs, methods=["GET"])
