"""The order images are seen in: a shuffle fixed by the seed and the epoch, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochOrder(Sampler[int]):
    """Indices 0..n-1 in the order of epoch `epoch` under `seed`, from position `start`.

    The same (seed, epoch) always gives the same order, so a run stopped after k images of
    an epoch resumes with exactly the images it had not seen yet.
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= n:
            raise ValueError(f"start {start} outside 0..{n}")
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def order(self) -> list[int]:
        """The whole epoch's order."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return [int(i) for i in torch.randperm(self.n, generator=generator)]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return self.n - self.start
