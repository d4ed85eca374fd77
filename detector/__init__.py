"""Batched SSD detection: model registry, checkpoints, the detector's options and the
`Detector` stage.

The options and errors import without torch (the config validates with them); the model
registry and the engine are imported on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# ONNX Runtime's Linux and macOS wheels start Microsoft's telemetry as they are imported: a
# session file (`.ses`) in the temp folder, a device id under ~/.cache/Microsoft, events
# uploaded. Off unless the user asks for it (ORT_DISABLE_TELEMETRY=0); every import of
# onnxruntime in the project comes after this package's (README, "Models").
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from detector.errors import ModelConfigError, WeightsUnavailableError
from detector.options import DetectorOptions, DetectorRequest

if TYPE_CHECKING:
    from detector.checkpoints import load_checkpoint, save_checkpoint
    from detector.engine import Detector
    from detector.models import build_model, register_model

_LAZY = {
    "Detector": "detector.engine",
    "build_model": "detector.models",
    "register_model": "detector.models",
    "load_checkpoint": "detector.checkpoints",
    "save_checkpoint": "detector.checkpoints",
}

__all__ = [
    "Detector",
    "DetectorOptions",
    "DetectorRequest",
    "ModelConfigError",
    "WeightsUnavailableError",
    "build_model",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'detector' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
