"""Where fine-tuning starts: an architecture with pretrained weights, its class head made
anew for the user's classes and everything else (backbone, box head) kept.

A base is an architecture name (`detector.architectures`) or a checkpoint. Pretrained
weights: person_ssdlite's are bundled (offline); ssdlite320_mobilenet_v3_large and
ssd300_vgg16 start from torchvision's COCO weights and ssd512_vgg16's VGG16 layers from
torchvision's ImageNet VGG16, each read from torch's hub cache (downloaded into it when
online). A base keeps its class head too when its class names are the ones asked for (the
bundled model fine-tuned for ("background", "person"), a checkpoint for its own classes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision.models import VGG16_Weights

from detector.architectures import SPECS, build, check_size
from detector.checkpoints import load_checkpoint
from detector.errors import ModelConfigError
from detector.ssd import SSD
from detector.state_dicts import download_state_dict, fit_problems, hub_cache_file, load_checked
from detector.tf_ssd import BUNDLED_WEIGHTS, person_ssdlite
from detector.torchvision_models import COCO_WEIGHTS, coco_ssd
from detector.vgg_ssd512 import ssd512_vgg16, vgg16_features

BACKGROUND = "background"


@dataclass(frozen=True)
class Trainable:
    """A model to fine-tune (eval mode, CPU: the training loop sets train mode and device),
    and what to save it as (`detector.checkpoints.save_checkpoint`)."""

    model: SSD
    arch: str
    size: int
    fresh_class_head: bool
    """Whether the class head was made anew (False: kept, with the base's weights)."""


def trainable_model(
    base: str, class_names: Sequence[str], size: int | None = None, *, seed: int
) -> Trainable:
    """`base` ready to fine-tune for `class_names`, every weight it makes anew (the class
    head; ssd512_vgg16's layers beyond VGG16) drawn from `seed`, the process's own torch
    RNG left as it was: the same seed starts from the same weights in every run.

    Args:
        base: an architecture name (see `detector.architectures.SPECS`), or the path of a
            checkpoint to go on from.
        class_names: ("background", c1, ..., cK): the class_logits columns to train.
        size: input side; None: the architecture's default, or the checkpoint's size.
        seed: the seed of the weights made anew (`TrainSettings.seed`).

    Raises:
        ModelConfigError: an unknown base, a size its architecture does not take, or a
            checkpoint that cannot be read.
        WeightsUnavailableError: pretrained weights neither cached nor downloadable; the
            message says where to put the file.
        ValueError: `class_names` not as above.
    """
    names = _class_names(class_names)
    # torch draws initial weights from its process-wide RNG, seeded at random in each
    # process: unseeded, two runs of one command started from different class heads.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _ready(base, names, size)


def _ready(base: str, names: tuple[str, ...], size: int | None) -> Trainable:
    """`trainable_model` under the RNG it seeded."""
    if base in SPECS:
        size = check_size(base, size)
        state, source, pretrained_names = PRETRAINED[base]()
        return _start(base, names, size, state, source, pretrained_names == names)
    path = Path(base).expanduser()
    if not path.is_file() and not path.is_dir():  # a folder: load_checkpoint says what is in it
        raise ModelConfigError(
            f"unknown base {base!r}: neither an architecture ({', '.join(sorted(SPECS))}) "
            f"nor an existing checkpoint file"
        )
    loaded = load_checkpoint(path)
    if loaded.arch not in SPECS:
        raise ModelConfigError(
            f"checkpoint {path} is a {loaded.arch} model, which cannot be fine-tuned; "
            f"architectures that can: {', '.join(sorted(SPECS))}"
        )
    size = check_size(loaded.arch, loaded.size if size is None else size)
    keep = loaded.labels.names == names
    return _start(loaded.arch, names, size, loaded.model.state_dict(), str(path), keep)


def _class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(class_names)
    if len(names) < 2 or names[0] != BACKGROUND:
        raise ValueError(
            f"class_names must be ('{BACKGROUND}', c1, ..., cK) with K >= 1, got {names!r}"
        )
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"class names must be non-empty strings, got {names!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"class names must differ; repeated: {', '.join(repeated)}")
    return names


def _start(
    arch: str,
    names: tuple[str, ...],
    size: int,
    state: Mapping[str, Tensor],
    source: str,
    keep_class_head: bool,
) -> Trainable:
    """`arch` for `names` at `size`, every weight from `state` but (unless kept) the class
    head, which keeps the fresh initialisation of `detector.architectures.build`."""
    model = build(arch, len(names), size)
    head = SPECS[arch].class_head
    if keep_class_head:
        load_checked(model, state, source, arch)
        return Trainable(model, arch, size, fresh_class_head=False)
    kept = {k: v for k, v in state.items() if not k.startswith(head)}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith(head)}
    problems = fit_problems(expected, {k: tuple(v.shape) for k, v in kept.items()})
    if problems:
        raise ModelConfigError(
            f"weights from {source} do not fit model {arch}: {', '.join(problems)}"
        )
    model.load_state_dict(kept, strict=False)
    return Trainable(model, arch, size, fresh_class_head=True)


def _hub_fix(url: str) -> str:
    """What to do when `url` cannot be downloaded: put the file where torch looks."""
    folder = hub_cache_file(url).parent
    return (
        f"download that file where there is internet access and put it in {folder} "
        f"(torch's hub cache; $TORCH_HOME moves it), or fine-tune person_ssdlite, whose "
        f"weights are bundled"
    )


Pretrained = tuple[dict[str, Tensor], str, tuple[str, ...] | None]
"""A base's pretrained weights (a state_dict of its architecture), where they are from, and
the class names of their class head (None: a head of no use to fine-tuning)."""


def _bundled_person() -> Pretrained:
    model, labels = person_ssdlite("default")
    return _as_softmax(model.state_dict(), len(labels.names)), str(BUNDLED_WEIGHTS), labels.names


def _as_softmax(state: Mapping[str, Tensor], num_classes: int) -> dict[str, Tensor]:
    """The bundled model's class head for the softmax a trained model scores with: it scores
    person with a sigmoid of its person logit, and a softmax over (0, person logit) is that
    same sigmoid, so each background logit's weights and bias become 0."""
    head = SPECS["person_ssdlite"].class_head
    converted = dict(state)
    for key, value in state.items():
        # The predictor of each feature map, "{head}{map}.1.weight" and ".bias"; ".0." is
        # its depthwise convolution.
        if key.startswith(head) and key.removeprefix(head).split(".")[1:] in (
            ["1", "weight"],
            ["1", "bias"],
        ):
            columns = value.clone().unflatten(0, (-1, num_classes))  # [anchor, class, ...]
            columns[:, 0] = 0
            converted[key] = columns.flatten(0, 1)
    return converted


def _coco(arch: str) -> Callable[[], Pretrained]:
    def pretrained() -> Pretrained:
        url = COCO_WEIGHTS[arch].url
        state = download_state_dict(url, arch, fix=_hub_fix(url))
        # COCO's 91 columns: kept only if a dataset named all of them in the same order,
        # which none does; a head made anew learns the user's classes.
        return coco_ssd(arch, state, url).state_dict(), url, None

    return pretrained


def _imagenet_vgg16_ssd512() -> Pretrained:
    """SSD512 on torchvision's ImageNet VGG16 layers (its classifier unused)."""
    url = VGG16_Weights.IMAGENET1K_FEATURES.url
    state = download_state_dict(url, "VGG16 (ImageNet, for ssd512_vgg16)", fix=_hub_fix(url))
    features = vgg16_features()
    prefix = "features."
    layers = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    load_checked(features, layers, url, "VGG16")
    return ssd512_vgg16(2, features).state_dict(), url, None


PRETRAINED: Mapping[str, Callable[[], Pretrained]] = {
    "person_ssdlite": _bundled_person,
    "ssdlite320_mobilenet_v3_large": _coco("ssdlite320_mobilenet_v3_large"),
    "ssd300_vgg16": _coco("ssd300_vgg16"),
    "ssd512_vgg16": _imagenet_vgg16_ssd512,
}
"""Each architecture's pretrained weights, as a state_dict of it, where they are from, and
their class names: a base keeps its class head when the classes asked for are those."""
