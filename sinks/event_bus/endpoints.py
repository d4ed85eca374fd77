"""What a ZeroMQ endpoint must look like, checked before ZeroMQ sees it.

ZeroMQ takes some malformed endpoints without complaint: `tcp://host:99999` binds a port
of its own choosing, so subscribers at the written port would never hear a thing.
"""

from __future__ import annotations

import re

from pipeline.urls import MAX_PORT

_TRANSPORT = re.compile(r"^(?P<transport>tcp|ipc|inproc)://(?P<address>.+)$", re.DOTALL)
EXAMPLES = "e.g. tcp://127.0.0.1:5556, tcp://*:5556 or ipc:///tmp/events"


def endpoint_problem(endpoint: str) -> str | None:
    """Why `endpoint` is no ZeroMQ endpoint the event bus can use; None when it is one.

    tcp needs a host (an address, a name, `*`) and a port from 0 to 65535 (or `*`: any);
    ipc and inproc need a name.
    """
    match = _TRANSPORT.match(endpoint)
    if match is None:
        return f"not a ZeroMQ endpoint: {endpoint!r} ({EXAMPLES})"
    if match["transport"] != "tcp":
        return None
    host, colon, port = match["address"].rpartition(":")
    if not colon or not host:
        return f"{endpoint!r} needs a host and a port ({EXAMPLES})"
    if port == "*":
        return None
    if not (port.isascii() and port.isdigit()) or int(port) > MAX_PORT:
        return f"port {port!r} of {endpoint!r} is not a number from 0 to {MAX_PORT} (or *)"
    return None
