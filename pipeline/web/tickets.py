"""Short-lived tickets for `/docs` asked for with `Authorization: Bearer TOKEN`.

A browser sends a header it was given for a page (by an extension, a proxy, a tool) on that
page's request only; the requests the page makes (the OpenAPI description, "Try it out")
go without it. Writing the token itself into the page would put the long-lived secret in a
page that can be saved, printed or left open; putting it in URLs would put it in histories
and proxy logs. So the page gets a ticket instead: signed by a key that lives in this server
process only, valid for `LIFETIME_S`, for GET requests only (the API reads, it never writes),
sent by the page's script in the Authorization header, never in a URL. A ticket does not
buy another one: the page asked for with one holds none, so it cannot be renewed for ever.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

LIFETIME_S = 30 * 60
"""How long a ticket opens the API: a session of reading the docs and trying requests."""
PREFIX = "docs-ticket."
READ_METHODS = frozenset({"GET", "HEAD"})
"""What a ticket may do: the API's operations are all GET."""


class DocsTickets:
    """Issues and checks tickets; the key is new for each instance (each server)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._key = secrets.token_bytes(32)
        self._clock = clock

    def issue(self) -> str:
        """A new ticket, valid for `LIFETIME_S` from now."""
        expires = int(self._clock()) + LIFETIME_S
        return f"{PREFIX}{expires}.{self._sign(expires)}"

    def for_page(self, authorization: str | None) -> str | None:
        """A ticket for a `/docs` page asked for with this Authorization header: one when it
        is a bearer token (the page's own requests will lack it), none when it is a ticket
        already, HTTP basic (which the browser sends again by itself) or absent."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or value.strip().startswith(PREFIX):
            return None
        return self.issue()

    def accepts(self, method: str, authorization: str | None) -> bool:
        """Whether a request of `method` with this Authorization header carries a ticket
        that is still valid."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        if method.upper() not in READ_METHODS or scheme.lower() != "bearer":
            return False
        expires, _, signature = value.strip().removeprefix(PREFIX).partition(".")
        # ASCII digits only: `isdigit` takes "²" too, which `int` refuses
        digits = expires.isascii() and expires.isdigit()
        if not value.strip().startswith(PREFIX) or not (digits and len(expires) < 16):
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(int(expires)).encode()):
            return False
        return int(expires) > self._clock()

    def _sign(self, expires: int) -> str:
        return hmac.new(self._key, f"docs {expires}".encode(), hashlib.sha256).hexdigest()
