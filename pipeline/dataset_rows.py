"""What `dataset export` reads of a stored run from the SQL output's tables: the run, its boxes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, func, select

from pipeline.dataset_files import ExportRefused, StoredBox
from pipeline.types import LabelMap
from sinks.sql.models import Detection, Run
from sinks.sql.reading import label_in

ROWS_PER_QUERY = 500
"""Frames whose boxes one query reads: SQLite takes at most 999 values in an IN list in old
versions."""
RANGES_SHOWN = 8
"""Runs listed in "no such run" as ranges, e.g. "runs: 1-7, 9"; the rest are counted."""


@dataclass(frozen=True)
class StoredRun:
    """A `runs` row and what its detections name: cameras and labels, sorted."""

    id: int
    config: str
    cameras: tuple[str, ...]
    labels: tuple[str, ...]

    def categories(self, wanted: Sequence[str] | None) -> tuple[str, ...]:
        """The dataset's categories: the run's labels that `wanted` names (by the one label
        rule, `LabelMap.key`; each one must name one), else every label of the run; sorted,
        so that category ids (1, 2, ...) follow name order."""
        if wanted is None:
            return self.labels
        stored = {LabelMap.key(label) for label in self.labels}
        unknown = [label for label in wanted if LabelMap.key(label) not in stored]
        if unknown:
            raise ExportRefused(
                f"run {self.id} stored no detections labelled {', '.join(map(repr, unknown))} "
                f"(its labels: {', '.join(self.labels) or 'none'})"
            )
        keys = {LabelMap.key(label) for label in wanted}
        return tuple(label for label in self.labels if LabelMap.key(label) in keys)


class RunRows:
    """Reads one run's rows: the run, its frames with boxes, and their boxes."""

    def __init__(
        self,
        engine: Engine,
        run: int,
        labels: Sequence[str] | None = None,
        min_score: float | None = None,
    ) -> None:
        self.engine = engine
        self.run = run
        self.labels = labels
        self.min_score = min_score

    def stored_run(self) -> StoredRun:
        """The run; ExportRefused naming the runs there are when it is not stored."""
        with self.engine.connect() as conn:
            config = conn.scalar(select(Run.config).where(Run.id == self.run))
            if config is None:
                ids = list(conn.scalars(select(Run.id).order_by(Run.id)))
                there = f"runs: {id_ranges(ids)}" if ids else "it holds no runs yet"
                raise ExportRefused(f"run {self.run} is not in the database ({there})")
            mine = Detection.run_id == self.run
            cameras = conn.scalars(select(Detection.camera).where(mine).distinct())
            labels = conn.scalars(select(Detection.label).where(mine).distinct())
            return StoredRun(self.run, config, tuple(sorted(cameras)), tuple(sorted(labels)))

    def frames_with_boxes(self, camera: str) -> list[int]:
        """The camera's frames holding at least one kept box, in order."""
        stmt = self._kept(select(Detection.frame).distinct(), camera).order_by(Detection.frame)
        with self.engine.connect() as conn:
            return [int(f) for f in conn.scalars(stmt)]

    def last_frame(self, camera: str) -> int:
        """The camera's last frame with any stored box: how far the run got, as far as the
        database can tell (a run stopped early did not see the frames after)."""
        stmt = select(func.max(Detection.frame)).where(
            Detection.run_id == self.run, Detection.camera == camera
        )
        with self.engine.connect() as conn:
            return int(conn.scalar(stmt) or 0)

    def boxes(self, camera: str, frames: Sequence[int]) -> dict[int, list[StoredBox]]:
        """The kept boxes of `frames`, per frame, in the order the run stored them."""
        found: dict[int, list[StoredBox]] = {}
        columns: tuple[Any, ...] = (
            Detection.frame, Detection.label, Detection.score, Detection.x1, Detection.y1,
            Detection.x2, Detection.y2, Detection.track_id,
        )  # fmt: skip
        with self.engine.connect() as conn:
            for start in range(0, len(frames), ROWS_PER_QUERY):
                chunk = frames[start : start + ROWS_PER_QUERY]
                stmt = (
                    self._kept(select(*columns), camera)
                    .where(Detection.frame.in_(chunk))
                    .order_by(Detection.frame, Detection.obj, Detection.id)
                )
                for frame, *box in conn.execute(stmt):
                    found.setdefault(int(frame), []).append(StoredBox(*box))
        return found

    def _kept(self, stmt: Select[Any], camera: str) -> Select[Any]:
        """`stmt` narrowed to this run's camera and the kept labels and scores."""
        stmt = stmt.where(Detection.run_id == self.run, Detection.camera == camera)
        if self.labels is not None:
            stmt = stmt.where(label_in(Detection.label, self.labels))
        if self.min_score is not None:
            stmt = stmt.where(Detection.score >= self.min_score)
        return stmt


def id_ranges(ids: Iterable[int]) -> str:
    """Sorted ids as ranges: [1, 2, 3, 5] -> "1-3, 5"; past `RANGES_SHOWN` ranges, counted."""
    ranges: list[list[int]] = []
    for i in sorted(ids):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    shown = [f"{a}-{b}" if b > a else str(a) for a, b in ranges[:RANGES_SHOWN]]
    more = len(ranges) - RANGES_SHOWN
    return ", ".join(shown) + (f" and {more} more ranges" if more > 0 else "")
