"""What a source string names, how to show a URL without its credentials, and the highest
port an address may name.

A leaf module that imports nothing from the project: part of the vocabulary every layer may
use (the config, the readers, the sinks, the CLI's log filter).
"""

from __future__ import annotations

import re
from pathlib import Path

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


def infer_kind(source: str) -> str:
    """The source kind a string names: "stream", "device", "images" or "file"."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in STREAM_SCHEMES:
        return "stream"
    if source.startswith("/dev/video"):
        return "device"
    if any(ch in source for ch in "*?[") or Path(source).is_dir():
        return "images"
    return "file"
