"""What every config model shares: unknown keys refused, no infinite or NaN number, values
frozen once validated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pipeline.config.safe_yaml import short_repr
from pipeline.folders import name_problem
from pipeline.urls import MAX_PORT, listen_host_problem

BYTES_PER_KB = 1000
"""What one kB of a `*_kb` field is: a thousand bytes. Config sizes are decimal, kB and MB
alike, as the messages on free disk space count them: no config field counts KiB or MiB."""
BYTES_PER_MB = 1000 * BYTES_PER_KB
"""What one MB of a `*_mb` field is: a million bytes."""
ONE_BYTE_MB = 1 / BYTES_PER_MB
"""The smallest size a `*_mb` field takes: one byte. Sizes are counted in whole bytes, so a
smaller one would be 0 bytes: no room at all (every spooled row lost, every snapshot
deleted), not the small room it reads as."""


def mb_bytes(mb: float) -> int:
    """The whole bytes of a `*_mb` field's value."""
    return int(mb * BYTES_PER_MB)


def kb_bytes(kb: int) -> int:
    """The bytes of a `*_kb` field's value."""
    return kb * BYTES_PER_KB


KEEP_HOURS_MAX = 24 * 365 * 100
"""The longest a `keep_hours` field may keep files: a hundred years."""


def keep_s(keep_hours: float | None) -> float | None:
    """The seconds of a `keep_hours` field's value; None (no age limit) stays None."""
    return None if keep_hours is None else keep_hours * 3600


class Strict(BaseModel):
    """A config section: `extra="forbid"` (a misspelt key is an error), frozen.

    No float field takes .inf or .nan: every one is a size, a time or a rate that must be a
    number (an unset limit is None), and one NaN or infinity passes any bound it is
    compared with wrongly or later crashes the run that uses it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def name_fits(path: str) -> str:
    """`path`, when it is not too long a name for the file system; raises ValueError saying
    so (at its YAML path) when it is, instead of the OSError of whatever opens it later."""
    if (why := name_problem(path)) is not None:
        raise ValueError(f"too long for the file system ({why}): {short_repr(path)}")
    return path


FsPath = Annotated[Path, AfterValidator(lambda path: Path(name_fits(str(path))))]
"""A file or folder the config names: refused when too long a name (`name_fits`)."""


def yaml_path(loc: Sequence[str | int]) -> str:
    """A place in the config as errors name it: `sinks[0].endpoint`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


SINK_QUEUE_MB = 2000
"""The bytes a sink's queue holds by default, in MB, counting the frames of its messages:
a video or snapshots sink's 64 frames up to 4K (24.9 MB of RGB each, 26.1 MB with the image
resized for a 640x640 network: 1.7 GB) and the 256 results of the SQL, ZeroMQ and MQTT
sinks up to 1080p (7.4 MB each: 1.9 GB) still fit, so that a sink keeps the slack it had,
while an 8K camera's frames (99.5 MB each) take at most 2 GB where a video sink's 64 took
6.4 GB; the live view's 8 fit at any size a camera may have."""

SinkQueueMb = Annotated[
    float,
    Field(
        ge=ONE_BYTE_MB,
        le=1_000_000,
        description="Most memory the frames buffered for this sink may take, in MB "
        "(millions of bytes; at most 1 TB); one message is buffered however large.",
    ),
]
"""A sink's `queue_mb`: its queue's bound in the bytes of its messages' frames."""


HostName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
]
"""A name a server is reached by, as a Host or Origin header gives it (253 characters at most,
a DNS name's)."""
AllowedHosts = Annotated[tuple[HostName, ...], Field(max_length=64)]
"""A server's `allowed_hosts`: the names it is reached by besides its own, 64 at most."""


def _listen_host(host: str) -> str:
    if (problem := listen_host_problem(host)) is not None:
        raise ValueError(problem)  # at its line: binding says it later, without one
    return host


ListenHost = Annotated[str, StringConstraints(min_length=1), AfterValidator(_listen_host)]
"""An address to listen on: an IP address or a host name (`listen_host_problem`)."""
ListenPort = Annotated[int, Field(ge=0, le=MAX_PORT)]
"""A TCP port to listen on; 0: any free one."""
