"""The resolvers and keyword `Detector.build` that `pipeline/bench.py` still calls, each
written over `DetectorOptions.resolve`: kept only until bench switches to it (each function
names the call that replaces it), then to be deleted. Nothing else uses them.
"""

from __future__ import annotations

from typing import cast

import torch

from detector.engine import Detector
from detector.options import DetectorOptions
from detector.request import DetectorRequest, Precision, Runtime


def resolve_device(device: str) -> torch.device:
    """Instead: `DetectorOptions.resolve(DetectorRequest(device=device)).device`."""
    return DetectorOptions.resolve(DetectorRequest(device=device)).device


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """Instead: `DetectorOptions.resolve(DetectorRequest(device=str(device),
    runtime=runtime)).runtime` (it raises ModelConfigError where `runtime` cannot run)."""
    return DetectorOptions.resolve(
        DetectorRequest(device=str(device), runtime=cast(Runtime, runtime))
    ).runtime


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Checks that `precision` can run on `device`. Instead:
    `DetectorOptions.resolve(DetectorRequest(device=str(device), precision=precision))`,
    which raises ModelConfigError where it cannot; `.autocast_dtype` is the result."""
    request = DetectorRequest(device=str(device), precision=cast(Precision, precision))
    return DetectorOptions.resolve(request).autocast_dtype


def auto_precision(
    precision: str, model: str, weights: str, device: torch.device, runtime: str
) -> str:
    """`precision`, or "int8" where "auto" picks it. Instead:
    `DetectorOptions.resolve(DetectorRequest(model=model, weights=weights,
    device=str(device), runtime=runtime)).precision == "int8"`."""
    if precision != "auto":
        return precision
    request = DetectorRequest(
        model=model, weights=weights, device=str(device), runtime=cast(Runtime, runtime)
    )
    options = DetectorOptions.resolve(request)
    return "int8" if options.precision == "int8" else precision


class KeywordDetector:
    """`Detector.build` with keywords, as bench calls it."""

    @staticmethod
    def build(
        model: str,
        weights: str,
        device: str,
        precision: str = "auto",
        runtime: str = "auto",
    ) -> Detector:
        """Instead: `Detector.build(DetectorRequest(model=model, weights=weights,
        device=device, precision=precision, runtime=runtime))`."""
        request = DetectorRequest(
            model=model,
            weights=weights,
            device=device,
            precision=cast(Precision, precision),
            runtime=cast(Runtime, runtime),
        )
        return Detector.build(request)
