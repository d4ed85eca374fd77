"""Random-weight models for tests whose outputs depend on the image."""

from __future__ import annotations

import torch
from torchvision.models import detection as tvd


def calibrated_ssdlite(seed: int) -> tvd.SSD:
    """Random SSDLite320 with batch-norm statistics measured on noise images.

    With the initial statistics, random features collapse and every box gets the same
    scores; calibrated, scores depend on the image, so ties do not hide ordering bugs.
    """
    torch.manual_seed(seed)
    model = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # plain average over the calibration batch
    model.train()
    with torch.no_grad():
        features = model.backbone(torch.rand(2, 3, 160, 160) * 2 - 1)
        model.head(list(features.values()))
    return model.eval()
