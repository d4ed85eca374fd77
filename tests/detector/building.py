"""Detectors for tests: a model object (not a registered name) run with options resolved
from a request's keywords, on the CPU unless a device is given."""

from __future__ import annotations

from typing import Any

from detector.engine import Detector
from detector.options import DetectorOptions
from detector.request import DetectorRequest
from detector.ssd import SSD
from pipeline.types import LabelMap


def cpu_options(**asked: Any) -> DetectorOptions:
    """`DetectorOptions.resolve` of `DetectorRequest(**asked)`, device "cpu" by default."""
    asked.setdefault("device", "cpu")
    return DetectorOptions.resolve(DetectorRequest(**asked))


def make_detector(model: SSD, label_map: LabelMap, /, **asked: Any) -> Detector:
    """A `Detector` running `model` with `cpu_options(**asked)`."""
    return Detector(model, label_map, cpu_options(**asked))
