"""The reviewed person labels of vtest.avi and the script that rebuilds their dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.finetune_reviewed import (
    LABELS,
    REVIEW,
    ReviewedLabels,
    ReviewLog,
    build,
    coco,
    image_name,
    read_labels,
    read_review,
    unchecked,
)
from detector.training.samples import read_dataset
from tests.conftest import VideoFactory


def labels_file(tmp_path: Path, **changes: object) -> Path:
    """A labels file for a 160x120 clip of 24 frames, with `changes` to its fields."""
    doc: dict[str, object] = {
        "video": "clip.mp4",
        "width": 160,
        "height": 120,
        "frame_count": 24,
        "category": "person",
        "train": {"2": [[11, 30, 41, 70]]},
        "val": {"20": []},
    }
    doc.update(changes)
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(doc))
    return path


def test_shipped_labels_read_with_validation_frames_after_training_frames() -> None:
    labels = read_labels(LABELS)
    assert labels.video == "vtest.avi"
    assert (labels.width, labels.height, labels.frame_count) == (768, 576, 795)
    assert labels.train and labels.val
    assert max(labels.train) < min(labels.val)


def test_review_log_accounts_for_every_shipped_box() -> None:
    labels = read_labels(LABELS)
    log = read_review(REVIEW)
    assert set(log.frames) == set(labels.train) | set(labels.val)
    for frames in (labels.train, labels.val):
        guessed = unchecked(frames, log)  # refuses a frame whose counts disagree
        for frame, change in ((f, log.frames[f]) for f in frames):
            for box in change.added + [move.to for move in change.moved]:
                assert box in frames[frame] and box not in guessed[frame], (frame, box)
            for box in change.removed + [move.from_ for move in change.moved]:
                assert box in guessed[frame] and box not in frames[frame], (frame, box)


def test_unchecked_undoes_each_change_of_the_review() -> None:
    kept, added, moved_to = (1.0, 1.0, 5.0, 9.0), (20.0, 1.0, 25.0, 9.0), (30.0, 1.0, 35.0, 9.0)
    removed, moved_from = (40.0, 1.0, 45.0, 9.0), (29.0, 0.0, 37.0, 10.0)
    log = ReviewLog.model_validate(
        {
            "frames": {
                5: {
                    "guesses": 3,
                    "removed": [removed],
                    "added": [added],
                    "moved": [{"from": moved_from, "to": moved_to}],
                }
            }
        }
    )
    assert unchecked({5: [kept, added, moved_to]}, log) == {5: [kept, removed, moved_from]}


def test_review_log_whose_count_disagrees_is_refused() -> None:
    log = ReviewLog.model_validate(
        {"frames": {5: {"guesses": 2, "removed": [], "added": [], "moved": []}}}
    )
    with pytest.raises(SystemExit, match="frame 5: the review log gives 1 guesses"):
        unchecked({5: [(1.0, 1.0, 5.0, 9.0)]}, log)


def test_coco_turns_corners_into_xywh_in_frame_order() -> None:
    doc = coco({20: [(10.0, 20.0, 30.0, 60.0)], 0: []}, "person", 160, 120)
    assert [image["file_name"] for image in doc["images"]] == [image_name(0), image_name(20)]
    assert doc["annotations"] == [
        {
            "id": 1,
            "image_id": 2,
            "category_id": 1,
            "bbox": [10.0, 20.0, 20.0, 40.0],
            "area": 800.0,
            "iscrowd": 0,
            "segmentation": [],
        }
    ]
    assert doc["categories"] == [{"id": 1, "name": "person"}]


def test_validation_frame_before_a_training_frame_is_refused(tmp_path: Path) -> None:
    path = labels_file(tmp_path, val={"1": []})
    with pytest.raises(SystemExit, match="validation frames must come after"):
        read_labels(path)


def test_box_outside_the_frame_is_refused_naming_frame_and_box(tmp_path: Path) -> None:
    path = labels_file(tmp_path, train={"2": [[150, 30, 170, 70]]})
    with pytest.raises(SystemExit, match=r"train frame 2: box \[150.0, 30.0, 170.0, 70.0\]"):
        read_labels(path)


def test_rebuilt_dataset_puts_each_box_on_its_own_frame(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    # conftest's clip: a bright 30x40 rectangle at x = 5 + 3 * frame, y = 30..70
    video = synthetic_video("clip.mp4", frames=24, size=(160, 120))
    labels = read_labels(
        labels_file(tmp_path, train={"2": [[11, 30, 41, 70]]}, val={"20": [[65, 30, 95, 70]]})
    )
    counts = build(labels, video, tmp_path / "data")
    data = read_dataset(tmp_path / "data")
    assert counts == {"train": 1, "val": 1}
    assert data.class_names == ("background", "person")
    for split, frame in ((data.train, 2), (data.val, 20)):
        (sample,) = split
        assert sample.image.name == Path(image_name(frame)).name
        x1, y1, _, y2 = sample.boxes[0].astype(int)
        rows = np.asarray(Image.open(sample.image).convert("L"), dtype=np.float32)[y1:y2]
        # the rectangle starts at the box's left edge: a frame before or after has it
        # 3 pixels to one side
        assert rows[:, x1 + 1].mean() > 150 and rows[:, x1 - 2].mean() < 60, frame


def test_video_of_another_length_is_refused(tmp_path: Path, synthetic_video: VideoFactory) -> None:
    video = synthetic_video("clip.mp4", frames=23, size=(160, 120))
    labels = ReviewedLabels.model_validate_json(labels_file(tmp_path).read_bytes())
    with pytest.raises(SystemExit, match=r"23 frames, but clip\.mp4 has 24"):
        build(labels, video, tmp_path / "data")
