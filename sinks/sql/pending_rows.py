"""Rows waiting to be handed to the SQL writer: a detection row per box, a track row per
ended track, and the zone visit and line crossing rows (`sinks.sql.scene_rows`), gathered
from results until a batch is due, then taken as `RowBatch`es."""

from __future__ import annotations

from typing import Any

from pipeline.types import AnalyticsEvent, FrameResult, LabelMap, StreamEnd, TrackEvent
from sinks.sql.scene_rows import scene_rows
from sinks.sql.spool import RowBatch, Table


class PendingRows:
    """The rows of one run not handed to the writer yet.

    A hand-off is due (`is_due`) once `batch_size` detection rows wait, or the oldest row
    has waited `flush_interval_s`; detections are then taken `batch_size` at a time.
    """

    def __init__(
        self, run_id: int, labels: LabelMap, *, batch_size: int, flush_interval_s: float
    ) -> None:
        self._run_id = run_id
        self._labels = labels
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._detections: list[dict[str, Any]] = []
        self._tracks: list[dict[str, Any]] = []
        self._visits: list[dict[str, Any]] = []
        self._crossings: list[dict[str, Any]] = []
        self._oldest: float | None = None

    def add(self, result: FrameResult, now: float) -> None:
        """The rows of a frame's boxes, its ended tracks and what its zones and lines saw;
        `now` (monotonic seconds) starts the flush interval when nothing waited before."""
        frame, dets = result.frame, result.detections
        for obj, ((x1, y1, x2, y2), score, label, track_id) in enumerate(
            zip(
                dets.xyxy.tolist(),
                dets.score.tolist(),
                dets.label.tolist(),
                dets.track_id.tolist(),
                strict=True,
            )
        ):
            self._detections.append(
                {
                    "run_id": self._run_id,
                    "camera": frame.camera_id,
                    "frame": int(frame.index),
                    "obj": obj,
                    "pts": float(frame.pts),
                    "time": float(frame.wall_time),
                    "label": self._labels.name(label),
                    "label_id": label,
                    "score": score,
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                    "track_id": None if track_id < 0 else track_id,
                }
            )
        self._add_tracks(result.track_events)
        if result.analytics:
            self._add_scene(result.analytics)
        if self._oldest is None and self._waiting():
            self._oldest = now

    def add_end(self, stream_end: StreamEnd) -> None:
        """The rows of the tracks and zone visits a stream's end closed."""
        self._add_tracks(stream_end.track_events)
        self._add_scene(stream_end.analytics)

    def add_tracks(self, events: tuple[TrackEvent, ...]) -> None:
        """The rows of the tracks among `events` that ended (held events, between frames)."""
        self._add_tracks(events)

    def is_due(self, now: float) -> bool:
        """Whether a hand-off is due at `now`: a batch of detections waits, or the oldest
        row has waited `flush_interval_s`."""
        if len(self._detections) >= self._batch_size:
            return True
        return self._oldest is not None and self._oldest + self._flush_interval_s <= now

    def take(self) -> list[RowBatch]:
        """Every waiting row, as batches (detections `batch_size` at a time); none wait after."""
        size = self._batch_size
        batches = [
            RowBatch("detections", self._detections[start : start + size])
            for start in range(0, len(self._detections), size)
        ]
        others: tuple[tuple[Table, list[dict[str, Any]]], ...] = (
            ("tracks", self._tracks),
            ("zone_visits", self._visits),
            ("line_crossings", self._crossings),
        )
        for table, rows in others:
            if rows:
                batches.append(RowBatch(table, rows))
        self._detections, self._tracks, self._visits, self._crossings = [], [], [], []
        self._oldest = None
        return batches

    def _waiting(self) -> bool:
        return bool(self._detections or self._tracks or self._visits or self._crossings)

    def _add_scene(self, events: tuple[AnalyticsEvent, ...]) -> None:
        visits, crossings = scene_rows(self._run_id, events, self._labels)
        self._visits += visits
        self._crossings += crossings

    def _add_tracks(self, events: tuple[TrackEvent, ...]) -> None:
        for ev in events:
            if ev.kind != "ended":
                continue
            t, snapshot = ev.track, ev.snapshot
            bx1, by1, bx2, by2 = t.best_box
            lx1, ly1, lx2, ly2 = t.last_box
            self._tracks.append(
                {
                    "run_id": self._run_id,
                    "camera": t.camera_id,
                    "track_id": int(t.track_id),
                    "label": self._labels.name(int(t.label)),
                    "label_id": int(t.label),
                    "first_frame": int(t.first_frame),
                    "last_frame": int(t.last_frame),
                    "first_time": float(t.first_time),
                    "last_time": float(t.last_time),
                    "frames": int(t.frames),
                    "best_score": float(t.best_score),
                    "best_x1": float(bx1),
                    "best_y1": float(by1),
                    "best_x2": float(bx2),
                    "best_y2": float(by2),
                    "last_x1": float(lx1),
                    "last_y1": float(ly1),
                    "last_x2": float(lx2),
                    "last_y2": float(ly2),
                    "snapshot_path": None if snapshot is None else snapshot.stored_paths[0],
                    "snapshot_frame_path": (None if snapshot is None else snapshot.stored_paths[1]),
                }
            )
