"""What a source string names, how to show a URL without its credentials, the highest
port an address may name, what a server may be told to listen on, and whether the system
knows a host name (or a network interface of that name).

A leaf module that imports nothing from the project: part of the vocabulary every layer may
use (the config, the readers, the sinks, the CLI's log filter).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_PORT = 65535
"""The highest TCP port (port numbers are 16 bits); 0 asks a listening server for any free
one, and only there means anything."""
STREAM_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt", "rtp"}
)
# A URL's user:password@: the password runs to the last '@' of the URL (before a space or a
# quote), so that one holding '@', ':' or '/' is masked whole; rarely, a URL without one but
# with an '@' in its path loses a little more than a password. Showing less is the safe side.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"<>]*:)[^\s'\"<>]*@")
_PARAMETER = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.\-]+)=)(?P<value>[^&;#\s'\"<>]+)")
SECRET_PARAMETER_WORDS = (
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "credential",
    "signature",
    "sig",
)
"""A query parameter whose name contains one of these (any case) holds a secret: password,
passwd, pwd, sslpassword, token, access_token, client_secret, key, apiKey, auth, ..."""


def is_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter of this name holds a credential."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAMETER_WORDS)


def mask_credentials(text: str) -> str:
    """`text` with every credential in it replaced by '***': the password of each URL
    (`rtsp://admin:secret@cam/1` becomes `rtsp://admin:***@cam/1`) and the value of each
    secret query parameter (`?token=abc` becomes `?token=***`); the rest is kept.
    """
    text = _USERINFO.sub(r"\g<head>***@", text)
    return _PARAMETER.sub(
        lambda m: m["head"] + "***" if is_secret_parameter(m["name"]) else m[0], text
    )


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
"""One label of a host name: letters, digits and '-', not at either end (RFC 1123)."""


def listen_host_problem(host: str) -> str | None:
    """Why a server could never listen on `host`, from its text alone (nothing is
    resolved); None for an IP address (an IPv6 one without brackets) or a host name. A
    name whose last label is a number, `999.1.1.1` say, is meant as an IPv4 address."""
    if _is_address(host) or is_host_name(host):
        return None
    if all(label.isdigit() for label in host.removesuffix(".").split(".")):
        return f"host {host!r} is no IPv4 address: 4 numbers from 0 to 255, e.g. 127.0.0.1"
    return (
        f"host {host!r} is no IP address and no host name (letters, digits, '-' and '.'; "
        "an IPv6 address without brackets, e.g. ::1)"
    )


def is_host_name(host: str) -> bool:
    """Whether `host` is written as a host name (RFC 1123 labels, the last no number), not
    as an IP address: what a resolver may be asked about (`names_unknown`)."""
    if _is_address(host):
        return False
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(map(_LABEL.match, labels)) and not labels[-1].isdigit()


def _is_address(host: str) -> bool:
    """Whether `host` is an IP address (an IPv6 one without brackets; IPv4's short forms:
    127.1 is 127.0.0.1)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass  # a name, or nothing
    with contextlib.suppress(OSError, ValueError):
        if host[-1:].isdigit():
            socket.inet_aton(host)
            return True
    return False


RESOLVE_S = 2.0
"""Longest wait for the system to say whether a host name is known: a resolver that does
not answer by then leaves the name to whatever would use it."""
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
"""getaddrinfo's answers that the name is unknown, not that the resolver failed this time."""


def unknown_name(name: str) -> str:
    """That the host `name` is unknown, in the words every check says it in."""
    return f"host name {name!r} is unknown (it does not resolve)"


def name_unknown(name: str, timeout_s: float = RESOLVE_S) -> bool:
    """Whether the system says the host `name` does not resolve (`names_unknown`)."""
    return name in names_unknown([name], timeout_s)


def names_unknown(names: Iterable[str], timeout_s: float = RESOLVE_S) -> set[str]:
    """Those of `names` the system says do not resolve (no such name, or none it can
    encode); not one that resolves, where the resolver fails, or that gets no answer within
    `timeout_s` (it may yet resolve). The names are asked all at once: `timeout_s` is the
    longest wait for them all."""
    answers: dict[str, int | None] = {}

    def resolve(name: str) -> None:
        try:
            socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: no name IDNA encodes
            answers[name] = exc.errno if isinstance(exc, socket.gaierror) else socket.EAI_NONAME
            return
        answers[name] = None

    # getaddrinfo takes no time limit: daemon threads are left to the resolver's own.
    asking = [
        threading.Thread(target=resolve, args=(name,), name="resolve host name", daemon=True)
        for name in dict.fromkeys(names)
    ]
    for thread in asking:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in asking:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name for name, answer in dict(answers).items() if answer in _NO_SUCH_NAME}


def is_interface(name: str) -> bool:
    """Whether this machine has a network interface called `name` (`eth0`, `lo`): ZeroMQ
    binds such a name on the interface's address before it asks a resolver."""
    try:
        return any(found == name for _, found in socket.if_nameindex())
    except OSError:  # no interface list here: no name is one
        return False


HOSTLESS_SCHEMES = frozenset({"tcp", "udp", "srt", "rtp"})
"""Stream schemes whose URL may name no host: FFmpeg listens (`udp://:1234`,
`srt://:9000?mode=listener`) instead of connecting."""


def address_problem(url: str) -> str | None:
    """What keeps a stream URL's host and port from naming an address, in a few words, or
    None: an IPv6 host without its closing ']', a port that is no number or past `MAX_PORT`,
    no host where the scheme connects to one. Credentials are left out of the check, so a
    password holding '[' or ':' is no problem."""
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    try:
        parts = urlsplit(f"{scheme}://{host_port}")
        port = parts.port
    except ValueError as exc:
        reason = str(exc)
        if "IPv6" in reason:
            return f"its host {host_port!r} opens '[' without closing it"
        return f"its port is no number from 1 to {MAX_PORT}"
    if port == 0:
        return f"its port is no number from 1 to {MAX_PORT}"
    if not parts.hostname and scheme.lower() not in HOSTLESS_SCHEMES:
        return "it names no host"
    return None


def infer_kind(source: str) -> str:
    """The source kind a string names: "stream", "device", "images" or "file"."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in STREAM_SCHEMES:
        return "stream"
    if source.startswith("/dev/video"):
        return "device"
    # os.path.isdir, not Path.is_dir: a folder on the way this user may not enter is no
    # image folder (Path.is_dir raises PermissionError there before Python 3.14)
    if any(ch in source for ch in "*?[") or os.path.isdir(source):
        return "images"
    return "file"
