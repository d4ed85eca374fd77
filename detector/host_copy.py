"""Copying a batch of same-shaped frames into one host array on several threads.

On CUDA the detector's thread stacks each batch's full-size frames into pinned memory before
the upload (32 frames of 1080p: 200 MB); on one thread that copy bounds the frames/s a
many-core host can feed the GPU. numpy copies uint8 arrays without holding the GIL, so a few
threads copy a batch several times faster until memory bandwidth is the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import numpy.typing as npt

from pipeline.cores import cores_each

MAX_COPY_THREADS = 8
"""Threads beyond a few add nothing once the copy is bound by memory bandwidth."""


def copy_threads(sharing: int = 1) -> int:
    """Threads that copy a batch: one per core this process may use, itself one of `sharing`
    processes that share them (`cores_each`: a cluster's shards on one machine), at most
    `MAX_COPY_THREADS`."""
    return min(cores_each(sharing), MAX_COPY_THREADS)


class HostCopy:
    """Stacks same-shaped uint8 frames into a given array, `threads` at a time.

    With `threads` 1 there is no pool: `np.stack` runs on the calling thread. Otherwise the
    work is split by frame into `threads` parts, the calling thread copying one of them; a
    batch of fewer frames than threads is split by rows as well. `close` ends the pool.
    """

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._pool = (
            ThreadPoolExecutor(threads - 1, thread_name_prefix="host-copy") if threads > 1 else None
        )

    def stack(
        self, images: Sequence[npt.NDArray[np.uint8]], out: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.uint8]:
        """Fills `out` ([len(images), *shape]) as `np.stack(images, out=out)` would; returns it.

        Raises ValueError where an image's shape is not `out.shape[1:]` or their number is
        not `len(out)`: a slice copy would broadcast where `np.stack` refuses.
        """
        if len(images) != len(out) or any(image.shape != out.shape[1:] for image in images):
            shapes = sorted({image.shape for image in images})
            raise ValueError(
                f"cannot stack {len(images)} images of shapes {shapes} into {out.shape}"
            )
        if self._pool is None or not images:
            return np.stack(images, out=out)
        parts = _split(len(images), out.shape[1], self.threads)
        futures = [self._pool.submit(_copy, images, out, part) for part in parts[1:]]
        try:
            _copy(images, out, parts[0])
        finally:
            wait(futures)  # no thread goes on writing into `out` once this returns
        for future in futures:
            future.result()
        return out

    def close(self) -> None:
        """Ends the pool's threads (a copy after this fails)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


Piece = tuple[int, int, int]
"""(frame, first row, end row) of a piece of a batch."""


def _split(frames: int, rows: int, threads: int) -> list[list[Piece]]:
    """At most `threads` non-empty lists of pieces that together cover every row of every
    frame once, of near-equal rows each; a frame is cut into rows only when there are fewer
    frames than threads."""
    cuts = max(1, min(-(-threads // frames), rows))  # pieces per frame
    bounds = np.linspace(0, rows, cuts + 1).astype(int)
    pieces = [(i, int(bounds[c]), int(bounds[c + 1])) for i in range(frames) for c in range(cuts)]
    groups = np.array_split(np.arange(len(pieces)), min(threads, len(pieces)))
    return [[pieces[k] for k in group] for group in groups]


def _copy(
    images: Sequence[npt.NDArray[np.uint8]], out: npt.NDArray[np.uint8], part: list[Piece]
) -> None:
    for i, start, end in part:
        np.copyto(out[i, start:end], images[i][start:end])
