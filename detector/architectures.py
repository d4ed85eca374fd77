"""The SSD architectures a model can be trained as, and rebuilt from a checkpoint.

Each is built for any number of classes (background included, column 0) at the input sizes
it allows, with random weights, scoring classes with a softmax (as a model trained with the
SSD loss does). `detector.training.bases` starts them from pretrained weights;
`detector.checkpoints` rebuilds them from a checkpoint's architecture name, class count
and size.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import nn

from detector.errors import ModelConfigError
from detector.ssd import SSD
from detector.state_dicts import load_checked
from detector.tf_ssd import build_tf_ssd
from detector.tf_ssd_config import TFSSDConfig
from detector.torchvision_models import torchvision_ssd
from detector.vgg_ssd512 import ssd512_vgg16

ArchBuilder = Callable[[int, int], SSD]
"""(num_classes, size) -> an SSD with random weights for size x size inputs, in eval mode."""


@dataclass(frozen=True)
class Architecture:
    """How one architecture is built, and what of it may vary."""

    build: ArchBuilder
    sizes: tuple[int, ...]
    """Input sides it can be built for: its default boxes follow its feature maps' sizes."""
    default_size: int
    class_head: str
    """The state_dict prefix of its classification head: what training for other classes
    replaces (the backbone and the box head are kept)."""
    fixed_size_because: str = ""
    """Why it takes one size only (its default boxes are laid out for that size)."""


def _tf_head_init(head: nn.Module) -> None:
    """TF Object Detection API's SSDLite predictor initialisation: weights from a normal
    distribution (std 0.03) truncated at two deviations, zero biases."""
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.trunc_normal_(module.weight, std=0.03, a=-0.06, b=0.06)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _person_ssdlite(num_classes: int, size: int) -> SSD:
    """The bundled model's SSDLite-MobileNetV2 (TF Object Detection API layout)."""
    config = TFSSDConfig(input_size=size, num_classes=num_classes, score_fn="softmax")
    model = build_tf_ssd(config)
    _tf_head_init(model.head)
    return model


def _ssdlite_mobilenet_v3(num_classes: int, size: int) -> SSD:
    return torchvision_ssd("ssdlite320_mobilenet_v3_large", num_classes, input_size=(size, size))


def _ssd300_vgg16(num_classes: int, size: int) -> SSD:
    return torchvision_ssd("ssd300_vgg16", num_classes, input_size=(size, size))


def _ssd512_vgg16(num_classes: int, size: int) -> SSD:
    return ssd512_vgg16(num_classes)


TORCHVISION_CLASS_HEAD = "head.head.classification_head."
SPECS: Mapping[str, Architecture] = MappingProxyType(
    {
        "person_ssdlite": Architecture(_person_ssdlite, (300, 320, 512), 300, "head.cls."),
        "ssdlite320_mobilenet_v3_large": Architecture(
            _ssdlite_mobilenet_v3, (300, 320, 512), 320, TORCHVISION_CLASS_HEAD
        ),
        "ssd300_vgg16": Architecture(
            _ssd300_vgg16,
            (300,),
            300,
            TORCHVISION_CLASS_HEAD,
            "its default boxes are the SSD paper's SSD300 ones, laid out for that size",
        ),
        "ssd512_vgg16": Architecture(
            _ssd512_vgg16,
            (512,),
            512,
            TORCHVISION_CLASS_HEAD,
            "its extra layers and default boxes are the SSD paper's SSD512 ones, made for "
            "that size",
        ),
    }
)
"""Every architecture, by the name checkpoints record."""


def architecture(arch: str) -> Architecture:
    """The architecture named `arch`; ModelConfigError naming the known ones otherwise."""
    spec = SPECS.get(arch)
    if spec is None:
        raise ModelConfigError(f"unknown architecture {arch!r}; known: {', '.join(sorted(SPECS))}")
    return spec


def check_size(arch: str, size: int | None) -> int:
    """The input side to build `arch` for: `size`, or its default when None.

    Raises:
        ModelConfigError: `arch` is unknown or cannot be built for `size`.
    """
    spec = architecture(arch)
    if size is None:
        return spec.default_size
    if size not in spec.sizes:
        if len(spec.sizes) == 1:
            raise ModelConfigError(
                f"{arch} takes {spec.default_size}x{spec.default_size} inputs only "
                f"({spec.fixed_size_because}), not {size}x{size}"
            )
        raise ModelConfigError(
            f"{arch} takes inputs of {', '.join(map(str, spec.sizes))} pixels square, not {size}"
        )
    return size


def build(arch: str, num_classes: int, size: int | None = None) -> SSD:
    """`arch` with `num_classes` columns (background included) for size x size inputs
    (default: its default size), random weights, eval mode, softmax scores.

    Raises:
        ModelConfigError: an unknown architecture, or a size it does not take.
    """
    size = check_size(arch, size)
    if num_classes < 2:
        raise ValueError(f"num_classes counts background and >= 1 class, got {num_classes}")
    return SPECS[arch].build(num_classes, size).eval()


ARCHITECTURES: Mapping[str, ArchBuilder] = MappingProxyType(
    {name: functools.partial(build, name) for name in SPECS}
)
"""Architecture name -> (num_classes, size) -> random-weight `SSD` (`build`)."""
DEFAULT_SIZE: Mapping[str, int] = MappingProxyType(
    {name: spec.default_size for name, spec in SPECS.items()}
)
SIZES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {name: spec.sizes for name, spec in SPECS.items()}
)


def at_size(model: SSD, arch: str, num_classes: int, size: int) -> SSD:
    """`model`, an `arch` network with `num_classes` columns, for size x size inputs: a
    copy with the same weights and scoring, its default boxes laid out for that size.

    Raises:
        ModelConfigError: `arch` does not take `size`, or `model` is not such a network.
    """
    size = check_size(arch, size)
    if model.input_size == (size, size):
        return model
    skeleton = build(arch, num_classes, size)
    load_checked(skeleton, model.state_dict(), f"the model to run at {size}x{size}", arch)
    resized = copy.deepcopy(model)
    resized.input_size = (size, size)
    resized.anchors = skeleton.anchors.to(model.anchors.device)
    return resized
