"""`dataset export`: a real run's frames and stored boxes, written as a COCO dataset.

The run is the real pipeline (readers, batcher, tracker, SQL output) on two synthetic clips,
with a detector that boxes the clip's bright rectangle, so that a stored box says which
picture its frame held. The export is checked against the database and against the clips
decoded apart with PyAV.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pycocotools.coco import COCO

from pipeline.config import parse_config
from pipeline.dataset_export import (
    ExportError,
    ExportRefused,
    ExportRequest,
    FrameChooser,
    export_dataset,
)
from pipeline.dataset_rows import id_ranges
from pipeline.detection_loop import FrameDetector
from pipeline.motion import MotionGate
from pipeline.readers import FramePicker, FrameSampler
from pipeline.runner import Pipeline
from pipeline.types import Detections, Frame, LabelMap, StreamEnd
from sinks.sql.sink import SqlSink
from tests.conftest import write_video
from tests.sinks.sql.builders import Box, frame_result

LABELS = LabelMap(("background", "person", "car"))
PERSON, CAR = 1, 2
LOBBY_FRAMES, GATE_FRAMES = 24, 16
GATE_SIZE = (128, 96)
EMPTY_EVERY, EMPTY_AT = 8, 6  # frames 8k+6 hold no box
CAR_EVERY = 3  # frames 3k hold a car box too (when they hold any)
CAR_BOX = (2.0, 2.0, 12.0, 12.0)

Image = npt.NDArray[np.uint8]


class RectangleDetector(FrameDetector):
    """Boxes the clip's bright rectangle as a person (score 0.9), adds a car in the corner
    (score 0.4) on frames 3k, and finds nothing on frames 8k+6."""

    labels = LABELS

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [self._find(f) for f in frames]

    @staticmethod
    def _find(frame: Frame) -> Detections:
        boxes: list[tuple[float, ...]] = []
        if frame.index % EMPTY_EVERY != EMPTY_AT:
            boxes.append((*bright_box(frame.image), 0.9, PERSON))
            if frame.index % CAR_EVERY == 0:
                boxes.append((*CAR_BOX, 0.4, CAR))
        rows = np.array(boxes, np.float32).reshape(-1, 6)
        return Detections(xyxy=rows[:, :4], score=rows[:, 4], label=rows[:, 5].astype(np.int64))


def bright_box(image: Image) -> tuple[float, float, float, float]:
    """The box around the pixels brighter than the background (the moving rectangle)."""
    ys, xs = np.nonzero(image.mean(axis=2) > 110)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


@dataclass(frozen=True)
class Recorded:
    """A finished run: its database, config, clips, and the folder to export into."""

    db: str
    config: Path
    lobby: Path
    gate: Path
    out: Path

    def request(self, **changes: Any) -> ExportRequest:
        return replace(ExportRequest(db=self.db, run=1, out=self.out), **changes)


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    """Run 1: camera lobby (24 frames, 160x120) detected on every frame, camera gate (16
    frames, 128x96) on every other frame."""
    lobby = write_video(tmp_path / "lobby.mp4", frames=LOBBY_FRAMES)
    gate = write_video(tmp_path / "gate.mp4", frames=GATE_FRAMES, size=GATE_SIZE)
    db = f"sqlite:///{tmp_path / 'det.db'}"
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: lobby\n    source: {lobby}\n"
        f"  - id: gate\n    source: {gate}\n    detect_every: 2\n"
        "detector: {batch_size: 4, max_wait_ms: 5}\n"
        f"sinks:\n  - type: sql\n    url: {db}\n"
    )
    pipeline = Pipeline(
        parse_config(config.read_text()), config_source=str(config), detector=RectangleDetector()
    )
    assert pipeline.run().ok
    return Recorded(db, config, lobby, gate, tmp_path / "dataset")


def decoded(path: Path) -> list[Image]:
    """Every frame of a clip, RGB, decoded apart from the pipeline."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def stored_rows(db: str) -> list[dict[str, Any]]:
    """Every detection row, in frame and box order."""
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT camera, frame, label, score, x1, y1, x2, y2, track_id FROM detections "
            "ORDER BY camera, frame, obj"
        )
        return [dict(r) for r in rows]


def boxed_frames(db: str, camera: str, label: str | None = None) -> list[int]:
    return sorted(
        {
            r["frame"]
            for r in stored_rows(db)
            if r["camera"] == camera and label in (None, r["label"])
        }
    )


def exported(out: Path) -> tuple[COCO, list[dict[str, Any]]]:
    """The annotations, loaded by pycocotools, and their images in id order."""
    coco = COCO(str(out / "annotations.json"))
    return coco, coco.loadImgs(sorted(coco.getImgIds()))


def frames_of(images: list[dict[str, Any]], camera: str) -> list[int]:
    return [i["frame"] for i in images if i["camera"] == camera]


def read_rgb(path: Path) -> Image:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} does not decode"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # type: ignore[return-value]


def difference(a: Image, b: Image) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_every_frame_with_boxes_is_written_as_its_own_picture_with_its_stored_boxes(
    recorded: Recorded,
) -> None:
    summary = export_dataset(recorded.request())
    coco, images = exported(recorded.out)
    clips = {"lobby": decoded(recorded.lobby), "gate": decoded(recorded.gate)}
    for camera in clips:
        assert frames_of(images, camera) == boxed_frames(recorded.db, camera)
    assert summary.images == len(images) and summary.empty_images == 0

    for image in images:
        picture = read_rgb(recorded.out / image["file_name"])
        frames = clips[image["camera"]]
        index = image["frame"]
        assert image["file_name"] == f"images/{image['camera']}_{index:06d}.jpg"
        assert picture.shape == (image["height"], image["width"], 3) == frames[index].shape
        # the frame itself, give or take JPEG's loss, and not one of its neighbours
        own = difference(picture, frames[index])
        assert own < 1.0
        for other in (index - 1, index + 1):
            if 0 <= other < len(frames):
                assert own < difference(picture, frames[other])

    # each stored box, as it was stored, on its frame's image, named by its label
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(names.values()) == ["car", "person"] == [names[1], names[2]]
    by_frame: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in stored_rows(recorded.db):
        by_frame[row["camera"], row["frame"]].append(row)
    tracks: dict[tuple[str, int], int] = {}
    for image in images:
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        rows = by_frame[image["camera"], image["frame"]]
        assert [
            (names[a["category_id"]], a["score"], a["bbox"], a["area"], a["iscrowd"])
            for a in annotations
        ] == [
            (r["label"], r["score"], [r["x1"], r["y1"], r["x2"] - r["x1"], r["y2"] - r["y1"]],
             (r["x2"] - r["x1"]) * (r["y2"] - r["y1"]), 0)
            for r in rows
        ]  # fmt: skip
        for a, r in zip(annotations, rows, strict=True):
            if r["track_id"] is None:
                assert "track_id" not in a["attributes"]
            else:  # one number per tracked object, the same on all its images
                key = (image["camera"], r["track_id"])
                assert (
                    tracks.setdefault(key, a["attributes"]["track_id"])
                    == (a["attributes"]["track_id"])
                )
    assert len(tracks) >= 2 and len(set(tracks.values())) == len(tracks)  # cameras kept apart


def test_every_k_keeps_the_first_and_every_kth_frame_with_boxes(recorded: Recorded) -> None:
    export_dataset(recorded.request(every=3))
    _, images = exported(recorded.out)
    for camera in ("lobby", "gate"):
        assert frames_of(images, camera) == boxed_frames(recorded.db, camera)[::3]


def test_camera_exports_that_camera_alone(recorded: Recorded) -> None:
    summary = export_dataset(recorded.request(camera="gate"))
    _, images = exported(recorded.out)
    assert summary.cameras == ("gate",)
    assert {i["camera"] for i in images} == {"gate"}
    assert sorted(p.name for p in (recorded.out / "images").iterdir()) == [
        f"gate_{f:06d}.jpg" for f in boxed_frames(recorded.db, "gate")
    ]
    assert {(i["width"], i["height"]) for i in images} == {GATE_SIZE}


def test_labels_choose_the_boxes_the_frames_and_the_categories(recorded: Recorded) -> None:
    export_dataset(recorded.request(labels=("car",), camera="lobby"))
    coco, images = exported(recorded.out)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["car"]
    assert frames_of(images, "lobby") == boxed_frames(recorded.db, "lobby", "car")
    assert {tuple(a["bbox"]) for a in coco.dataset["annotations"]} == {(2.0, 2.0, 10.0, 10.0)}


def test_min_score_drops_the_weak_boxes_and_keeps_every_category(recorded: Recorded) -> None:
    export_dataset(recorded.request(min_score=0.5, camera="lobby"))
    coco, images = exported(recorded.out)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["car", "person"]
    assert {coco.loadCats(a["category_id"])[0]["name"] for a in coco.dataset["annotations"]} == {
        "person"
    }
    assert len(images) == len(coco.dataset["annotations"])  # one person a frame


def test_include_empty_adds_the_frames_detected_on_without_boxes_up_to_the_last_box(
    recorded: Recorded,
) -> None:
    summary = export_dataset(recorded.request(camera="gate", include_empty=True))
    coco, images = exported(recorded.out)
    boxed = boxed_frames(recorded.db, "gate")
    # gate detected on even frames only: the odd ones are not negatives, they were not seen
    assert frames_of(images, "gate") == list(range(0, boxed[-1] + 1, 2))
    empty = [i["frame"] for i in images if not coco.getAnnIds(imgIds=[i["id"]])]
    assert empty == [f for f in range(0, boxed[-1] + 1, 2) if f % EMPTY_EVERY == EMPTY_AT]
    assert summary.empty_images == len(empty) > 0


def test_frame_chooser_counts_candidates_for_every_k() -> None:
    picker = FramePicker(FrameSampler(every=3))
    chooser = FrameChooser([0, 1, 5, 6, 9], every=2, picker=picker, last=10)
    image = np.zeros((8, 8, 3), np.uint8)
    taken = [i for i in range(12) if chooser.take(i, i / 10, image)]
    # candidates: boxed frames and, up to frame 10, the sampled frames 0, 3, 6, 9
    assert taken == [0, 3, 6]  # of 0, 1, 3, 5, 6, 9


def test_frames_motion_gating_left_undetected_are_not_empty_examples() -> None:
    # A still picture: the run detected frames 0 and 5 only (max_skip_s 0.5 at 10 fps);
    # the frames between carried frame 0's boxes without anyone looking at them.
    picker = FramePicker(FrameSampler(), MotionGate(25, 0.001, 0.5))
    chooser = FrameChooser([], every=1, picker=picker, last=9)
    image = np.full((120, 160, 3), 90, np.uint8)
    assert [i for i in range(10) if chooser.take(i, i / 10, image)] == [0, 5]


def test_id_ranges_are_short() -> None:
    assert id_ranges([7, 1, 2, 3, 5]) == "1-3, 5, 7"
    assert id_ranges(range(0, 40, 2)).endswith("and 12 more ranges")


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"run": 9}, r"^run 9 is not in the database \(runs: 1\)$"),
        (
            {"camera": "hall"},
            r"^run 1 stored no detections of camera 'hall' \(its cameras: gate, lobby\)$",
        ),
        (
            {"labels": ("person", "bus")},
            r"^run 1 stored no detections labelled 'bus' \(its labels: car, person\)$",
        ),
        ({"source": "elsewhere.mp4"}, r"^--source is the video of one camera: add --camera ID"),
    ],
    ids=["run", "camera", "label", "source-without-camera"],
)
def test_a_request_naming_nothing_stored_is_refused_before_anything_is_written(
    recorded: Recorded, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExportRefused, match=message):
        export_dataset(recorded.request(**changes))
    assert not recorded.out.exists()


def test_a_moved_video_is_named_with_the_option_that_finds_it(recorded: Recorded) -> None:
    moved = recorded.lobby.with_name("moved.mp4")
    recorded.lobby.rename(moved)
    with pytest.raises(
        ExportError,
        match=rf"^camera lobby's video {recorded.lobby} is not there; pass --source PATH",
    ):
        export_dataset(recorded.request(camera="lobby"))
    assert not recorded.out.exists()
    export_dataset(recorded.request(camera="lobby", source=str(moved)))
    _, images = exported(recorded.out)
    frames = decoded(moved)
    assert all(difference(read_rgb(recorded.out / i["file_name"]), frames[i["frame"]]) < 1.0
               for i in images)  # fmt: skip


def test_without_the_config_file_source_and_camera_stand_in_for_it(recorded: Recorded) -> None:
    recorded.config.unlink()
    with pytest.raises(ExportError, match=r"cams.yaml: cannot read the file: no such file; "
                       r"pass --camera ID --source PATH"):  # fmt: skip
        export_dataset(recorded.request())
    export_dataset(recorded.request(camera="gate", source=str(recorded.gate)))
    _, images = exported(recorded.out)
    assert frames_of(images, "gate") == boxed_frames(recorded.db, "gate")
    # which frames were detected on (detect_every: 2) is in the config alone
    with pytest.raises(ExportError, match=r"no such file; --include-empty needs it, to know"):
        export_dataset(
            recorded.request(camera="gate", source=str(recorded.gate), include_empty=True)
        )


def test_another_video_given_as_source_is_caught_by_its_length(recorded: Recorded) -> None:
    short = write_video(recorded.out.parent / "short.mp4", frames=8)
    with pytest.raises(ExportError, match=r"has 8 frames, but the run stored detections up to "
                       rf"frame {LOBBY_FRAMES - 1}: is it the video the run read\?$"):  # fmt: skip
        export_dataset(recorded.request(camera="lobby", source=str(short)))
    assert not (recorded.out / "annotations.json").exists()


def test_a_live_camera_is_refused_without_its_password(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text("cameras:\n  - id: door\n    source: rtsp://viewer:s3cret@127.0.0.1:9/s\n")
    db = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(db, LABELS, run_config=str(config))
    sink.write(frame_result("door", 0, 1e9, [Box(1, 1, 5, 5, 0.9, PERSON)]))
    sink.end(StreamEnd("door", 1, ()))
    sink.close()
    for source in (None, str(write_video(tmp_path / "recording.mp4"))):
        with pytest.raises(ExportRefused, match=r"^camera door reads a live source "
                           r"\(rtsp://viewer:\*\*\*@127.0.0.1:9/s\): its frames were not kept"):  # fmt: skip
            export_dataset(ExportRequest(db=db, run=1, out=tmp_path / "ds", source=source))


def test_a_run_without_detections_has_nothing_to_export(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(db, LABELS, run_config="cams.yaml")
    sink.end(StreamEnd("door", 10, ()))
    sink.close()
    with pytest.raises(ExportRefused, match=r"^run 1 stored no detections: nothing to export$"):
        export_dataset(ExportRequest(db=db, run=1, out=tmp_path / "ds"))


def test_a_missing_database_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    with pytest.raises(ExportError, match=rf"database file {path} does not exist"):
        export_dataset(ExportRequest(db=f"sqlite:///{path}", run=1, out=tmp_path / "ds"))
    assert not path.exists()


# ---------------------------------------------------------------------------- the folder


def test_a_folder_with_other_files_is_refused_and_left_as_it_is(recorded: Recorded) -> None:
    (recorded.out / "images").mkdir(parents=True)
    mine = recorded.out / "images" / "holiday.jpg"
    mine.write_bytes(b"a user's photo")
    with pytest.raises(
        ExportRefused, match=rf"holds files an export did not write \(e.g. {mine}\)"
    ):
        export_dataset(recorded.request())
    assert mine.read_bytes() == b"a user's photo"
    assert sorted(recorded.out.rglob("*")) == [recorded.out / "images", mine]


def test_a_file_is_no_folder_to_export_into(recorded: Recorded) -> None:
    recorded.out.write_text("mine")
    with pytest.raises(ExportRefused, match=rf"^--out {recorded.out} is a file, not a folder$"):
        export_dataset(recorded.request())
    assert recorded.out.read_text() == "mine"


def test_a_previous_export_is_replaced_whole(recorded: Recorded) -> None:
    export_dataset(recorded.request())
    (recorded.out / ".annotations.json.x1y2.tmp").write_text("{")  # an export killed while
    # it wrote the annotations
    export_dataset(recorded.request(camera="gate", every=2))
    _, images = exported(recorded.out)
    listed = sorted(Path(i["file_name"]).name for i in images)
    assert sorted(p.name for p in (recorded.out / "images").iterdir()) == listed
    assert all(name.startswith("gate_") for name in listed)
    assert sorted(p.name for p in recorded.out.iterdir()) == ["annotations.json", "images"]


def test_an_export_that_fails_half_way_leaves_no_annotations_pointing_at_missing_images(
    recorded: Recorded,
) -> None:
    export_dataset(recorded.request())
    short = write_video(recorded.out.parent / "short.mp4", frames=8)
    with pytest.raises(ExportError):
        export_dataset(recorded.request(camera="lobby", source=str(short)))
    assert not (recorded.out / "annotations.json").exists()
    assert [p.name for p in recorded.out.iterdir()] == ["images"]
    # and the folder is still taken for the next export
    export_dataset(recorded.request(camera="lobby"))
    json.loads((recorded.out / "annotations.json").read_text())


def test_image_folder_sources_are_exported_by_their_image_order(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    pictures = decoded(write_video(tmp_path / "clip.mp4", frames=6))
    for i, picture in enumerate(pictures):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras:\n  - id: shelf\n    source: {folder}\n")
    db = f"sqlite:///{tmp_path / 'det.db'}"
    sink = SqlSink(db, LABELS, run_config=str(config))
    for i in (1, 4):
        sink.write(frame_result("shelf", i, 1e9 + i, [Box(*bright_box(pictures[i]), 0.9, PERSON)]))
    sink.end(StreamEnd("shelf", 6, ()))
    sink.close()
    export_dataset(ExportRequest(db=db, run=1, out=tmp_path / "ds"))
    _, images = exported(tmp_path / "ds")
    assert frames_of(images, "shelf") == [1, 4]
    for image in images:
        picture = read_rgb(tmp_path / "ds" / image["file_name"])
        assert difference(picture, pictures[image["frame"]]) < 1.0


def test_an_export_moved_whole_still_finds_its_images(recorded: Recorded, tmp_path: Path) -> None:
    """File names are relative to the annotations: the folder can be moved whole."""
    export_dataset(recorded.request(camera="gate"))
    moved = Path(shutil.move(recorded.out, tmp_path / "moved"))
    _, images = exported(moved)
    assert images and all((moved / i["file_name"]).is_file() for i in images)


def test_labels_are_matched_by_the_one_label_rule_and_keep_the_stored_name(
    recorded: Recorded,
) -> None:
    export_dataset(recorded.request(labels=(" CAR ",), camera="lobby"))
    coco, images = exported(recorded.out)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["car"]
    assert frames_of(images, "lobby") == boxed_frames(recorded.db, "lobby", "car")
