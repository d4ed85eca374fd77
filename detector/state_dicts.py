"""Getting weights into models: download, read a file, check it fits, with one-line errors."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from detector.errors import ModelConfigError, WeightsUnavailableError
from pipeline.folders import file_problem

OFFLINE_ALTERNATIVES = (
    "or use `detector.model: person_ssdlite` (bundled, works offline), "
    "or `detector.weights: none` for a random model"
)
PIPELINE_CHECKPOINT = "ssd-pipeline/"
"""The `format` of every checkpoint `detector.checkpoints` writes starts so ("ssd-pipeline/2")."""


def _one_line(error: BaseException) -> str:
    """`error` in one line, its first sentence only (torch follows a corrupt file's with
    a paragraph of advice)."""
    text = " ".join(str(error).split()).split(". ")[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def hub_cache_file(url: str) -> Path:
    """Where `download_state_dict(url, ...)` keeps the file: torch hub's checkpoints folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def download_state_dict(url: str, arch: str, fix: str | None = None) -> dict[str, Tensor]:
    """State dict at `url`, through the torch hub cache (downloaded only if not cached).

    Raises:
        WeightsUnavailableError: "could not get {arch} weights from {url} (why); {fix}", the
            fix by default the config's (a weights path, or another model).
    """
    try:
        state = torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except Exception as error:  # URLError, HTTPError, bad hash, corrupt cached file, ...
        filename = os.path.basename(urlparse(url).path)
        fix = fix or (
            f"download that file where there is internet access and set "
            f"`detector.weights: /path/to/{filename}`, {OFFLINE_ALTERNATIVES}"
        )
        raise WeightsUnavailableError(
            f"could not get {arch} weights from {url} ({_one_line(error)}); {fix}"
        ) from error
    return _as_state_dict(state, url)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A state dict saved with `torch.save`, loaded safely (weights_only) onto the CPU."""
    file = Path(path).expanduser()
    if (why := file_problem(file)) is not None:
        raise WeightsUnavailableError(
            f"weights file {why}: {file}; set `detector.weights` to an existing .pth file, "
            f"or to `default` (download) or `none` (random)"
        )
    state = load_file(file, "weights file", hint="; it must be a state_dict saved with torch.save")
    return _as_state_dict(state, str(file))


def load_file(
    file: Path,
    what: str,
    hint: str = "",
    error: type[Exception] = WeightsUnavailableError,
) -> object:
    """`torch.load` of a weights file, safely (weights_only) onto the CPU.

    A file torch cannot read raises `error`: "cannot read {what} {file} (...){hint}"; one
    the file system refuses (no permission, an I/O error) "cannot read {what} {file}: why",
    without `hint`, which is about the file's contents.
    """
    try:
        with warnings.catch_warnings():  # a pickle of another program: the error says it
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(file, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.errno is None:  # not the file system's: torch's own, on the contents
            raise error(f"cannot read {what} {file} ({_one_line(exc)}){hint}") from exc
        raise error(f"cannot read {what} {file}: {(exc.strerror or str(exc)).lower()}") from exc
    except pickle.UnpicklingError as exc:  # torch's message is a paragraph on weights_only
        why = "not a file of torch.save, or one holding objects other than tensors and data"
        raise error(f"cannot read {what} {file} ({why}){hint}") from exc
    except Exception as exc:  # torch.load raises many types for a corrupt file
        raise error(f"cannot read {what} {file} ({_one_line(exc)}){hint}") from exc


def _as_state_dict(state: object, source: str) -> dict[str, Tensor]:
    if isinstance(state, Mapping) and str(state.get("format", "")).startswith(PIPELINE_CHECKPOINT):
        raise ModelConfigError(
            f"{source} is a pipeline checkpoint, not a state_dict; set `detector.model: "
            f"{source}` instead of `detector.weights`"
        )
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ModelConfigError(f"{source} does not hold a state_dict (a mapping name -> tensor)")
    return dict(state)


def load_checked(module: nn.Module, state: Mapping[str, Tensor], source: str, arch: str) -> None:
    """Load `state` into `module` (strictly), or explain in one line why it does not fit."""
    problems = fit_problems(
        {k: tuple(v.shape) for k, v in module.state_dict().items()},
        {k: tuple(v.shape) for k, v in state.items()},
    )
    if problems:
        raise ModelConfigError(
            f"weights from {source} do not fit model {arch}: {', '.join(problems)}; "
            f"use weights saved for {arch}"
        )
    module.load_state_dict(state, strict=True)


def fit_problems(
    expected: Mapping[str, tuple[int, ...]], given: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Why tensors of shapes `given` (by state_dict key) do not fit a module whose state has
    shapes `expected`: "N missing keys (e.g. KEY)", ...; empty when they fit."""
    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    wrong_shape = sorted(k for k in expected.keys() & given.keys() if expected[k] != given[k])
    return [
        f"{len(keys)} {what} (e.g. {keys[0]})"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("tensors of the wrong shape", wrong_shape),
        )
        if keys
    ]
