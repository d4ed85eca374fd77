"""A trained checkpoint's int8 network measured against float32 on its validation images,
and kept beside it (`detector.measured_int8`), so that `precision: auto` may run it in int8.

Both networks run through the engine `run` uses (ONNX Runtime on the CPU); the int8 one is
calibrated on the checkpoint's own training images and scored with the same COCO
evaluation as `evaluate`.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector import host
from detector.engine import Detector
from detector.files import write_whole
from detector.measured_int8 import Int8Measurement, file_digest, network_path
from detector.models import build_model
from detector.options import DetectorOptions
from detector.quantize import CALIBRATION_FRAMES, RECIPE
from detector.request import DetectorRequest
from detector.training.evaluation import MAX_DETECTIONS, SCORE_FLOOR
from detector.training.samples import Sample
from pipeline.evaluation import evaluate_detector, sample_rgb, scored_columns


def calibration_frames(
    train: Sequence[Sample], count: int = CALIBRATION_FRAMES
) -> list[npt.NDArray[np.uint8]]:
    """Up to `count` training images, spread evenly over them, as RGB [H, W, 3];
    DatasetError naming one that cannot be decoded."""
    picked = np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(int)
    return [sample_rgb(train[i]) for i in dict.fromkeys(picked.tolist())]


def measure_int8(
    checkpoint: Path,
    train: Sequence[Sample],
    val: Sequence[Sample],
    class_names: Sequence[str],
) -> Int8Measurement:
    """Quantizes `checkpoint` on `train` images, scores float32 and int8 on `val` (mAP@.5),
    and writes the int8 network and the measurement beside the checkpoint.

    Raises:
        ModelConfigError: onnxruntime is missing, or the network cannot be exported or
            quantized.
        DatasetError: the model detects none of `class_names` (before any of that work), or
            an image cannot be decoded (named).
    """
    model, labels = build_model(str(checkpoint))
    scored_columns(labels, model.background_class, class_names)  # before minutes of work
    request = DetectorRequest(
        model=str(checkpoint),
        device="cpu",
        runtime="onnxruntime",
        precision="fp32",
        score_threshold=SCORE_FLOOR,
        max_detections=MAX_DETECTIONS,
    )
    fp32 = Detector(model, labels, DetectorOptions.resolve(request))
    frames = calibration_frames(train)
    int8_options = DetectorOptions.resolve(dataclasses.replace(request, precision="int8"))
    # Quantized here even where an earlier network is kept beside the checkpoint: that is
    # what is measured.
    int8 = Detector(
        model, labels, dataclasses.replace(int8_options, int8_network=None), calibration=frames
    )
    onnx_file = int8.onnx_file
    assert onnx_file is not None, "int8 runs on onnxruntime"
    fp32_map50 = evaluate_detector(fp32, val, class_names).metrics.map50
    int8_map50 = evaluate_detector(int8, val, class_names).metrics.map50
    network = network_path(checkpoint)
    write_whole(network, lambda partial: shutil.copyfile(onnx_file, partial))
    import onnxruntime

    measurement = Int8Measurement(
        checkpoint_sha256=file_digest(checkpoint),
        network_sha256=file_digest(network),
        fp32_map50=fp32_map50,
        int8_map50=int8_map50,
        images=len(val),
        calibration_images=len(frames),
        recipe=f"{RECIPE}|onnxruntime {onnxruntime.__version__}",
        vnni=host.has_int8_dot_products(),
    )
    measurement.save(checkpoint)
    return measurement
