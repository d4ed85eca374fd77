"""Checkpoints: a model's architecture, input size, class names and weights in one file,
with what made it; `detector.models.build_model(path)` runs one like any model.

Format "ssd-pipeline/2", a dict saved with `torch.save` and read back safely (weights_only):
`arch` (a name of `detector.architectures`), `size` (input side), `labels` (class names by
column, "background" first), `state_dict` and `extra` (plain data: the training config,
epoch, metrics; never an optimizer). Files of format "ssd-pipeline/1" (a registered model's
weights and label names) still load.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from detector.architectures import SPECS, build, check_size
from detector.errors import ModelConfigError
from detector.files import write_whole
from detector.labels import check_class_names
from detector.models import MODELS
from detector.ssd import SSD
from detector.state_dicts import PIPELINE_CHECKPOINT, fit_problems, load_checked, load_file
from pipeline.types import LabelMap

CHECKPOINT_FORMAT = f"{PIPELINE_CHECKPOINT}2"
V1_FORMAT = f"{PIPELINE_CHECKPOINT}1"
"""Checkpoints of registered models, without size or extra; read, no longer written."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What `load_checkpoint` read: the model (eval mode, CPU) and what it was saved with."""

    model: SSD
    labels: LabelMap
    arch: str
    size: int
    extra: Mapping[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: SSD,
    arch: str,
    size: int,
    labels: LabelMap,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write `model` so that `load_checkpoint(path)` (and `detector.model: path`) rebuilds it.

    The file is written beside `path` and renamed over it once complete, so an interrupted
    save never leaves half a checkpoint there (the previous file, if any, stays).

    Args:
        arch, size: the architecture (`detector.architectures`) and input side it was built as.
        labels: class names by class_logits column, background first.
        extra: plain data (str, int, float, bool, None, tensors, lists, dicts with str or
            int keys).

    Raises:
        ModelConfigError: an unknown architecture, or a size it does not take.
        ValueError: `model` is not `arch` at `size` with one column per label, or scores
            otherwise than a rebuilt one would.
        TypeError: `extra` holds something other than plain data.
    """
    size = check_size(arch, size)
    _check_rebuilds(model, arch, size, len(labels.names))
    data = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "size": size,
        "labels": list(labels.names),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "extra": _plain(extra or {}, "extra"),
    }
    _write_atomically(Path(path).expanduser(), data)


class ForeignCheckpoint(ModelConfigError):
    """A file that loads but that this pipeline did not save as a checkpoint; `plain` when it
    is a plain mapping (a state_dict, say), whose message says how a config can use it."""

    def __init__(self, file: Path, plain: bool) -> None:
        advice = (
            f"; to use a plain state_dict, set `detector.model` to its architecture and "
            f"`detector.weights: {file}`"
            if plain
            else ""
        )
        super().__init__(
            f"{file} is not a checkpoint saved by this pipeline (`python -m pipeline train` "
            f"writes them){advice}"
        )
        self.file = file
        self.plain = plain


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedCheckpoint:
    """The model saved by `save_checkpoint` at `path`, rebuilt in eval mode on the CPU.

    Raises:
        ModelConfigError: a missing, truncated, foreign (ForeignCheckpoint) or damaged
            file, or a folder, in one line.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        from detector.training.job import BEST  # the error's path alone: a heavy import

        best = file / BEST
        kept = f"; the checkpoint a training keeps in it is {best}" if best.is_file() else ""
        raise ModelConfigError(f"model checkpoint {file} is a folder, not a file{kept}")
    if not file.is_file():
        raise ModelConfigError(f"model checkpoint not found: {file}")
    try:
        data = load_file(
            file,
            "model checkpoint",
            hint="; it is damaged (a copy cut short?) or not a checkpoint",
            error=ModelConfigError,
        )
    except ModelConfigError:
        if file.suffix.lower() == ".onnx":  # what `export` writes, taken for a model
            raise ModelConfigError(
                f"{file} is an ONNX file (as `python -m pipeline export` writes, to run outside "
                "this pipeline), which the pipeline does not load as a model; give the "
                "checkpoint it was exported from (a .pt file, such as the best.pt `python -m "
                f"pipeline train` writes) or a model name: {', '.join(sorted(MODELS))}"
            ) from None
        raise
    version = data.get("format") if isinstance(data, Mapping) else None
    if version == V1_FORMAT:
        return _load_v1(file, data)  # type: ignore[arg-type]
    if version != CHECKPOINT_FORMAT:
        if isinstance(version, str) and version.startswith(PIPELINE_CHECKPOINT):
            raise ModelConfigError(
                f"{file} is a checkpoint of format {version}, newer than this version reads "
                f"({V1_FORMAT}, {CHECKPOINT_FORMAT}); upgrade ssd-pipeline to run it"
            )
        raise ForeignCheckpoint(file, plain=isinstance(data, Mapping))
    assert isinstance(data, Mapping)
    arch = _field(data, "arch", str, file)
    size = _field(data, "size", int, file)
    labels = _labels(data, file)
    state = _state_dict(data, file)
    extra = _field(data, "extra", Mapping, file)
    if arch not in SPECS:
        raise ModelConfigError(
            f"checkpoint {file} is of architecture {arch!r}, which this version does not "
            f"know; known: {', '.join(sorted(SPECS))}"
        )
    try:
        size = check_size(arch, size)
    except ModelConfigError as exc:
        raise ModelConfigError(f"checkpoint {file} is damaged: {exc}") from None
    model = build(arch, len(labels), size)
    load_checked(model, state, str(file), arch)
    return LoadedCheckpoint(model.eval(), LabelMap(labels), arch, size, dict(extra))


def _load_v1(file: Path, data: Mapping[str, Any]) -> LoadedCheckpoint:
    """A checkpoint of format ssd-pipeline/1: a registered model's weights."""
    arch = _field(data, "arch", str, file)
    if arch not in MODELS:
        raise ModelConfigError(
            f"checkpoint {file} is for architecture {arch!r}, which is not registered; "
            f"known: {', '.join(sorted(MODELS))}"
        )
    labels = _labels(data, file)
    model, _ = MODELS[arch]("none")
    load_checked(model, _state_dict(data, file), str(file), arch)
    return LoadedCheckpoint(model.eval(), LabelMap(labels), arch, model.input_size[0], {})


def _field(data: Mapping[str, Any], key: str, kind: type, file: Path) -> Any:
    """`data[key]`, which must be a `kind`; ModelConfigError naming the file otherwise."""
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise ModelConfigError(
            f"checkpoint {file} is damaged: its {key!r} is {found}, not a {kind.__name__}"
        )
    return value


def _labels(data: Mapping[str, Any], file: Path) -> tuple[str, ...]:
    labels = _field(data, "labels", list, file)
    if len(labels) < 2 or not all(isinstance(n, str) for n in labels):
        raise ModelConfigError(
            f"checkpoint {file} is damaged: its 'labels' must be 2 or more class names"
        )
    check_class_names(labels, f"checkpoint {file}")
    return tuple(labels)


def _state_dict(data: Mapping[str, Any], file: Path) -> dict[str, Tensor]:
    state = _field(data, "state_dict", Mapping, file)
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise ModelConfigError(
            f"checkpoint {file} is damaged: its 'state_dict' is not a mapping name -> tensor"
        )
    return dict(state)


@dataclass(frozen=True)
class _Rebuilt:
    """What `build(arch, num_classes, size)` makes, as far as a checkpoint must match it."""

    shapes: dict[str, tuple[int, ...]]
    score_fn: str
    background_class: int | None


@functools.cache
def _rebuilt(arch: str, num_classes: int, size: int) -> _Rebuilt:
    model = build(arch, num_classes, size)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _Rebuilt(shapes, model.score_fn, model.background_class)


def _check_rebuilds(model: SSD, arch: str, size: int, num_classes: int) -> None:
    """ValueError unless `load_checkpoint` would rebuild `model` from what it is saved as:
    a checkpoint found unloadable only after training would lose the training."""
    if model.input_size != (size, size):
        raise ValueError(
            f"the model takes {model.input_size[0]}x{model.input_size[1]} inputs, "
            f"not the {size}x{size} it is saved as"
        )
    rebuilt = _rebuilt(arch, num_classes, size)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = fit_problems(rebuilt.shapes, shapes)
    if problems:
        raise ValueError(
            f"the model is not {arch} with {num_classes} classes (its labels): "
            f"{', '.join(problems)}"
        )
    if (model.score_fn, model.background_class) != (rebuilt.score_fn, rebuilt.background_class):
        raise ValueError(
            f"the model scores with {model.score_fn} (background column "
            f"{model.background_class}), a rebuilt {arch} with {rebuilt.score_fn} "
            f"(background column {rebuilt.background_class})"
        )


def _plain(value: Any, where: str) -> Any:
    """`value` as builtin str/int/float/bool/None, lists, dicts with str or int keys and
    CPU tensors (what a weights_only load reads back: a training's optimiser state is such
    data; numpy scalars become builtins); TypeError naming the first thing that is not."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, bool | np.bool_):  # before Integral: a bool is an int
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise TypeError(f"{where} has a key {key!r} that is neither a str nor an int")
            plain[key] = _plain(item, f"{where}[{key!r}]")
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{where} is a {type(value).__name__}; a checkpoint's extra holds plain data only "
        f"(str, int, float, bool, None, tensors, lists, dicts with str or int keys)"
    )


def _write_atomically(file: Path, data: Mapping[str, Any]) -> None:
    """`torch.save(data)` to a file beside `file`, flushed to disk, then renamed over it."""

    def save(partial: Path) -> None:
        with open(partial, "wb") as out:
            torch.save(dict(data), out)
            out.flush()
            os.fsync(out.fileno())

    write_whole(file, save)
