"""Model registry: names -> builders; `build_model` builds one, or loads a checkpoint."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from detector.errors import ModelConfigError
from detector.ssd import SSD
from pipeline.types import LabelMap

Builder = Callable[[str], tuple[SSD, LabelMap]]
"""Builds a model and its label names from a weights choice: "default", "none" or a path."""

MODELS: dict[str, Builder] = {}
"""Registered model names; use `register_model` to add one."""


def register_model(name: str, builder: Builder) -> None:
    """Make `build_model(name, weights)` call `builder(weights)`; replaces an earlier entry."""
    if not name or name != name.strip():
        raise ValueError(f"invalid model name {name!r}")
    MODELS[name] = builder


class LazyBuilder:
    """A builder imported on first use, so that registering a model costs no imports."""

    def __init__(self, module: str, function: str) -> None:
        self.module = module
        self.function = function

    def __repr__(self) -> str:
        return f"LazyBuilder({self.module}:{self.function})"

    def __call__(self, weights: str) -> tuple[SSD, LabelMap]:
        builder: Builder = getattr(importlib.import_module(self.module), self.function)
        return builder(weights)


register_model("ssd300_vgg16", LazyBuilder("detector.torchvision_models", "ssd300_vgg16"))
register_model(
    "ssdlite320_mobilenet_v3_large",
    LazyBuilder("detector.torchvision_models", "ssdlite320_mobilenet_v3_large"),
)
register_model("person_ssdlite", LazyBuilder("detector.tf_ssd", "person_ssdlite"))


def build_model(
    model: str, weights: str = "default", size: int | None = None
) -> tuple[SSD, LabelMap]:
    """A model in eval mode on the CPU and its label names.

    Args:
        model: a registered name (see `MODELS`) or the path of a checkpoint
            (`detector.checkpoints`, e.g. the best.pt of `python -m pipeline train`).
        weights: for a registered name, "default" (its pretrained weights), "none" (random)
            or the path of a state_dict for that architecture; a checkpoint holds its own
            weights, so it takes only "default".
        size: the input side to run it at, where its architecture allows
            (`detector.architectures.at_size`); None: its own.
    """
    from detector.architectures import at_size, check_size

    if model in MODELS:
        if size is not None:
            check_size(model, size)  # before building it (a download, maybe)
        net, labels = MODELS[model](weights)
        arch = model
    else:
        net, labels, arch = _checkpoint(model, weights)
    if size is not None:
        net = at_size(net, arch, len(labels.names), size)
    return net.eval(), labels


def _checkpoint(model: str, weights: str) -> tuple[SSD, LabelMap, str]:
    """The model, labels and architecture of the checkpoint at path `model`."""
    from detector.checkpoints import load_checkpoint

    path = Path(model).expanduser()
    if path.is_dir():  # a training's folder, say: refused naming the checkpoint in it
        load_checkpoint(path)
    if path.is_file():
        if weights.strip().lower() != "default":
            raise ModelConfigError(
                f"model {path} is a checkpoint holding its own weights; remove "
                f"`detector.weights` (got {weights!r}) or set it to `default`"
            )
        loaded = load_checkpoint(path)
        return loaded.model, loaded.labels, loaded.arch
    known = ", ".join(sorted(MODELS))
    if path.suffix in (".pt", ".pth") or os.sep in model or "/" in model:
        raise ModelConfigError(
            f"model checkpoint not found: {path}; set `detector.model` to an existing "
            f"checkpoint (such as the best.pt `python -m pipeline train` writes), or to one "
            f"of: {known}"
        )
    raise ModelConfigError(
        f"unknown detector model {model!r}; known models: {known} "
        f"(or the path of a checkpoint, such as the best.pt `python -m pipeline train` writes)"
    )
