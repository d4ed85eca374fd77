"""Model registry: names -> builders, plus checkpoints saved by this package."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from detector.errors import ModelConfigError
from detector.ssd import SSD
from detector.state_dicts import load_checked, load_file
from pipeline.types import LabelMap

Builder = Callable[[str], tuple[SSD, LabelMap]]
"""Builds a model and its label names from a weights choice: "default", "none" or a path."""

CHECKPOINT_FORMAT = "ssd-pipeline/1"

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


def build_model(model: str, weights: str = "default") -> tuple[SSD, LabelMap]:
    """A model in eval mode on the CPU and its label names.

    Args:
        model: a registered name (see `MODELS`) or the path of a file from `save_checkpoint`.
        weights: for a registered name, "default" (its pretrained weights), "none" (random)
            or the path of a state_dict for that architecture; a checkpoint holds its own
            weights, so it takes only "default".
    """
    if model in MODELS:
        net, labels = MODELS[model](weights)
        return net.eval(), labels
    path = Path(model).expanduser()
    if path.is_file():
        return load_checkpoint(path, weights)
    known = ", ".join(sorted(MODELS))
    if path.suffix in (".pt", ".pth") or os.sep in model or "/" in model:
        raise ModelConfigError(
            f"model checkpoint not found: {path}; set `detector.model` to an existing file "
            f"saved by save_checkpoint, or to one of: {known}"
        )
    raise ModelConfigError(
        f"unknown detector model {model!r}; known models: {known} "
        f"(or the path of a checkpoint saved by save_checkpoint)"
    )


def save_checkpoint(path: str | os.PathLike[str], arch: str, model: SSD, labels: LabelMap) -> None:
    """Save `model`'s weights and label names so that `build_model(path)` rebuilds it.

    `arch` is the registered name the model was built with (it rebuilds the modules).
    """
    if arch not in MODELS:
        raise ModelConfigError(
            f"cannot save a checkpoint for unregistered architecture {arch!r}; "
            f"known: {', '.join(sorted(MODELS))}"
        )
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "arch": arch,
            "labels": list(labels.names),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        Path(path).expanduser(),
    )


def load_checkpoint(path: str | os.PathLike[str], weights: str = "default") -> tuple[SSD, LabelMap]:
    """The model and labels saved by `save_checkpoint` at `path`, in eval mode on the CPU."""
    file = Path(path).expanduser()
    if weights.strip().lower() != "default":
        raise ModelConfigError(
            f"model {file} is a checkpoint holding its own weights; remove `detector.weights` "
            f"(got {weights!r}) or set it to `default`"
        )
    data = load_file(file, "model checkpoint")
    if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelConfigError(
            f"{file} is not a checkpoint saved by save_checkpoint (format {CHECKPOINT_FORMAT}); "
            f"to use a plain state_dict, set `detector.model` to its architecture and "
            f"`detector.weights: {file}`"
        )
    arch = data.get("arch")
    if not isinstance(arch, str) or arch not in MODELS:
        raise ModelConfigError(
            f"checkpoint {file} is for architecture {arch!r}, which is not registered; "
            f"known: {', '.join(sorted(MODELS))}"
        )
    net, _ = MODELS[arch]("none")
    load_checked(net, data["state_dict"], str(file), arch)
    return net.eval(), LabelMap(tuple(str(n) for n in data["labels"]))
