"""Motion gating: detect a camera's frame only when something moved since its last detected one.

The test is cheap enough for a camera's reader thread (well under a millisecond a frame):
every few pixels of the frame (about `MOTION_HEIGHT` rows), in grey, blurred, are compared
with the frame last detected; pixels that changed by more than `threshold` grey levels are
grown a little (dilated) to join the parts of one moving thing, and motion is a patch of
them covering at least `min_area` of the picture. A frame is detected anyway once
`max_skip_s` seconds of video have passed since the last detected one, so an object that
stopped, or a scene that changed too slowly to show, is never missed for longer.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

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
        self, threshold: int, min_area: float, max_skip_s: float, phase_s: float = 0.0
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
        self._reference: npt.NDArray[np.uint8] | None = None
        self._reference_pts = 0.0

    def take(self, image: npt.NDArray[np.uint8], pts: float) -> bool:
        """True if the frame (`image` RGB, at `pts` seconds) is to be detected; it then
        becomes the picture later frames are compared with."""
        small = _small_grey(image)
        due = (
            self._reference is None
            or self._reference.shape != small.shape
            or not 0 <= pts - self._reference_pts < self.max_skip_s
        )
        if due:
            self._reference_pts = pts - (self.phase_s if self._reference is None else 0.0)
            self._reference = small
            return True
        if self._moved(small):
            self._reference, self._reference_pts = small, pts
            return True
        return False

    def _moved(self, small: npt.NDArray[np.uint8]) -> bool:
        assert self._reference is not None
        diff = cv2.absdiff(small, self._reference)
        _, changed = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        changed = cv2.dilate(changed, _DILATE, iterations=_DILATE_TIMES)
        count, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
        if count < 2:  # the background only
            return False
        largest = int(stats[1:, cv2.CC_STAT_AREA].max())
        return largest >= self.min_area * changed.size


def _small_grey(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Every Nth pixel of `image` (about `MOTION_HEIGHT` rows), grey and blurred."""
    step = max(1, image.shape[0] // MOTION_HEIGHT)
    small = np.ascontiguousarray(image[::step, ::step])
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small
    return cv2.GaussianBlur(grey, _BLUR, 0)  # type: ignore[return-value]
