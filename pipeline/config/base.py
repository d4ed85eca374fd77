"""What every config model shares: unknown keys refused, no infinite or NaN number, values
frozen once validated."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A config section: `extra="forbid"` (a misspelt key is an error), frozen.

    No float field takes .inf or .nan: every one is a size, a time or a rate that must be a
    number (an unset limit is None), and one NaN or infinity passes any bound it is
    compared with wrongly or later crashes the run that uses it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def yaml_path(loc: Sequence[str | int]) -> str:
    """A place in the config as errors name it: `sinks[0].endpoint`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
