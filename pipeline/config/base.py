"""What every config model shares: unknown keys refused, values frozen once validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A config section: `extra="forbid"` (a misspelt key is an error), frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
