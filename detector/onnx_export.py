"""A model as a stand-alone ONNX file (`python -m pipeline export`): the network the engine
runs in ONNX Runtime, with what a program needs to make boxes of its outputs written into the
file's metadata.

The graph: input `images`, uint8 [B, 3, H, W] RGB already resized to the model's input
(normalisation is inside); outputs `box_regression` float32 [B, A, 4] (codes relative to the
A default boxes) and `class_logits` float32 [B, A, C]. Metadata (ONNX `metadata_props`, each
value JSON): `format`, `labels` (C class names, by column), `input_size` ([H, W]),
`score_fn` ("softmax" over the columns, or "sigmoid" per column), `background_class` (the
column that means no object, or null), `box_coder` (`weights`, `yx_order`, `clamp`: see
`detector.box_coder.BoxCoder`) and `anchors` (A boxes [x1, y1, x2, y2] in 0..1 of the
input). docs/models.md decodes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import torch

from detector.files import write_whole
from detector.networks import prepare_model
from detector.onnx_runtime import cached_export
from detector.ssd import SSD
from pipeline.types import LabelMap

METADATA_FORMAT = "ssd-pipeline-onnx/1"
"""The `format` metadata: bumped when the inputs, outputs or metadata change meaning."""
EXPORT_FIX = "the exporter's full message is in the log with `--log-level debug`"


def onnx_metadata(model: SSD, labels: LabelMap) -> dict[str, str]:
    """What turns the outputs of `model`'s graph into labelled boxes, as JSON strings."""
    coder = model.box_coder
    values: dict[str, object] = {
        "format": METADATA_FORMAT,
        "labels": list(labels.names),
        "input_size": list(model.input_size),
        "score_fn": model.score_fn,
        "background_class": model.background_class,
        "box_coder": {
            "weights": list(coder.weights),
            "yx_order": coder.yx_order,
            "clamp": coder.clamp,
        },
        "anchors": model.anchors.detach().cpu().tolist(),
    }
    return {key: json.dumps(value) for key, value in values.items()}


def write_onnx(model: SSD, labels: LabelMap, path: str | os.PathLike[str]) -> Path:
    """Write `model`'s network with its metadata to `path` (renamed into place once complete).

    The graph is the one the engine runs (batch norms folded, exported once per set of
    weights and kept in its cache, `detector.onnx_runtime.cached_export`).

    Raises:
        ModelConfigError: the export failed.
    """
    file = Path(path).expanduser()
    height, width = model.input_size
    prepared = prepare_model(model, torch.device("cpu"))
    cached, _ = cached_export(prepared, f"the model ({height}x{width} input)", EXPORT_FIX)
    graph = onnx.load(str(cached))
    onnx.helper.set_model_props(graph, onnx_metadata(model, labels))
    write_whole(file, lambda partial: onnx.save(graph, str(partial)))
    return file
