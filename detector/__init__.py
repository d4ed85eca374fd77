"""Batched SSD detection: model registry, checkpoints and the `Detector` stage."""

from detector.engine import Detector
from detector.errors import ModelConfigError, WeightsUnavailableError
from detector.models import build_model, register_model, save_checkpoint

__all__ = [
    "Detector",
    "ModelConfigError",
    "WeightsUnavailableError",
    "build_model",
    "register_model",
    "save_checkpoint",
]
