"""Every request to the run's server passes `Access` (Host, Origin, credentials) first."""

from __future__ import annotations

import logging
from http import HTTPStatus

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
