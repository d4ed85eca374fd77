"""The one resize of frames to the network's input on the CPU, shared by every CPU path
(torch, ONNX Runtime, the cached ONNX network, int8 calibration) so that they feed the
network the same pixels and find the same boxes."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def resize_rgb(image: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """`image` (uint8 [H, W, 3]) resized to `size` (h, w): uint8 [h, w, 3], bilinear with
    half-pixel centres and no antialiasing, as torchvision's SSD transform resizes (OpenCV's
    uint8 kernel: within a grey level of it, and several times faster than torch's)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(resized, dtype=np.uint8)  # no copy: OpenCV returns uint8 for uint8
