"""The warning that a detector's network gave boxes or scores that are not numbers."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class NonFiniteWarning:
    """Logs, the first time only, that `model` produced NaN or infinite boxes or scores.

    Post-processing drops them (`BatchDetections.non_finite` counts them among all of a
    batch's anchors and classes, not only its candidates); a network that gives them (a
    checkpoint whose training diverged, an overflow in half precision) gives them on every
    frame, so the user is told once per detector, not per batch.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._said = False
        self._lock = threading.Lock()  # a detector's worker threads post-process at once

    def note(self, dropped: int) -> None:
        """Hears that a batch's outputs held `dropped` (box, class) pairs that are not finite."""
        if dropped == 0 or self._said:
            return
        with self._lock:
            if self._said:
                return
            self._said = True
        log.warning(
            "model %s produced %d boxes with non-finite coordinates or scores (NaN or "
            "infinity); they were dropped, as any later ones will be (said once)",
            self.model,
            dropped,
        )
