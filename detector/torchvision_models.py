"""torchvision's COCO SSD models, taken apart and recomposed as our `SSD`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn
from torchvision.models import detection as tvd

from detector.anchors import feature_map_sizes, torchvision_default_boxes
from detector.box_coder import BoxCoder
from detector.ssd import SSD
from detector.state_dicts import (
    download_state_dict,
    hub_cache_file,
    load_checked,
    read_state_dict,
)
from pipeline.types import LabelMap


class TorchvisionBackbone(nn.Module):
    """A torchvision SSD feature extractor returning a list instead of a dict."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, images: Tensor) -> list[Tensor]:
        """images [B, 3, H, W] -> feature maps [B, C_i, H_i, W_i]."""
        return list(self.body(images).values())


class TorchvisionHead(nn.Module):
    """A torchvision `SSDHead`/`SSDLiteHead` returning a tuple instead of a dict."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """feature maps -> (box_regression [B, A, 4], class_logits [B, A, C])."""
        out = self.head(features)
        return out["bbox_regression"], out["cls_logits"]


def from_torchvision(model: tvd.SSD, input_size: tuple[int, int] | None = None) -> SSD:
    """Our `SSD` sharing the modules (and weights) of a torchvision SSD, in eval mode.

    Args:
        input_size: (H, W) to run it at, its default boxes laid out for that size (default:
            the size the torchvision model resizes to).
    """
    transform = model.transform
    if input_size is None:
        if transform.fixed_size is None:
            raise ValueError("torchvision SSD without a fixed input size")
        input_size = (int(transform.fixed_size[0]), int(transform.fixed_size[1]))
    sizes = feature_map_sizes(model.backbone, input_size)
    coder = model.box_coder
    ssd = SSD(
        backbone=TorchvisionBackbone(model.backbone),
        head=TorchvisionHead(model.head),
        anchors=torchvision_default_boxes(model.anchor_generator, sizes, input_size),
        box_coder=BoxCoder(coder.weights, yx_order=False, clamp=coder.bbox_xform_clip),
        input_size=input_size,
        # torchvision normalises 0..1 images; ours are 0..255.
        mean=[255.0 * m for m in transform.image_mean],
        std=[255.0 * s for s in transform.image_std],
        score_fn="softmax",
        background_class=0,
    )
    return ssd.eval()


COCO_WEIGHTS: dict[str, Any] = {
    "ssd300_vgg16": tvd.SSD300_VGG16_Weights.COCO_V1,
    "ssdlite320_mobilenet_v3_large": tvd.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
}
"""The torchvision weights `weights: default` downloads, by registered model name."""
BUILDERS: dict[str, Callable[..., tvd.SSD]] = {
    "ssd300_vgg16": tvd.ssd300_vgg16,
    "ssdlite320_mobilenet_v3_large": tvd.ssdlite320_mobilenet_v3_large,
}
"""torchvision's model function of each registered model name."""


def torchvision_ssd(
    arch: str,
    num_classes: int,
    state: Mapping[str, Tensor] | None = None,
    source: str = "",
    input_size: tuple[int, int] | None = None,
) -> SSD:
    """torchvision's `arch` (a key of `BUILDERS`) with `num_classes` columns as our `SSD`.

    Args:
        state: a state dict of the torchvision model (from `source`) to load; None keeps
            torchvision's random initialisation.
        input_size: (H, W) to run it at (default: torchvision's size for it).
    """
    # No backbone weights either: the full state dict (if any) replaces them all.
    model = BUILDERS[arch](weights=None, weights_backbone=None, num_classes=num_classes)
    if state is not None:
        load_checked(model, state, source, arch)
    return from_torchvision(model, input_size)


def coco_ssd(arch: str, state: Mapping[str, Tensor] | None, source: str) -> SSD:
    """`torchvision_ssd` with the 91 columns of `arch`'s COCO weights."""
    return torchvision_ssd(arch, len(COCO_WEIGHTS[arch].meta["categories"]), state, source)


def _build(arch: str, weights: str) -> tuple[SSD, LabelMap]:
    """Build `arch` with weights "default" (COCO, downloaded), "none" (random) or a path."""
    coco_weights = COCO_WEIGHTS[arch]
    labels = LabelMap(tuple(coco_weights.meta["categories"]))
    choice = weights.strip()
    if choice.lower() == "default":
        return coco_ssd(arch, download_state_dict(coco_weights.url, arch), coco_weights.url), labels
    if choice.lower() == "none":
        return coco_ssd(arch, None, ""), labels
    return coco_ssd(arch, read_state_dict(choice), choice), labels


def pending_download(arch: str, weights: str) -> str | None:
    """The URL that building `arch` with `weights` would download first: its COCO weights,
    asked for ("default") and not in the torch hub cache yet; None when nothing is."""
    coco = COCO_WEIGHTS.get(arch)
    if coco is None or weights.strip().lower() != "default":
        return None
    url: str = coco.url
    return None if hub_cache_file(url).is_file() else url


def ssd300_vgg16(weights: str) -> tuple[SSD, LabelMap]:
    """torchvision SSD300 with a VGG16 backbone (COCO, 91 columns incl. background)."""
    return _build("ssd300_vgg16", weights)


def ssdlite320_mobilenet_v3_large(weights: str) -> tuple[SSD, LabelMap]:
    """torchvision SSDLite320 with a MobileNetV3-Large backbone (COCO, 91 columns)."""
    return _build("ssdlite320_mobilenet_v3_large", weights)
