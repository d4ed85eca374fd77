"""The files of an exported dataset: JPEG frames in DIR/images/ and DIR/annotations.json (COCO
object detection), written in the order that keeps the folder usable when an export stops
half-way: the previous annotations first removed, the images written, the new annotations
put in place last (a temporary file renamed over it), the images no longer listed removed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from detector.training.samples import EXPORTED_ANNOTATIONS
from sinks.disk import write_failure

ANNOTATIONS = EXPORTED_ANNOTATIONS
IMAGES = "images"
JPEG_QUALITY = 95
"""High enough that the boxes' edges look as the model saw them; a 640x480 frame is ~60 KB."""
EXPORTED_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*_\d{6,}\.jpg")
"""The name of an image an export wrote: <camera>_<frame, 6 digits or more>.jpg."""
TEMPORARY = re.compile(re.escape(f".{ANNOTATIONS}.") + r"[^/]*\.tmp")
"""A temporary annotations file an interrupted export may have left."""


class ExportError(RuntimeError):
    """The export failed: a database, config or source that cannot be read, a full disk.
    The message is one line."""


class ExportRefused(ExportError):
    """The request names nothing to export (no such run, camera or label), a live camera, or
    a folder holding other files; nothing was written."""


@dataclass(frozen=True)
class StoredBox:
    """One stored detection: its label, score, corners in frame pixels, and track (None:
    not tracked)."""

    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    track_id: int | None


def image_name(camera: str, frame: int) -> str:
    """The file name of frame `frame` of `camera`, relative to the dataset folder."""
    return f"{IMAGES}/{camera}_{frame:06d}.jpg"


class CocoDocument:
    """The COCO annotations of a dataset, built one image at a time.

    Category ids are 1..K in the order of `categories` (0 means "no label" to some tools);
    image and annotation ids count from 1. A box's `track_id` attribute is numbered from 1
    per dataset, so that tracks of different cameras (each camera counts its own) stay apart.
    """

    def __init__(self, categories: tuple[str, ...], description: str) -> None:
        self._category_ids = {name: i for i, name in enumerate(categories, start=1)}
        self._info = {
            "description": description,
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._tracks: dict[tuple[str, int], int] = {}
        self.empty_images = 0

    @property
    def images(self) -> int:
        return len(self._images)

    @property
    def boxes(self) -> int:
        return len(self._annotations)

    def add_image(
        self, name: str, camera: str, frame: int, width: int, height: int,
        boxes: list[StoredBox],
    ) -> None:  # fmt: skip
        """Image `name` (frame `frame` of `camera`, `width` x `height` pixels) and its boxes."""
        image_id = len(self._images) + 1
        self._images.append(
            {"id": image_id, "file_name": name, "width": width, "height": height,
             "camera": camera, "frame": frame}
        )  # fmt: skip
        self.empty_images += not boxes
        for box in boxes:
            width_, height_ = box.x2 - box.x1, box.y2 - box.y1
            attributes = {}
            if box.track_id is not None:
                key = (camera, box.track_id)
                attributes["track_id"] = self._tracks.setdefault(key, len(self._tracks) + 1)
            self._annotations.append(
                {
                    "id": len(self._annotations) + 1,
                    "image_id": image_id,
                    "category_id": self._category_ids[box.label],
                    "bbox": [box.x1, box.y1, width_, height_],
                    "area": width_ * height_,
                    "iscrowd": 0,
                    "segmentation": [],  # required by CVAT's importer; empty: a box
                    "score": box.score,
                    "attributes": attributes,
                }
            )

    def as_dict(self) -> dict[str, Any]:
        """The document, ready for `json.dump`."""
        return {
            "info": self._info,
            "licenses": [],
            "categories": [
                {"id": i, "name": name, "supercategory": ""}
                for name, i in self._category_ids.items()
            ],
            "images": self._images,
            "annotations": self._annotations,
        }


class DatasetFolder:
    """The folder an export writes: empty, new, or a previous export (which it replaces);
    a folder holding anything else is refused, never overwritten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.images = path / IMAGES
        self.annotations = path / ANNOTATIONS
        self._written: set[str] = set()

    def foreign_file(self) -> Path | None:
        """A file or folder in the folder that no export wrote (the first found), or None."""
        if not self.path.exists():
            return None
        for entry in sorted(self.path.iterdir()):
            if (entry == self.annotations and entry.is_file()) or TEMPORARY.fullmatch(entry.name):
                continue
            if entry != self.images or not entry.is_dir():
                return entry
            for image in sorted(entry.iterdir()):
                if not (EXPORTED_IMAGE.fullmatch(image.name) and image.is_file()):
                    return image
        return None

    def prepare(self) -> None:
        """Makes the folder ready: refuses one holding other files (ExportRefused naming
        one), removes a previous export's annotations so that none points at images being
        replaced, and the temporary file an interrupted one may have left. Raises
        ExportError when the folder cannot be made."""
        if self.path.exists() and not self.path.is_dir():
            raise ExportRefused(f"--out {self.path} is a file, not a folder")
        foreign = self.foreign_file()
        if foreign is not None:
            raise ExportRefused(
                f"--out {self.path} holds files an export did not write (e.g. {foreign}): "
                "choose a new or empty folder"
            )
        try:
            self.images.mkdir(parents=True, exist_ok=True)
            self.annotations.unlink(missing_ok=True)
            for leftover in self.path.iterdir():
                if TEMPORARY.fullmatch(leftover.name):
                    leftover.unlink()
        except OSError as exc:
            why = write_failure(exc, self.path)
            raise ExportError(f"cannot write {self.path}: {why}") from None

    def write_image(self, camera: str, frame: int, rgb: npt.NDArray[np.uint8]) -> str:
        """Writes frame `frame` of `camera` (RGB [H, W, 3]) as a JPEG; returns its name
        relative to the folder."""
        name = image_name(camera, frame)
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise ExportError(f"cannot encode frame {frame} of camera {camera} as JPEG")
        path = self.path / name
        try:
            path.write_bytes(jpeg.tobytes())
        except OSError as exc:
            raise ExportError(f"cannot write {path}: {write_failure(exc, path)}") from None
        self._written.add(Path(name).name)
        return name

    def finish(self, document: dict[str, Any]) -> Path:
        """Puts `document` in place as annotations.json, then removes the images of a previous
        export that it does not list. Returns the annotations' path."""
        fd, temporary = tempfile.mkstemp(prefix=f".{ANNOTATIONS}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(document, file, separators=(",", ":"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.annotations)
        except OSError as exc:
            raise ExportError(
                f"cannot write {self.annotations}: {write_failure(exc, self.path)}"
            ) from None
        finally:
            Path(temporary).unlink(missing_ok=True)
        for image in self.images.iterdir():
            if EXPORTED_IMAGE.fullmatch(image.name) and image.name not in self._written:
                image.unlink()
        return self.annotations
