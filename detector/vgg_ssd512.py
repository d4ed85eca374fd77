"""The SSD paper's SSD512: a VGG16 backbone with seven feature maps (64x64 to 1x1), built
from torchvision's SSD parts and wrapped as our `SSD`.

torchvision ships SSD300 only. Its VGG feature extractor has a `highres` option for SSD512,
but its last three extra layers are SSD300's unpadded 3x3 convolutions (maps of 6x6, 4x4,
1x1); the paper's SSD512 (the authors' Caffe model) strides them to 4x4, 2x2 and 1x1, which
this module does. Default boxes are the paper's COCO settings for SSD512: scale 0.04 on
conv4_3, then 0.1 to 0.9, aspect ratios 2 (and 3 on the middle maps): 24,564 boxes.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import vgg
from torchvision.models.detection import ssd as tv_ssd
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

from detector.ssd import SSD
from detector.torchvision_models import from_torchvision

SIZE = 512
ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]]
SCALES = [0.04, 0.1, 0.26, 0.42, 0.58, 0.74, 0.9, 1.06]
"""Box scale per feature map, and one more for the last map's extra square box."""
STEPS = [8, 16, 32, 64, 128, 256, 512]
FEATURE_CHANNELS = [512, 1024, 512, 256, 256, 256, 256]
# The images VGG16's weights were trained on: 0..1 pixels minus these, times 255.
IMAGE_MEAN = [0.48235, 0.45882, 0.40784]
IMAGE_STD = [1.0 / 255.0] * 3


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional layers (`torchvision.models.vgg16().features`), initialised as
    torchvision initialises them, without its 120M-parameter classifier."""
    features = vgg.make_layers(vgg.cfgs["D"], batch_norm=False)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.constant_(module.bias, 0)
    return features


def _extra(kernel: int, stride: int, padding: int) -> nn.Sequential:
    """One of the paper's last extra layers: 1x1 conv 256 -> 128, then 128 -> 256."""
    layer = nn.Sequential(
        nn.Conv2d(256, 128, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(128, 256, kernel_size=kernel, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
    )
    for module in layer.modules():
        if isinstance(module, nn.Conv2d):  # as torchvision initialises its extra layers
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return layer


def ssd512_backbone(features: nn.Sequential) -> tv_ssd.SSDFeatureExtractorVGG:
    """torchvision's VGG feature extractor with the paper's SSD512 extra layers, on VGG16's
    convolutional layers `features` (changed in place, as torchvision does).

    Returns a module mapping images [B, 3, 512, 512] to 7 feature maps, 64x64 to 1x1.
    """
    body = tv_ssd.SSDFeatureExtractorVGG(features, highres=True)
    body.extra[3] = _extra(kernel=3, stride=2, padding=1)  # conv8_2: 4x4
    body.extra[4] = _extra(kernel=3, stride=2, padding=1)  # conv9_2: 2x2
    body.extra[5] = _extra(kernel=4, stride=1, padding=1)  # conv10_2: 1x1
    return body


def ssd512_vgg16(num_classes: int, features: nn.Sequential | None = None) -> SSD:
    """The paper's SSD512 with `num_classes` columns (background included), in eval mode.

    Args:
        features: VGG16's convolutional layers to start from (e.g. with ImageNet weights);
            default: randomly initialised ones. Everything else is initialised as
            torchvision initialises SSD300.
    """
    generator = DefaultBoxGenerator(ASPECT_RATIOS, scales=SCALES, steps=STEPS)
    head = tv_ssd.SSDHead(FEATURE_CHANNELS, generator.num_anchors_per_location(), num_classes)
    model = tv_ssd.SSD(
        ssd512_backbone(vgg16_features() if features is None else features),
        generator,
        (SIZE, SIZE),
        num_classes,
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
        head=head,
    )
    return from_torchvision(model)
