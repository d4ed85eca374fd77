"""CURVE keys of the event bus: reading and checking them, and making key pairs.

Keys are Z85 text (40 characters), given inline or in ZeroMQ certificate files: `NAME.key`
holds the public key, `NAME.key_secret` both keys (`python -m pipeline keygen DIR`). Secret
files are created readable by their owner only (0600).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from datetime import datetime
from pathlib import Path

import zmq
import zmq.auth

from pipeline.folders import file_problem

log = logging.getLogger(__name__)


class CurveKeyError(ValueError):
    """A CURVE key cannot be read; the message names the key or file and how to fix it."""


_Z85_KEY = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def read_secret_key(path: str | Path) -> bytes:
    """The Z85 secret key of a ZeroMQ certificate file (`*.key_secret`, see `keygen`)."""
    _public, secret = _load_certificate(Path(path))
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        log.warning(
            "CURVE secret key file %s is readable by other users (mode %o); chmod 600 %s",
            path,
            mode,
            path,
        )
    if secret is None:
        raise CurveKeyError(
            f"{path} holds only a public key; give the '.key_secret' file made by "
            "`python -m pipeline keygen`"
        )
    return secret


def read_public_key(value: str | Path) -> bytes:
    """A Z85 public key: given as the 40-character key itself, or as a certificate file."""
    text = str(value).strip()
    if _Z85_KEY.match(text) and not Path(text).exists():
        return text.encode()
    if not Path(text).exists():
        raise CurveKeyError(
            f"{text!r} is neither a 40-character Z85 CURVE key ({len(text)} characters) nor a "
            "key file (make keys with `python -m pipeline keygen DIR`)"
        )
    public, _secret = _load_certificate(Path(text))
    return public


def check_z85_key(key: str, what: str) -> bytes:
    """`key` as bytes if it is a 40-character Z85 CURVE key; else CurveKeyError naming `what`."""
    key = key.strip()
    if not _Z85_KEY.match(key):
        raise CurveKeyError(
            f"{what} is not a 40-character Z85 CURVE key (got {len(key)} characters); "
            "make one with `python -m pipeline keygen DIR`"
        )
    return key.encode()


def server_secret_key(secret_key_file: str | Path | None, secret_key: str | None) -> bytes:
    """The server's Z85 secret key, from its `.key_secret` file or given inline (Z85 text).

    Exactly one of the two must be given (the config's `curve.secret_key_file` and
    `curve.secret_key`); CurveKeyError otherwise, or when the key cannot be read.
    """
    if secret_key_file is not None and secret_key is None:
        return read_secret_key(secret_key_file)
    if secret_key is not None and secret_key_file is None:
        return check_z85_key(secret_key, "curve.secret_key")
    raise CurveKeyError("give exactly one of secret_key_file and secret_key")


def create_key_pair(directory: Path, name: str) -> tuple[Path, Path, bytes]:
    """Write `NAME.key` (mode 0644) and `NAME.key_secret` (0600) into `directory` (made if
    missing), as ZeroMQ certificate files.

    Returns the public file, the secret file and the public key (Z85). Never overwrites:
    FileExistsError when either file exists; OSError when the folder cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    public_file, secret_file = directory / f"{name}.key", directory / f"{name}.key_secret"
    if public_file.exists():  # checked first so that no secret is left without its pair
        raise FileExistsError(errno.EEXIST, "File exists", str(public_file))
    _write_certificate(secret_file, public, secret)
    try:
        _write_certificate(public_file, public, None)
    except OSError:
        secret_file.unlink()
        raise
    return public_file, secret_file, public


def _write_certificate(path: Path, public: bytes, secret: bytes | None) -> None:
    """A certificate file as `zmq.auth.load_certificate` reads it. The file is created with
    its final mode (never readable by others, even briefly) and never replaces a file."""
    kind = "Public" if secret is None else "**Secret**"
    lines = [
        f"#   ****  Generated on {datetime.now():%Y-%m-%d %H:%M:%S} by ssd-pipeline  ****",
        f"#   ZeroMQ CURVE {kind} Certificate",
        "#   Exchange securely, or use a secure mechanism to verify the contents"
        if secret is None
        else "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644 if secret is None else 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    if (why := file_problem(path)) is not None:
        keygen = "make keys with `python -m pipeline keygen DIR`"
        raise CurveKeyError(f"key file {why}: {path} ({keygen})")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as exc:
        raise CurveKeyError(f"{path} is not a ZeroMQ certificate file: {exc}") from exc
    return public, secret
