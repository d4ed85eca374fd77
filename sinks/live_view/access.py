"""Who may use the run's HTTP server (the live view, the metrics, the API): the names it is
served under, and optional credentials.

- Host (and Origin, when a browser sends one) must name the server: a loopback name, the
  address it listens on, or a name the user allowed. A page of another site that makes a
  name of its own resolve to this machine (DNS rebinding) is refused, since its requests
  carry that name.
- With `Credentials`, every request must carry them: HTTP basic (user and password) or a
  bearer token (`Authorization: Bearer ...` or `?token=...`).
- `exposure_problem` is the rule that a view reachable from other machines needs
  credentials unless the user says otherwise.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

DEFAULT_MAX_VIEWERS = 32
"""Streams served at once by default (a browser tab takes one per camera)."""
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the view on this machine."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address


def exposure_problem(
    host: str,
    has_credentials: bool,
    allow_unauthenticated: bool,
    *,
    served: str = "the live view",
    credentials: str = "`auth` (a password or token, e.g. ${LIVE_PASSWORD})",
    opt_out: str = "`allow_unauthenticated: true`",
) -> str | None:
    """Why the view (or what else is `served`) must not listen on `host` as configured, or
    None; `credentials` and `opt_out` are the settings that allow it, in the user's words."""
    if is_loopback(host) or has_credentials or allow_unauthenticated:
        return None
    return (
        f"host {host!r} makes {served} reachable from other machines without credentials: "
        f"set {credentials}, or {opt_out} to show it to anyone who can reach the port"
    )


@dataclass(frozen=True)
class Credentials:
    """What every request must carry: HTTP basic `username` and `password`, or a `token`.

    Exactly one of `password` and `token`; neither is shown by `repr`.
    """

    username: str = "viewer"
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.password is None) == (self.token is None):
            raise ValueError("live view credentials: give exactly one of password and token")

    def accept(self, authorization: str | None, query: str) -> bool:
        """Whether the request's Authorization header (or `?token=`) carries the secret."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        if self.token is not None:
            if scheme.lower() == "bearer":
                return _same(value.strip(), self.token)
            return any(_same(t, self.token) for t in parse_qs(query).get("token", []))
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
            user, _, password = decoded.partition(":")
        except ValueError:  # not base64 (a character past ASCII too), or not UTF-8
            return False
        assert self.password is not None
        # both compared, always: the time taken tells nothing of which one was wrong
        return _same(user, self.username) & _same(password, self.password)

    def challenge(self) -> str:
        """The WWW-Authenticate header of a 401."""
        if self.token is not None:
            return 'Bearer realm="live view"'
        return 'Basic realm="live view", charset="UTF-8"'


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Headers(Protocol):
    """A request's headers (`http.server`'s message, or a dict): looked up by name."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class Refusal:
    """An answer instead of the page: status, a one-line reason and extra headers."""

    status: HTTPStatus
    reason: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Access:
    """Decides, per request, whether to serve it (None) or how to refuse it (`Refusal`).

    Host names allowed: the loopback names, the address listened on (`bind_host`) and
    `allowed_hosts`. When listening on all interfaces any IP address is allowed too: a page
    needs a name of its own to rebind, never an address.
    """

    def __init__(
        self,
        bind_host: str,
        allowed_hosts: Iterable[str] = (),
        credentials: Credentials | None = None,
    ) -> None:
        bind = bind_host.strip("[]").lower()
        self.any_address = bind in WILDCARD_HOSTS
        self.hosts = (
            LOOPBACK_NAMES
            | {_name(h) for h in allowed_hosts}
            | (set() if self.any_address else {bind})
        )
        self.credentials = credentials

    def check(self, headers: Headers, path: str) -> Refusal | None:
        """None to serve a request with these headers and path (query included)."""
        host = headers.get("Host")
        if host is not None and not self._allowed(_name(host)):
            return Refusal(HTTPStatus.FORBIDDEN, "host not allowed (see allowed_hosts)")
        origin = headers.get("Origin")
        if origin is not None and not self._allowed_origin(origin):
            return Refusal(HTTPStatus.FORBIDDEN, "origin not allowed (see allowed_hosts)")
        # not urlsplit: a path such as `//[::1/x` would be read as a (malformed) host
        query = path.partition("?")[2].partition("#")[0]
        if self.credentials is not None and not self.credentials.accept(
            headers.get("Authorization"), query
        ):
            return Refusal(
                HTTPStatus.UNAUTHORIZED,
                "authentication required",
                {"WWW-Authenticate": self.credentials.challenge()},
            )
        return None

    def _allowed_origin(self, origin: str) -> bool:
        """Whether an Origin header names an http(s) page of an allowed host; one that is no
        URL (`http://[::1`) is not."""
        try:
            parts = urlsplit(origin.strip())
            hostname = parts.hostname
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and self._allowed(hostname or "")

    def _allowed(self, name: str) -> bool:
        if name in self.hosts:
            return True
        if not self.any_address:
            return False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _name(host: str) -> str:
    """The name in a Host header or host entry: lower case, without port, brackets and the
    trailing dot of a fully qualified name."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")
