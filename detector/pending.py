"""The detections of a submitted batch, collected later (`Detector.submit`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future

from torch import Tensor

from detector.postprocess import unpack_detections
from detector.timing import StageTimes
from pipeline.types import Detections


class PendingDetections:
    """The detections of one submitted batch, possibly not computed yet.

    `rows` is the batch's `BatchDetections.packed` rows (float32 [N, PACKED_COLUMNS]) in host
    memory, or a function that computes them there: on CUDA `Detector.submit` hands over the
    post-processing of a batch whose forward pass is still on the device.
    """

    def __init__(
        self,
        rows: Tensor | Callable[[], Tensor],
        batch_size: int,
        times: StageTimes | None = None,
    ) -> None:
        self._rows = rows
        self._batch_size = batch_size
        self._times = times

    def result(self) -> list[Detections]:
        """One `Detections` per frame of the batch. On CUDA this post-processes the batch on
        the detector's side stream and waits for that stream only."""
        started = time.perf_counter()
        packed = self._rows() if callable(self._rows) else self._rows
        detections = unpack_detections(packed.numpy(), self._batch_size)
        if self._times is not None:
            self._times.add("postprocess_s", time.perf_counter() - started)
        return detections


class ConcurrentDetections:
    """The detections of a batch being detected on one of `Detector`'s worker threads."""

    def __init__(self, future: Future[list[Detections]]) -> None:
        self._future = future

    def result(self) -> list[Detections]:
        """One `Detections` per frame; waits for the worker, raises what it raised."""
        return self._future.result()
