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
    """`DetectorOptions.resolve` of `DetectorRequest(**asked)`, device "cpu" by default.

    The model is named ssdlite320_mobilenet_v3_large unless `asked` names one: the model
    objects these tests run are not the bundled person detector, whose name (the request's
    default) makes precision auto pick int8 on CPUs with VNNI."""
    asked.setdefault("device", "cpu")
    asked.setdefault("model", "ssdlite320_mobilenet_v3_large")
    return DetectorOptions.resolve(DetectorRequest(**asked))


def make_detector(model: SSD, label_map: LabelMap, /, **asked: Any) -> Detector:
    """A `Detector` running `model` with `cpu_options(**asked)`."""
    return Detector(model, label_map, cpu_options(**asked))
