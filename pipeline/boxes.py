"""Geometry every stage shares: overlap of xyxy boxes, greedy one-to-one matching, and
where points stand with respect to zones (polygons) and lines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


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


# Zones and lines. Plain numpy, vectorised over points: OpenCV's pointPolygonTest takes one
# point per call (a Python loop per box and zone) and shapely would be a dependency for what
# is a few lines here.


def anchor_points(xyxy: npt.NDArray[np.floating], fx: float, fy: float) -> FloatArray:
    """The point at fractions (`fx`, `fy`) of each box's width and height, from its top
    left; float64 [N, 2]. (0.5, 1.0) is the bottom centre."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    x = boxes[:, 0] + fx * (boxes[:, 2] - boxes[:, 0])
    y = boxes[:, 1] + fy * (boxes[:, 3] - boxes[:, 1])
    return np.stack([x, y], axis=1)


def polygon_edges(polygons: Sequence[npt.NDArray[np.floating]]) -> tuple[FloatArray, IntArray]:
    """The edges of `polygons` (each [M, 2]) as one float64 [E, 4] array of (x1, y1, x2, y2),
    and the index of each polygon's first edge: what `points_in_polygons` takes, made once."""
    edges = []
    for polygon in polygons:
        poly = np.asarray(polygon, np.float64).reshape(-1, 2)
        edges.append(np.concatenate([poly, np.roll(poly, -1, axis=0)], axis=1))
    if not edges:
        return np.zeros((0, 4)), np.zeros(0, np.intp)
    starts = np.cumsum([0] + [len(e) for e in edges[:-1]]).astype(np.intp)
    return np.concatenate(edges), starts


def points_in_polygons(
    points: npt.NDArray[np.floating], edges: FloatArray, starts: IntArray
) -> npt.NDArray[np.bool_]:
    """Which of `points` [N, 2] lie inside each polygon of `polygon_edges`; bool [N, P].

    The even-odd rule, counting the edges a ray from the point to +x crosses, for every
    point and polygon in one pass. A point exactly on an edge may fall either way.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(starts) == 0 or len(pts) == 0:
        return np.zeros((len(pts), len(starts)), np.bool_)
    px, py = pts[:, 0:1], pts[:, 1:2]  # [N, 1]
    x1, y1, x2, y2 = edges.T  # [E] each
    straddles = (y1 > py) != (y2 > py)  # [N, E]: the edge spans the point's height
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
    crossings = (straddles & (px < x_at)).astype(np.intp)
    return np.asarray(np.add.reduceat(crossings, starts, axis=1) % 2 == 1)


def points_in_polygon(
    points: npt.NDArray[np.floating], polygon: npt.NDArray[np.floating]
) -> npt.NDArray[np.bool_]:
    """Which of `points` [N, 2] lie inside `polygon` [M, 2]; bool [N] (`points_in_polygons`)."""
    return points_in_polygons(points, *polygon_edges([polygon]))[:, 0]


def distances_to_lines(points: npt.NDArray[np.floating], lines: FloatArray) -> FloatArray:
    """Signed distance in pixels of each of `points` [N, 2] from each line through
    (ax, ay) and (bx, by) of `lines` [L, 4]; float64 [N, L]. Positive on the right as seen
    on the screen walking from a to b (image y grows downwards), negative on the left."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    ax, ay, bx, by = np.asarray(lines, np.float64).reshape(-1, 4).T
    dx, dy = bx - ax, by - ay
    cross = dx * (pts[:, 1:2] - ay) - dy * (pts[:, 0:1] - ax)
    return np.asarray(cross / np.maximum(np.hypot(dx, dy), 1e-12))


def side_of_line(
    points: npt.NDArray[np.floating], a: tuple[float, float], b: tuple[float, float]
) -> FloatArray:
    """`distances_to_lines` of `points` [N, 2] from the one line from `a` to `b`; [N]."""
    return distances_to_lines(points, np.array([[a[0], a[1], b[0], b[1]]]))[:, 0]


def crossing_position(
    p: tuple[float, float], q: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    """Where the step from `p` to `q` meets the line through `a` and `b`, as a fraction of
    the way from `a` (0) to `b` (1); NaN when the step is parallel to the line."""
    # p + t*r = a + u*s  =>  u = ((p - a) x r) / (s x r), x the 2D cross product
    rx, ry = q[0] - p[0], q[1] - p[1]
    sx, sy = b[0] - a[0], b[1] - a[1]
    denom = sx * ry - sy * rx
    if denom == 0:
        return float("nan")
    return ((p[0] - a[0]) * ry - (p[1] - a[1]) * rx) / denom


def polygon_area(polygon: npt.NDArray[np.floating]) -> float:
    """Area of a simple polygon [M, 2] (shoelace formula), always >= 0."""
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = poly[:, 0], poly[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def polygon_is_simple(polygon: npt.NDArray[np.floating]) -> bool:
    """Whether no two edges of `polygon` [M, 2] cross or touch, but neighbours at their
    shared corner (a figure-eight is not simple)."""
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    m = len(poly)
    a, b = poly, np.roll(poly, -1, axis=0)  # edge k runs from a[k] to b[k]
    # Every edge i against every later edge j, a block of rows at a time: a polygon of many
    # corners stays within a bounded number of pairs in memory, and few pairs are computed
    # twice or for nothing (j <= i + 1).
    rows = max(1, min(_PAIRS_PER_BLOCK // max(m, 1), 128))
    for first in range(0, m, rows):
        i = np.arange(first, min(first + rows, m))[:, None]  # [R, 1]
        j = np.arange(first + 2, m)[None, :]  # [1, C]
        pairs = (j > i + 1) & ~((i == 0) & (j == m - 1))  # later edges, neighbours skipped
        if pairs.any() and (_segments_touch(a[i], b[i], a[j], b[j]) & pairs).any():
            return False
    return True


_PAIRS_PER_BLOCK = 2_000_000


def _segments_touch(
    p1: FloatArray, p2: FloatArray, p3: FloatArray, p4: FloatArray
) -> npt.NDArray[np.bool_]:
    """Whether segment p1-p2 crosses or touches segment p3-p4, for broadcast arrays of points
    [..., 2]: a proper crossing, or an end of one lying on the other."""

    def orient(a: FloatArray, b: FloatArray, c: FloatArray) -> FloatArray:
        return np.asarray(
            (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        )

    def between(lo: FloatArray, hi: FloatArray, v: FloatArray) -> npt.NDArray[np.bool_]:
        # Python's min/max order (the first unless the second is strictly smaller/larger),
        # so that a NaN coordinate gets the answer it always got.
        low, high = np.where(hi < lo, hi, lo), np.where(hi > lo, hi, lo)
        return np.asarray((low <= v) & (v <= high))

    def on(a: FloatArray, b: FloatArray, c: FloatArray) -> npt.NDArray[np.bool_]:
        return between(a[..., 0], b[..., 0], c[..., 0]) & between(a[..., 1], b[..., 1], c[..., 1])

    d1, d2 = orient(p3, p4, p1), orient(p3, p4, p2)
    d3, d4 = orient(p1, p2, p3), orient(p1, p2, p4)
    crossing = ((d1 > 0) != (d2 > 0)) & ((d3 > 0) != (d4 > 0))
    crossing &= (d1 != 0) & (d2 != 0) & (d3 != 0) & (d4 != 0)
    return np.asarray(
        crossing
        | ((d1 == 0) & on(p3, p4, p1))
        | ((d2 == 0) & on(p3, p4, p2))
        | ((d3 == 0) & on(p1, p2, p3))
        | ((d4 == 0) & on(p1, p2, p4))
    )
