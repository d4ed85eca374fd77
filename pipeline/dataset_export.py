"""`dataset export`: the frames of a stored run and their detections, as a COCO dataset.

The detections come from the SQL output's tables (read by `pipeline.dataset_rows`); the
frames are decoded again from the camera's source, named in the config file the run recorded
(`runs.config`), with the same `Source` the run read it with, so that frame N here is the
run's frame N. The folder is written by `pipeline.dataset_files`; docs/training.md, "From
footage to a dataset", says what goes in and why.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError
from sqlalchemy import Engine

from pipeline.config import (
    CameraConfig,
    ConfigError,
    FileSourceConfig,
    ImagesSourceConfig,
    PipelineConfig,
    StreamSourceConfig,
    load_config,
)
from pipeline.config.cameras import CHECK_SOURCES
from pipeline.dataset_files import CocoDocument, DatasetFolder, ExportError, ExportRefused
from pipeline.dataset_rows import RunRows, StoredRun
from pipeline.folders import file_problem
from pipeline.readers import FramePicker
from pipeline.sources import SourceError
from pipeline.urls import mask_credentials
from sinks.sql.bounds import ID_MAX
from sinks.sql.database import DatabaseUrl
from sinks.sql.reading import QueryError, existing_database

__all__ = ["ExportError", "ExportRefused", "ExportRequest", "ExportSummary", "export_dataset"]

FROM_THE_RUN_FOLDER = "relative paths are to the folder the run ran in: export from there"

ProgressCallback = Callable[[str, int, int], None]
"""Called with (camera, frames decoded, frames to decode) as the export goes."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export: run `run` of database `db`, into folder `out`.

    `camera` None: every camera with detections. `labels` None: every label; `min_score`
    None: every score. `every`: keep every K-th candidate frame. `include_empty`: frames the
    run detected on without a (kept) box are candidates too. `source`: the camera's video
    or image folder, instead of the one in the run's config.
    """

    db: str
    run: int
    out: Path
    camera: str | None = None
    every: int = 1
    min_score: float | None = None
    labels: tuple[str, ...] | None = None
    include_empty: bool = False
    source: str | None = None


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    annotations_file: Path
    cameras: tuple[str, ...]
    images: int
    empty_images: int
    boxes: int
    categories: tuple[str, ...]


def export_dataset(
    request: ExportRequest, on_progress: ProgressCallback | None = None
) -> ExportSummary:
    """Write `request.out`/images/*.jpg, then `request.out`/annotations.json.

    Everything that can be checked before writing is (the run, the cameras, their sources,
    the labels, the folder). Raises ExportRefused or ExportError; when one is raised after
    writing began, no annotations.json is left in the folder.
    """
    if not 1 <= request.run <= ID_MAX:
        raise ExportRefused(f"a run id is from 1 to {ID_MAX}, got {request.run}")
    db = DatabaseUrl(request.db)
    try:
        with existing_database(db) as engine:
            return _export(engine, db, request, on_progress)
    except QueryError as exc:
        raise ExportError(str(exc)) from None


def _export(
    engine: Engine, db: DatabaseUrl, request: ExportRequest, on_progress: ProgressCallback | None
) -> ExportSummary:
    rows = RunRows(engine, request.run, request.labels, request.min_score)
    run = rows.stored_run()
    categories = run.categories(request.labels)
    cameras = CameraSources(run, request.source, request.include_empty).chosen(request.camera)
    folder = DatasetFolder(request.out)
    folder.prepare()
    from pipeline.build import make_motion_gate, make_sampler  # imports torch: only if needed

    document = CocoDocument(categories, description=f"run {run.id} of {db}")
    for camera in cameras:
        picker = None
        if request.include_empty:
            picker = FramePicker(make_sampler(camera), make_motion_gate(camera))
        last = rows.last_frame(camera.id) if request.include_empty else None
        chooser = FrameChooser(rows.frames_with_boxes(camera.id), request.every, picker, last)
        written = []
        for index, image in decode_chosen(camera, chooser, on_progress):
            height, width = image.shape[:2]
            written.append((index, width, height, folder.write_image(camera.id, index, image)))
        boxes = rows.boxes(camera.id, [index for index, *_ in written])
        for index, width, height, name in written:
            document.add_image(name, camera.id, index, width, height, boxes.get(index, []))
    path = folder.finish(document.as_dict())
    return ExportSummary(
        path,
        tuple(c.id for c in cameras),
        document.images,
        document.empty_images,
        document.boxes,
        categories,
    )


# ---------------------------------------------------------------------------- the sources


class CameraSources:
    """The cameras to export, each with the source its frames are decoded from: the one in
    the run's config file, or `source` (the `--source` option) for the one camera chosen.
    `sampled`: the cameras' `detect_every`/`max_fps`/`motion` are needed, so the config is
    too."""

    def __init__(self, run: StoredRun, source: str | None, sampled: bool = False) -> None:
        self.run = run
        self.source = source
        self.sampled = sampled

    def chosen(self, camera: str | None) -> list[CameraConfig]:
        """The cameras `camera` names (None: every camera of the run), checked: each one
        stored detections, reads a file or image folder, and its source is there."""
        if not self.run.cameras:
            raise ExportRefused(f"run {self.run.id} stored no detections: nothing to export")
        if camera is not None and camera not in self.run.cameras:
            raise ExportRefused(
                f"run {self.run.id} stored no detections of camera {camera!r} "
                f"(its cameras: {', '.join(self.run.cameras) or 'none'})"
            )
        ids = [camera] if camera is not None else list(self.run.cameras)
        if self.source is not None and len(ids) > 1:
            raise ExportRefused(
                "--source is the video of one camera: add --camera ID "
                f"(run {self.run.id} has cameras {', '.join(ids)})"
            )
        config = self._config()
        others = "; --camera ID exports one of the others" if len(ids) > 1 else ""
        cameras = []
        for camera_id in ids:
            configured = None
            if config is not None:
                configured = next((c for c in config.cameras if c.id == camera_id), None)
            if configured is not None and configured.live:  # no file holds its frames
                raise ExportRefused(_live(configured) + others)
            cam = self._with_source(camera_id, configured)
            if cam.live:
                raise ExportRefused(_live(cam))
            _check_there(cam, given=self.source is not None)
            cameras.append(cam)
        return cameras

    def _with_source(self, camera: str, configured: CameraConfig | None) -> CameraConfig:
        """The camera as configured, its source replaced by `--source` when given."""
        if self.source is None:
            if configured is None:
                raise ExportError(
                    f"camera {camera} is not in {self.run.config} any more: "
                    "pass --source PATH to point at its video"
                )
            return configured
        try:
            given = CameraConfig.model_validate(
                {"id": camera, "source": self.source}, context={CHECK_SOURCES: False}
            )
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ExportRefused(f"--source {self.source}: {reason}") from None
        if configured is None:
            return given
        # the camera's other settings (which frames it detected on, looping) still hold
        source = given.source
        if isinstance(configured.source, (FileSourceConfig, ImagesSourceConfig)) and isinstance(
            source, (FileSourceConfig, ImagesSourceConfig)
        ):
            source = source.model_copy(update={"loop": configured.source.loop})
        return configured.model_copy(update={"source": source})

    def _config(self) -> PipelineConfig | None:
        """The run's config as its file is now; None when it cannot be read and `--source`
        stands in for it."""
        if not self.run.config:
            problem = f"run {self.run.id} recorded no config file"
        else:
            try:
                return load_config(self.run.config, check_sources=False)
            except ConfigError as exc:
                more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
                problem = f"cannot use run {self.run.id}'s config {exc.source}: "
                problem += exc.problems[0] + more
        if self.source is not None and not self.sampled:
            return None
        if self.source is None:
            hint = "pass --camera ID --source PATH to name the video"
        else:
            hint = "--include-empty needs it, to know which frames the run detected on"
        if self.run.config and not Path(self.run.config).is_absolute():
            hint += f"; {FROM_THE_RUN_FOLDER}"
        raise ExportError(f"{problem}; {hint}")


def _live(camera: CameraConfig) -> str:
    """Why a live camera cannot be exported."""
    source = camera.source
    where = source.url if isinstance(source, StreamSourceConfig) else source.path
    return (
        f"camera {camera.id} reads a live source ({mask_credentials(where)}): "
        "its frames were not kept, so they cannot be exported"
    )


def _check_there(camera: CameraConfig, *, given: bool) -> None:
    """Fails when the camera's file or image folder is not there, saying how to point at
    it."""
    path = camera.source.path  # type: ignore[union-attr]  # not live: a file or images
    if isinstance(camera.source, FileSourceConfig):
        problem = file_problem(Path(path))
    else:
        there = Path(path).is_dir() or any(glob.iglob(path))
        problem = None if there else "names no folder, and no file matches"
    if problem is None:
        return
    if given:
        raise ExportError(f"--source {path} {problem}")
    hint = "pass --source PATH to point at it"
    if not Path(path).is_absolute():
        hint = f"{FROM_THE_RUN_FOLDER}, or {hint}"
    raise ExportError(f"camera {camera.id}'s video {path} is not there; {hint}")


# ---------------------------------------------------------------------------- the frames


class FrameChooser:
    """Which of one camera's frames go into the dataset, decided as they are decoded.

    Candidates are the frames with a kept box, and, given the run's `picker` (the camera's
    `detect_every`/`max_fps`/`motion`), the frames it detected on up to frame `last`; every
    `every`-th candidate is taken, the first included.
    """

    def __init__(
        self,
        boxed: Iterable[int],
        every: int,
        picker: FramePicker | None = None,
        last: int | None = None,
    ) -> None:
        self.boxed = frozenset(boxed)
        self.every = every
        self.picker = picker
        self.last = max([-1 if last is None else last, *self.boxed])
        self._candidates = 0

    def take(self, index: int, pts: float, image: npt.NDArray[np.uint8]) -> bool:
        """Whether frame `index` (`image`, at `pts` seconds) goes in; called for every frame
        in order (the picker counts them, and its motion gate compares them)."""
        detected = self.picker is not None and self.picker.take(image, pts)
        if index not in self.boxed and not (detected and index <= self.last):
            return False
        self._candidates += 1
        return (self._candidates - 1) % self.every == 0


def decode_chosen(
    camera: CameraConfig, chooser: FrameChooser, on_progress: ProgressCallback | None = None
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """(index, RGB image [H, W, 3]) of the frames `chooser` takes, decoded as the run's
    reader decoded them: frame N is the N-th frame the source yields, from 0.

    A looping camera is read once: its later passes were the same pictures. Raises
    ExportError when the source cannot be read, or ends before the frames the run stored
    (a different video)."""
    from pipeline.build import make_source  # imports torch: only once there is work to do

    source = make_source(camera.source)
    total = chooser.last + 1
    decoded = 0
    try:
        source.open()
        for index, raw in enumerate(source.frames()):
            if index >= total:
                break
            decoded = index + 1
            if on_progress is not None:
                on_progress(camera.id, decoded, total)
            if chooser.take(index, raw.pts, raw.image):
                yield index, raw.image
    except SourceError as exc:
        raise ExportError(f"camera {camera.id}: {exc}") from None
    finally:
        source.close()
    looped = getattr(camera.source, "loop", False)
    if decoded < total and not looped:
        raise ExportError(
            f"camera {camera.id}: {source.name} has {decoded} frames, but the run stored "
            f"detections up to frame {total - 1}: is it the video the run read?"
        )
