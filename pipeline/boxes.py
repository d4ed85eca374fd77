"""Box geometry every stage shares: overlap of xyxy boxes and greedy one-to-one matching."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def greedy_assignment(pairs: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
    """(row, col) pairs taken greedily by descending score, each row and column once.

    `pairs` holds (-score, row, col) candidates, e.g. (-IoU, track, detection); ties go to
    the lower row, then the lower column. Returns the taken pairs in the order taken.
    """
    taken_rows: set[int] = set()
    taken_cols: set[int] = set()
    taken = []
    for _, row, col in sorted(pairs):
        if row not in taken_rows and col not in taken_cols:
            taken_rows.add(row)
            taken_cols.add(col)
            taken.append((row, col))
    return taken


def box_iou(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> FloatArray:
    """IoU of every box of `a` [N, 4] with every box of `b` [M, 4] (xyxy); float64 [N, M].

    Pairs of boxes without area get 0.
    """
    at, bt = a.T.copy(), b.T.copy()  # [4, N], [4, M]: faster small numpy calls
    lt = np.maximum(at[:2, :, None], bt[:2, None, :])  # [2, N, M]
    wh = np.minimum(at[2:, :, None], bt[2:, None, :])
    wh -= lt
    np.maximum(wh, 0.0, out=wh)
    inter = wh[0] * wh[1]
    size_a, size_b = at[2:] - at[:2], bt[2:] - bt[:2]
    union = (size_a[0] * size_a[1])[:, None] + size_b[0] * size_b[1]
    union -= inter
    return inter / np.maximum(union, 1e-9, out=union)
