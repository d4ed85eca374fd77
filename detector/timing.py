"""Seconds the detector spends per stage, added up over batches (for benchmarks)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch


@dataclass
class StageTimes:
    """Seconds `Detector.detect` spent per stage, added up over batches.

    `postprocess_s` is counted where post-processing runs: in `PendingDetections.result` on
    CUDA; on the CPU in `Detector.submit`, plus the unpacking in `result`. On CUDA, while
    stage times are asked for, `submit` synchronises the device after preparing and after
    the forward pass, so the figures are honest but the overlap between host and device
    work, and between batches, is lost while they are being measured.
    """

    batches: int = 0
    images: int = 0
    prepare_s: float = 0.0
    forward_s: float = 0.0
    postprocess_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held while adding: with `workers` > 1 batches are timed on several threads."""

    def add(self, stage: str, seconds: float) -> None:
        """Adds `seconds` to `stage` ("prepare_s", "forward_s" or "postprocess_s")."""
        with self.lock:
            setattr(self, stage, getattr(self, stage) + seconds)


class StageClock:
    """Adds lap times to a `StageTimes`; does nothing (no sync either) without one."""

    def __init__(self, times: StageTimes | None, device: torch.device) -> None:
        self.times = times
        self.device = device
        self.last = time.perf_counter() if times is not None else 0.0

    def lap(self, stage: str) -> None:
        """Adds the time since the last lap to `stage`; on CUDA once the device is done."""
        if self.times is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.times.add(stage, now - self.last)
        self.last = now

    def count(self, images: int) -> None:
        """Counts one batch of `images` images."""
        if self.times is not None:
            with self.times.lock:
                self.times.batches += 1
                self.times.images += images
