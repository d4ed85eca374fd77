"""Motion gating: detect a camera's frame only when something moved since its last detected one.

The test is cheap enough for a camera's reader thread (well under a millisecond a frame):
every few pixels of the frame (about `MOTION_HEIGHT` rows), in grey, blurred, are compared
with the frame last detected; pixels that changed by more than `threshold` grey levels are
grown a little (dilated) to join the parts of one moving thing, and motion is a patch of
them covering at least `min_area` of the picture. A frame is detected anyway once
`max_skip_s` seconds of video have passed since the last one detected (whole), so an
object that stopped, or a scene that changed too slowly to show, is never missed for longer.

With a `RegionRule` (motion regions, pipeline/regions.py) the gate also says where: only
the parts of the frame around the patches of motion are detected, and the picture later
frames are compared with is updated in those parts only, so that slow change elsewhere
still adds up until it counts.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.regions import Box, RegionRule
from pipeline.types import Region

MOTION_HEIGHT = 120
"""About this many rows of the grey picture are compared (at least this many, every Nth row
and column of the frame, N a whole number: an even shrink costs a tenth of a resampling)."""
_BLUR = (5, 5)  # evens out sensor noise and compression blocks before differencing
_DILATE = np.ones((3, 3), np.uint8)
_DILATE_TIMES = 2


class MotionGate:
    """Whether to detect a camera's frame: something moved since the last frame detected,
    or that frame is `max_skip_s` seconds of video old (see the module)."""

    def __init__(
        self,
        threshold: int,
        min_area: float,
        max_skip_s: float,
        phase_s: float = 0.0,
        regions: RegionRule | None = None,
    ) -> None:
        if not 0 <= phase_s <= max_skip_s:
            raise ValueError(f"phase_s must be in [0, max_skip_s], got {phase_s}")
        self.threshold = threshold
        self.min_area = min_area
        self.max_skip_s = max_skip_s
        self.phase_s = phase_s
        """The first forced detection comes this much sooner: cameras that start together
        and watch still scenes then do not all force theirs at the same moment (a burst that
        every camera's latency would wait behind)."""
        self.regions = regions
        """None: frames are detected whole; else how the parts that moved become regions."""
        self._reference: npt.NDArray[np.uint8] | None = None
        self._reference_pts = 0.0

    def take(self, image: npt.NDArray[np.uint8], pts: float) -> bool:
        """True if the frame (`image` RGB, at `pts` seconds) is to be detected (see
        `choose`)."""
        return self.choose(image, pts) is not None

    def choose(self, image: npt.NDArray[np.uint8], pts: float) -> tuple[Region, ...] | None:
        """What of the frame (`image` RGB, at `pts` seconds) to detect: None, nothing; (),
        all of it; else only these regions (with `regions` set). What is detected becomes
        the picture later frames are compared with."""
        small = _small_grey(image)
        reference = self._reference
        if (
            reference is None
            or reference.shape != small.shape
            or not 0 <= pts - self._reference_pts < self.max_skip_s
        ):
            self._reference_pts = pts - (self.phase_s if reference is None else 0.0)
            self._reference = small
            return ()
        patches = self._patches(small, reference)
        if not patches:
            return None
        regions: tuple[Region, ...] = ()
        step = _step(image)
        if self.regions is not None:
            height, width = image.shape[:2]
            in_frame = [
                (x1 * step, y1 * step, min(x2 * step, width), min(y2 * step, height))
                for x1, y1, x2, y2 in patches
            ]
            regions = self.regions.regions(in_frame, width, height)
        if regions:
            # The whole frame is still due `max_skip_s` after it was last detected whole:
            # the parts outside the regions are as old as that.
            self._reference = _updated(reference, small, regions, step)
        else:
            self._reference, self._reference_pts = small, pts
        return regions

    def _patches(self, small: npt.NDArray[np.uint8], reference: npt.NDArray[np.uint8]) -> list[Box]:
        """The patches of motion (each at least `min_area` of the picture) from `reference`
        to `small`, in their pixels."""
        diff = cv2.absdiff(small, reference)
        _, changed = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        changed = cv2.dilate(changed, _DILATE, iterations=_DILATE_TIMES)
        _, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
        least = self.min_area * changed.size
        return [
            (int(x), int(y), int(x + w), int(y + h))
            for x, y, w, h, area in stats[1:]  # the first is the background
            if area >= least
        ]


def _updated(
    reference: npt.NDArray[np.uint8],
    small: npt.NDArray[np.uint8],
    regions: tuple[Region, ...],
    step: int,
) -> npt.NDArray[np.uint8]:
    """`reference` with the parts `regions` (frame pixels) cover taken from `small`."""
    out = reference.copy()
    for r in regions:
        rows = slice(r.y // step, -(-(r.y + r.height) // step))
        cols = slice(r.x // step, -(-(r.x + r.width) // step))
        out[rows, cols] = small[rows, cols]
    return out


def _step(image: npt.NDArray[np.uint8]) -> int:
    """N: every Nth row and column of `image` is compared (about `MOTION_HEIGHT` rows)."""
    return max(1, image.shape[0] // MOTION_HEIGHT)


def _small_grey(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Every Nth pixel of `image` (about `MOTION_HEIGHT` rows), grey and blurred."""
    step = _step(image)
    small = np.ascontiguousarray(image[::step, ::step])
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small
    return cv2.GaussianBlur(grey, _BLUR, 0)  # type: ignore[return-value]
