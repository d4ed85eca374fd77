"""Tracker benchmark input: ground-truth sequences and the detector-like noise put on them.

Ground truth of TUD-Campus and TUD-Stadtmitte ships inside py-motmetrics; `NoiseModel`
turns it into seeded detections, and `tiled` widens a sequence for the crowd timings of
benchmarks/tracking.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sequence:
    """A ground-truth sequence: `gt` is float64 [N, 6] (frame, id, x1, y1, x2, y2)."""

    name: str
    gt: Array
    frames: int
    width: int
    height: int
    fps: float


# Image size and frame rate of the MOT15 sequences whose annotations motmetrics ships.
SEQUENCES = {"TUD-Campus": (640, 480, 25.0), "TUD-Stadtmitte": (640, 480, 25.0)}


def load_sequences() -> list[Sequence]:
    """The TUD sequences from motmetrics' package data (MOT format, boxes as x, y, w, h)."""
    import motmetrics

    root = Path(motmetrics.__file__).parent / "data"
    out = []
    for name, (width, height, fps) in SEQUENCES.items():
        raw = np.loadtxt(root / name / "gt.txt", delimiter=",", ndmin=2)
        gt = np.column_stack(
            [
                raw[:, 0],
                raw[:, 1],
                raw[:, 2],
                raw[:, 3],
                raw[:, 2] + raw[:, 4],
                raw[:, 3] + raw[:, 5],
            ]
        )
        out.append(Sequence(name, gt, int(raw[:, 0].max()), width, height, fps))
    return out


@dataclass(frozen=True)
class NoiseModel:
    """How ground truth becomes detector output; every draw comes from one seeded generator.

    Per ground-truth box: dropped in a burst (each person starts a burst of `burst_len`
    consecutive missed frames with probability `burst_rate` per frame), else dropped with
    probability `miss`; a kept box has each edge moved by a normal draw with standard
    deviation `jitter` × the box's width (x1, x2) or height (y1, y2), and a score drawn
    from N(`tp_score`) clipped to [0, 1]. Per frame: Poisson(`fp_rate`) false positives,
    each the size of a random ground-truth box of the sequence, placed uniformly in the
    image, scoring uniformly in `fp_score`. Boxes scoring below `score_floor` are dropped
    (the detector's own threshold).
    """

    jitter: float = 0.05
    miss: float = 0.10
    burst_rate: float = 0.02
    burst_len: tuple[int, int] = (3, 10)
    fp_rate: float = 1.0
    tp_score: tuple[float, float] = (0.7, 0.15)
    fp_score: tuple[float, float] = (0.1, 0.7)
    score_floor: float = 0.1

    def describe(self) -> str:
        return (
            f"jitter {self.jitter:.0%} of box size per edge; misses {self.miss:.0%} "
            f"independent + bursts of {self.burst_len[0]}-{self.burst_len[1]} frames "
            f"starting at {self.burst_rate:.0%}/frame/person; {self.fp_rate:g} false "
            f"positive(s)/frame; scores: true N{self.tp_score}, false U{self.fp_score}, "
            f"floor {self.score_floor}"
        )

    def apply(self, seq: Sequence, seed: int) -> Array:
        """Detections float64 [K, 6] (frame, x1, y1, x2, y2, score), sorted by frame."""
        rng = np.random.default_rng(seed)
        gt = seq.gt[np.lexsort((seq.gt[:, 0], seq.gt[:, 1]))]  # by person, then frame
        in_burst = np.zeros(len(gt), dtype=bool)
        burst_left = 0
        for k in range(len(gt)):
            if k > 0 and gt[k, 1] != gt[k - 1, 1]:
                burst_left = 0
            if burst_left == 0 and rng.random() < self.burst_rate:
                burst_left = int(rng.integers(self.burst_len[0], self.burst_len[1] + 1))
            if burst_left > 0:
                in_burst[k] = True
                burst_left -= 1
        kept = ~in_burst & (rng.random(len(gt)) >= self.miss)
        boxes = gt[kept, 2:6].copy()
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        boxes += rng.normal(0.0, self.jitter, boxes.shape) * np.column_stack([w, h, w, h])
        # A jittered box keeps at least a pixel of width and height.
        boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0] + 1)
        boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1] + 1)
        scores = np.clip(rng.normal(*self.tp_score, len(boxes)), 0.0, 1.0)
        true = np.column_stack([gt[kept, 0], boxes, scores])

        counts = rng.poisson(self.fp_rate, seq.frames)
        n = int(counts.sum())
        frames = np.repeat(np.arange(1, seq.frames + 1), counts)
        sizes = gt[rng.integers(0, len(gt), n), 2:6]
        fw = sizes[:, 2] - sizes[:, 0]
        fh = sizes[:, 3] - sizes[:, 1]
        x1 = rng.uniform(0, np.maximum(seq.width - fw, 1))
        y1 = rng.uniform(0, np.maximum(seq.height - fh, 1))
        fp_scores = rng.uniform(*self.fp_score, n)
        false = np.column_stack([frames, x1, y1, x1 + fw, y1 + fh, fp_scores])

        det = np.concatenate([true, false])
        det = det[det[:, 5] >= self.score_floor]
        return det[np.argsort(det[:, 0], kind="stable")]


def tiled(seq: Sequence, det: Array, copies: int) -> tuple[Sequence, Array]:
    """`copies` copies of a sequence side by side: as many times the people per frame."""
    shift = np.arange(copies)[:, None] * seq.width
    gt = np.concatenate([seq.gt + s * np.array([0, 0, 1, 0, 1, 0]) for s in shift[:, 0]])
    gt[:, 1] += np.repeat(np.arange(copies), len(seq.gt)) * 100_000
    boxes = np.concatenate([det + s * np.array([0, 1, 0, 1, 0, 0]) for s in shift[:, 0]])
    order = np.argsort(boxes[:, 0], kind="stable")
    wide = Sequence(
        f"{seq.name} ×{copies}", gt, seq.frames, seq.width * copies, seq.height, seq.fps
    )
    return wide, boxes[order]
