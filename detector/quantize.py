"""int8 networks for ONNX Runtime on the CPU: static quantization calibrated on real frames.

CPUs with 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI) run the quantized
person SSDLite faster than float32, at a price in accuracy that
`benchmarks/quantization.py` measures (figures in docs/performance.md, "int8 accuracy").
That is why `precision: auto` picks int8 only for the bundled person model, whose accuracy this is
(`detector.options.INT8_BY_DEFAULT`), and only on such CPUs
(`detector.host.has_int8_dot_products`); any other model or CPU needs
`detector.precision: int8`.

Weights are quantized per output channel (int8, symmetric), activations per tensor (uint8),
their ranges taken from the network's own activations on the calibration frames (min-max).
The convolutions named in `FLOAT_LAYERS` stay in float32.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.errors import ModelConfigError

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "samples" / "pedestrians.mp4"
"""The bundled sample clip: people on a campus, what the bundled person model is for."""
CALIBRATION_FRAMES = 50
"""Frames the activation ranges are measured on. 25 or 200 (every frame of the clip) each
lowered recall and precision against float32 by about 0.3 % after the clip, below the 0.98
the default is held to (docs/performance.md, "int8 accuracy")."""
FLOAT_LAYERS: tuple[str, ...] = ("backbone.stem.", "backbone.blocks.0.", "backbone.blocks.1.")
"""Convolutions kept in float32 in the int8 network, by the prefix of their parameters' names
(weight or bias): the bundled person model's stem and first two blocks, whose quantization
cost the most recall and precision in the per-layer sweep of `python -m
benchmarks.quantization --sweep` (docs/performance.md, "int8 accuracy"). Models named
otherwise are all int8."""
RECIPE = f"qdq-minmax-per-channel|frames {CALIBRATION_FRAMES}|float {','.join(FLOAT_LAYERS)}"
"""Everything about how `quantize_int8` quantizes that is not in its inputs: part of the int8
cache key (`detector.onnx_runtime`), so that a change here quantizes again."""


def calibration_images(
    clip: Path | str, count: int = CALIBRATION_FRAMES
) -> list[npt.NDArray[np.uint8]]:
    """Up to `count` RGB frames [H, W, 3] spread evenly over the video file `clip`.

    Raises:
        ModelConfigError: the file is missing, cannot be decoded, or holds no frames.
    """
    from detector.clip_frames import NotAVideoError, sample_frames

    path = Path(clip).expanduser()
    if not path.is_file():
        raise ModelConfigError(
            f"calibration clip {path} not found; set `detector.calibration` to a video file "
            "like the footage the model will see"
        )
    try:
        return sample_frames(path, count)
    except NotAVideoError as exc:
        raise ModelConfigError(f"calibration clip {path}: {exc}") from None


def quantize_int8(
    fp32: Path,
    out: Path,
    inputs: npt.NDArray[np.uint8],
    input_name: str,
    float_layers: Sequence[str] = FLOAT_LAYERS,
    ranges_cache: Path | None = None,
) -> None:
    """Write an int8 (QDQ) copy of the float32 ONNX network `fp32` to `out`, with activation
    ranges measured on `inputs`: uint8 model inputs [N, 3, H, W]. Convolutions whose parameter
    names start with one of `float_layers` stay in float32. `ranges_cache`: a file keeping the
    measured ranges for later calls on the same network and inputs (the benchmark's sweep)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[npt.NDArray[np.uint8]] = iter(np.split(inputs, len(inputs)))

        def get_next(self) -> dict[str, npt.NDArray[np.uint8]] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="ssd-pipeline-quant-") as scratch:
        # Shape inference and graph clean-up first, as ONNX Runtime's quantizer advises.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(
            str(prepared),
            str(out),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            nodes_to_exclude=convolutions_named(prepared, float_layers),
            # Recent onnxruntime only (1.22 has no such argument).
            **({} if ranges_cache is None else {"calibration_cache_path": ranges_cache}),
        )


def convolutions_named(network: Path, prefixes: Sequence[str]) -> list[str]:
    """Node names of the Conv nodes of the ONNX file `network` that take a parameter (weight
    or bias) whose name starts with one of `prefixes`."""
    if not prefixes:
        return []
    import onnx

    graph = onnx.load(str(network), load_external_data=False).graph
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv" and any(i.startswith(tuple(prefixes)) for i in node.input)
    ]
