"""A decoded frame, and a rectangle of one (the regions motion gating detects on their
own); `check_image` is the one check of an RGB image, which snapshots share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_FRAME_PIXELS = 40_000_000
"""Largest frame a camera may have: 8K (8192x4320) and some. A source whose frames are
larger, as a file's header may claim, fails as it opens (`pipeline.sources`), and no
command makes such frames: its RGB image takes 3 bytes a pixel, and dozens of a camera's
frames wait in its queue and its sinks' queues at once."""


def frame_size_problem(width: int, height: int) -> str | None:
    """Why a camera may not have frames of `width` x `height` (over `MAX_FRAME_PIXELS`), in
    words that follow the source's name; None when it may."""
    if width * height <= MAX_FRAME_PIXELS:
        return None
    return (
        f"frames of {width}x{height} are more than a camera may have ({MAX_FRAME_PIXELS:,} "
        f"pixels, 8K and some): {width * height * 3 / 1e6:,.0f} MB each, and dozens wait in "
        "the queues at once"
    )


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        camera_id: id of the camera (from the config) the frame came from.
        index: 0-based position of the frame in its stream, counting every decoded frame.
        pts: presentation time in seconds from the start of the stream.
        wall_time: Unix time (seconds) at which the frame was decoded.
        image: RGB uint8 array, shape [H, W, 3].
        model_image: `image` already resized for the detector's network (RGB uint8
            [h, w, 3]), made on the camera's reader thread so that the detector's thread
            need not; None: the detector resizes `image` itself. Boxes are still in `image`'s
            pixels.
    """

    camera_id: str
    index: int
    pts: float
    wall_time: float
    image: npt.NDArray[np.uint8]
    model_image: npt.NDArray[np.uint8] | None = None

    def __post_init__(self) -> None:
        check_image("Frame.image", self.image)
        if self.model_image is not None:
            check_image("Frame.model_image", self.model_image)
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def nbytes(self) -> int:
        """The memory its pixels hold: `image`, and `model_image` if any."""
        model = self.model_image
        return self.image.nbytes + (0 if model is None else model.nbytes)

    def image_for(self, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
        """The pixels to resize to `size` (h, w) for a network: `model_image` where it has
        that size (made ahead for that network), else `image`."""
        if self.model_image is not None and self.model_image.shape[:2] == size:
            return self.model_image
        return self.image


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame detected on its own (motion regions): its top left corner
    (`x`, `y`) and size, in frame pixels."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0 or self.width < 1 or self.height < 1:
            raise ValueError(f"Region must lie at x, y >= 0 with a size >= 1, got {self}")

    @property
    def area(self) -> int:
        return self.width * self.height

    def crop(self, frame: Frame) -> Frame:
        """The region's pixels as a frame of their own (a view, not a copy)."""
        if self.x + self.width > frame.width or self.y + self.height > frame.height:
            raise ValueError(f"{self} is not inside a {frame.width}x{frame.height} frame")
        image = frame.image[self.y : self.y + self.height, self.x : self.x + self.width]
        return Frame(frame.camera_id, frame.index, frame.pts, frame.wall_time, image)

    def contains(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which boxes (x1, y1, x2, y2, frame pixels) lie wholly inside the region."""
        x2, y2 = self.x + self.width, self.y + self.height
        inside_x = (xyxy[:, 0] >= self.x) & (xyxy[:, 2] <= x2)
        return inside_x & (xyxy[:, 1] >= self.y) & (xyxy[:, 3] <= y2)


def check_image(name: str, img: object) -> None:
    """Raises unless `img` is an RGB uint8 array [H, W, 3]; `name`: what it is, e.g.
    "Frame.image"."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 numpy array, got {describe(img)}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must have shape [H, W, 3], got {list(img.shape)}")


def describe(value: object) -> str:
    """What `value` is, for an error message: an array's dtype and shape, else its type."""
    if isinstance(value, np.ndarray):
        return f"ndarray(dtype={value.dtype}, shape={list(value.shape)})"
    return type(value).__name__
