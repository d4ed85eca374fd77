"""What a source string names, and how to show a URL without its password.

A leaf module with no heavy imports: the config, the readers and the CLI's log filter use it.
"""

from __future__ import annotations

import re
from pathlib import Path

STREAM_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt", "rtp"}
)
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@")


def mask_credentials(text: str) -> str:
    """`text` with the password of every URL in it replaced by '***'.

    `rtsp://admin:secret@cam/1` becomes `rtsp://admin:***@cam/1`; text without URLs is kept.
    """
    return _CREDENTIALS.sub(r"\g<head>***@", text)


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
