"""TF Object Detection API SSD / SSDLite with a MobileNetV2 backbone, rebuilt in PyTorch.

Builds the model of a `TFSSDConfig` (`detector.tf_ssd_config`) from the modules in
`detector.tf_ssd_layers`, with inputs scaled to [-1, 1] and TF's multiple-grid anchors;
saves and loads the files `detector.convert_tf` writes from a frozen graph.

`person_ssdlite` builds the bundled pedestrian detector (classes: background, person).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from detector.anchors import feature_map_sizes, grid_default_boxes
from detector.box_coder import BoxCoder
from detector.errors import ModelConfigError, WeightsUnavailableError
from detector.labels import check_class_names
from detector.ssd import SSD
from detector.state_dicts import load_checked, load_file
from detector.tf_ssd_config import TFSSDConfig
from detector.tf_ssd_layers import MobileNetV2Features, SSDPredictorHead
from detector.tf_ssd_layers import SameConv2d as SameConv2d  # still importable from here
from pipeline.folders import file_problem
from pipeline.types import LabelMap

CHECKPOINT_FORMAT = "tf-ssd/1"
ARCH = "person_ssdlite"
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "person_ssdlite.pt"
PERSON_LABELS = ("background", "person")


def tf_default_boxes(config: TFSSDConfig, feature_sizes: Sequence[tuple[int, int]]) -> Tensor:
    """TF `MultipleGridAnchorGenerator` anchors (not clipped), float32 [A, 4] xyxy in [0, 1].

    A box of scale s and aspect ratio a is s * sqrt(a) wide and s / sqrt(a) high, centred
    on each cell; per cell the boxes follow `anchor_specs` order.
    """
    sizes = [
        [(s * math.sqrt(a), s / math.sqrt(a)) for s, a in level] for level in config.anchor_specs
    ]
    return grid_default_boxes(feature_sizes, sizes)


def build_tf_ssd(config: TFSSDConfig) -> SSD:
    """An `SSD` with random weights for `config`, in eval mode."""
    backbone = MobileNetV2Features(config)
    size = (config.input_size, config.input_size)
    anchors = tf_default_boxes(config, feature_map_sizes(backbone, size))
    model = SSD(
        backbone=backbone,
        head=SSDPredictorHead(config),
        anchors=anchors,
        box_coder=BoxCoder(config.box_coder_weights, yx_order=True, clamp=None),
        input_size=size,
        mean=(config.mean,) * 3,  # TF: pixel * 2/255 - 1, i.e. mean = std = 127.5
        std=(config.std,) * 3,
        score_fn="sigmoid" if config.score_fn == "sigmoid" else "softmax",
        background_class=0,
    )
    # Weights in the layout of the activations (loading a state dict keeps it).
    return model.to(memory_format=torch.channels_last).eval()


def save_tf_ssd(
    path: str | os.PathLike[str],
    config: TFSSDConfig,
    state_dict: Mapping[str, Tensor],
    labels: Sequence[str],
    source: Mapping[str, str],
) -> None:
    """Write a converted model: architecture, label names, provenance and weights."""
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "labels": list(labels),
            "source": dict(source),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        },
        Path(path).expanduser(),
    )


def load_tf_ssd(path: str | os.PathLike[str]) -> tuple[SSD, LabelMap]:
    """The model and labels of a file written by `save_tf_ssd` (float32, eval mode)."""
    file = Path(path).expanduser()
    if (why := file_problem(file)) is not None:
        raise WeightsUnavailableError(
            f"weights file {why}: {file}; convert a TF graph with "
            f"`python -m detector.convert_tf GRAPH.pb {file}` or use `default` (bundled)"
        )
    data = load_file(file, "weights file")
    if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelConfigError(
            f"{file} is not a converted TF SSD model (format {CHECKPOINT_FORMAT}); "
            f"make one with `python -m detector.convert_tf GRAPH.pb OUT.pt`"
        )
    try:
        config = TFSSDConfig.from_dict(data["config"])
        labels = LabelMap(tuple(str(n) for n in data["labels"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelConfigError(f"{file} has a malformed model config ({error})") from error
    check_class_names(labels.names, str(file))
    if len(labels.names) != config.num_classes:
        raise ModelConfigError(
            f"{file} names {len(labels.names)} labels for {config.num_classes} classes"
        )
    model = build_tf_ssd(config)
    state = {k: v.float() for k, v in data["state_dict"].items()}
    load_checked(model, state, str(file), ARCH)
    return model.eval(), labels


def person_ssdlite(weights: str) -> tuple[SSD, LabelMap]:
    """The bundled SSDLite-MobileNetV2 pedestrian detector (classes: background, person).

    Args:
        weights: "default" (the bundled converted weights, offline), "none" (random) or the
            path of a file written by `python -m detector.convert_tf`.
    """
    choice = weights.strip()
    if choice.lower() == "none":
        return build_tf_ssd(TFSSDConfig()), LabelMap(PERSON_LABELS)
    if choice.lower() == "default":
        if not BUNDLED_WEIGHTS.is_file():
            raise WeightsUnavailableError(
                f"bundled weights missing: {BUNDLED_WEIGHTS}; reinstall the package or rebuild "
                f"them as described in {BUNDLED_WEIGHTS.parent / 'README.md'}"
            )
        return load_tf_ssd(BUNDLED_WEIGHTS)
    return load_tf_ssd(choice)
