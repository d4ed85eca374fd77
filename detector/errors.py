"""Errors a user can hit while setting up a detector; each carries a one-line message."""

from __future__ import annotations


class WeightsUnavailableError(RuntimeError):
    """Model weights could not be obtained: download failed, or a weights file is missing
    or unreadable. The message names what failed and how to proceed."""


class ModelConfigError(RuntimeError):
    """The detector configuration is invalid: unknown model or label name, bad device, or a
    weights file that does not fit the chosen architecture."""
