"""What a ZeroMQ endpoint must look like, checked before ZeroMQ sees it.

ZeroMQ takes some malformed endpoints without complaint: `tcp://host:99999` binds a port
of its own choosing, so subscribers at the written port would never hear a thing.
"""

from __future__ import annotations

import re

from pipeline.urls import MAX_PORT, RESOLVE_S, name_unknown, unknown_name

_TRANSPORT = re.compile(r"^(?P<transport>tcp|ipc|inproc)://(?P<address>.+)$", re.DOTALL)
EXAMPLES = "e.g. tcp://127.0.0.1:5556, tcp://*:5556 or ipc:///tmp/events"


def endpoint_problem(endpoint: str) -> str | None:
    """Why `endpoint` is no ZeroMQ endpoint the event bus can use; None when it is one.

    tcp needs a host (an address, a name, `*`; an IPv6 address in brackets) and a port from
    0 to 65535 (or `*`: any); ipc and inproc need a name.
    """
    match = _TRANSPORT.match(endpoint)
    if match is None:
        return f"not a ZeroMQ endpoint: {endpoint!r} ({EXAMPLES})"
    if match["transport"] != "tcp":
        return None
    host, colon, port = match["address"].rpartition(":")
    if not colon or not host:
        return f"{endpoint!r} needs a host and a port ({EXAMPLES})"
    if _brackets_unpaired(host):
        return (
            f"host {host!r} of {endpoint!r} has an unpaired bracket; an IPv6 address goes "
            "whole in brackets, e.g. tcp://[::1]:5556"
        )
    if port == "*":
        return None
    if not (port.isascii() and port.isdigit()) or int(port) > MAX_PORT:
        return f"port {port!r} of {endpoint!r} is not a number from 0 to {MAX_PORT} (or *)"
    return None


def _brackets_unpaired(host: str) -> bool:
    """Whether `host` (after any `source;` a connecting endpoint names) holds '[' or ']'
    other than around the whole of it, as an IPv6 address is written."""
    host = host.rpartition(";")[2]
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return "[" in inner or "]" in inner


def unknown_host(endpoint: str, timeout_s: float = RESOLVE_S) -> str | None:
    """Says that the host name of a tcp `endpoint` (one `endpoint_problem` finds usable) is
    unknown to the system, which ZeroMQ would try for ever without a word; None when it
    resolves, for any other transport, and when the resolver fails or takes longer than
    `timeout_s` (the name may yet resolve: ZeroMQ keeps trying)."""
    transport, _, address = endpoint.partition("://")
    host = address.rpartition(":")[0].rpartition(";")[2]
    if transport != "tcp" or host == "*":
        return None
    name = host[1:-1] if host.startswith("[") else host
    if not name_unknown(name, timeout_s):
        return None
    return f"its {unknown_name(name)}"


def connect_problem(endpoint: str) -> str | None:
    """Why a subscriber in another process could never hear a publisher at `endpoint` (one
    `endpoint_problem` finds usable to bind); None when it could."""
    if (problem := endpoint_problem(endpoint)) is not None:
        return problem
    transport, _, address = endpoint.partition("://")
    host, _, port = address.rpartition(":")
    why = None
    if transport == "inproc":
        why = "inproc:// reaches only the process that binds it"
    elif transport == "ipc" and address == "*":
        why = "ipc://* (a name of ZeroMQ's choosing) is for binding"
    elif transport == "tcp" and host == "*":
        why = "'*' (every address) is for binding"
    elif transport == "tcp" and port == "*":
        why = "port * (any port) is for binding"
    elif transport == "tcp" and int(port) == 0:
        why = "port 0 (any port) is for binding"
    if why is None:
        return None
    return (
        f"cannot subscribe to {endpoint!r}: {why}; give the address the publisher is reached "
        "at from here, e.g. tcp://127.0.0.1:5556 or ipc:///tmp/events"
    )
