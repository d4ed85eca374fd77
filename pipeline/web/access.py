"""Every request to the run's server passes `Access` (Host, Origin, credentials) first."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.urls import mask_credentials
from pipeline.web.tickets import DocsTickets
from sinks.live_view.access import Access

log = logging.getLogger(__name__)


class AccessMiddleware:
    """Answers what `access` refuses (403, 401) itself; passes the rest on to `app`.

    Where `access` asks for credentials, two more requests pass (the Host and Origin checks
    still apply to them): those for the `public` paths, and those with a valid ticket of
    `tickets`. Plain ASGI, so streamed responses pass through untouched. Each request is
    logged at debug level, a `?token=` in it masked."""

    def __init__(
        self,
        app: ASGIApp,
        access: Access,
        public: frozenset[str] = frozenset(),
        tickets: DocsTickets | None = None,
    ) -> None:
        self.app = app
        self.access = access
        self.public = public
        self.tickets = tickets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        headers = Headers(scope=scope)
        refusal = self.access.check(headers, target)
        log.debug("http server: %s %s", scope["method"], mask_credentials(target))
        if refusal is not None and refusal.status == HTTPStatus.UNAUTHORIZED:
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            if path in self.public or (
                self.tickets is not None
                and self.tickets.accepts(scope["method"], headers.get("Authorization"))
            ):
                refusal = None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            f"{refusal.reason}\n",
            status_code=int(refusal.status),
            headers={**refusal.headers, "Cache-Control": "no-store"},
        )
        await response(scope, receive, send)


_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "The server's token."},
    "token": {"type": "apiKey", "in": "query", "name": "token", "description": "The same."},
    "basic": {"type": "http", "scheme": "basic", "description": "The user and password."},
}


def describe_access(app: FastAPI, access: Access) -> None:
    """`app`'s OpenAPI description says what `AccessMiddleware` answers before any route:
    403 to a Host or Origin `access` does not allow; with credentials, 401 without them,
    and how they are sent (the security schemes)."""
    describe = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = describe()  # FastAPI keeps it as `app.openapi_schema`: changed in place
        refusals = {"403": {"description": "The Host or Origin names no allowed host."}}
        credentials = access.credentials
        if credentials is not None:
            refusals["401"] = {"description": "No credentials, or wrong ones."}
            names = ["basic"] if credentials.token is None else ["bearer", "token"]
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {name: _SCHEMES[name] for name in names}
            schema["security"] = [{name: []} for name in names]  # either one
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.setdefault("responses", {}).update(refusals)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
