from __future__ import annotations

import numpy as np
import pytest

from pipeline.types import UNTRACKED, Detections, Frame, LabelMap, Snapshot


def _dets(n: int = 3) -> Detections:
    return Detections(
        xyxy=np.arange(n * 4, dtype=np.float32).reshape(n, 4),
        score=np.linspace(0.1, 0.9, n, dtype=np.float32),
        label=np.arange(n, dtype=np.int64),
    )


def test_detections_without_track_ids_are_untracked() -> None:
    d = _dets()
    assert len(d) == 3
    assert d.track_id.dtype == np.int64
    assert (d.track_id == UNTRACKED).all()


def test_boolean_mask_selects_rows_of_every_column() -> None:
    d = _dets(4).with_track_ids(np.array([7, -1, 9, -1], np.int64))
    kept = d[d.score > 0.4]
    assert len(kept) == 2
    np.testing.assert_array_equal(kept.label, [2, 3])
    np.testing.assert_array_equal(kept.track_id, [9, -1])
    np.testing.assert_array_equal(kept.xyxy, d.xyxy[2:])


@pytest.mark.parametrize(
    ("track_id", "error"),
    [
        (np.zeros(2, np.int64), r"shape \[3\]"),
        (np.zeros((3, 1), np.int64), r"shape \[3\]"),
        (np.zeros(3, np.int32), "dtype int64"),
        ([1, 2, 3], "numpy array"),
    ],
)
def test_with_track_ids_refuses_bad_ids(track_id: object, error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        _dets(3).with_track_ids(track_id)  # type: ignore[arg-type]


def test_with_track_ids_keeps_its_own_read_only_copy_of_the_ids() -> None:
    d = _dets(3)
    ids = np.array([4, 5, 6], np.int64)
    tracked = d.with_track_ids(ids)
    ids[0] = 99
    np.testing.assert_array_equal(tracked.track_id, [4, 5, 6])
    assert (d.track_id == UNTRACKED).all()
    with pytest.raises(ValueError, match="read-only"):
        tracked.track_id[0] = 1
    np.testing.assert_array_equal(tracked.xyxy, d.xyxy)


@pytest.mark.parametrize(
    "index", [np.array([True, False, True, True]), np.array([3, 0]), slice(1, 3)]
)
def test_selected_rows_keep_every_column_read_only_and_apart_from_the_original(
    index: np.ndarray | slice,
) -> None:
    d = _dets(4).with_track_ids(np.array([7, -1, 9, -1], np.int64))
    kept = d[index]
    for name in ("xyxy", "score", "label", "track_id"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(d, name)[index])
        with pytest.raises(ValueError, match="read-only"):
            getattr(kept, name)[0] = 0
    assert kept.with_track_ids(np.zeros(len(kept), np.int64)).track_id.tolist() == [0] * len(kept)
    assert d.track_id.tolist() == [7, -1, 9, -1]


def test_an_index_that_does_not_select_rows_is_refused_as_columns_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        _dets(3)[np.array([[0, 1], [1, 2]])]


def test_mask_of_wrong_length_is_refused() -> None:
    with pytest.raises(IndexError, match="boolean mask"):
        _dets(3)[np.array([True, False])]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("xyxy", np.zeros((2, 4), np.float64), "dtype float32"),
        ("xyxy", np.zeros((2, 3), np.float32), r"shape \[N, 4\]"),
        ("score", np.zeros(3, np.float32), r"shape \[2\]"),
        ("label", np.zeros(2, np.int32), "dtype int64"),
        ("label", [0, 1], "numpy array"),
        ("track_id", np.zeros(1, np.int64), r"shape \[2\]"),
    ],
)
def test_bad_columns_are_refused_on_construction(field: str, value: object, error: str) -> None:
    columns: dict[str, object] = {
        "xyxy": np.zeros((2, 4), np.float32),
        "score": np.zeros(2, np.float32),
        "label": np.zeros(2, np.int64),
        "track_id": None,
    }
    columns[field] = value
    with pytest.raises((TypeError, ValueError), match=error):
        Detections(**columns)  # type: ignore[arg-type]


@pytest.mark.parametrize("column", ["xyxy", "score"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_boxes_and_scores_are_refused_naming_the_column(
    column: str, value: float
) -> None:
    xyxy, score = np.ones((3, 4), np.float32), np.full(3, 0.5, np.float32)
    (xyxy if column == "xyxy" else score)[2] = value
    with pytest.raises(
        ValueError, match=rf"Detections\.{column} must be finite, got {value} in row 2"
    ):
        Detections(xyxy=xyxy, score=score, label=np.zeros(3, np.int64))


def test_detections_keep_their_own_read_only_copy() -> None:
    xyxy = np.zeros((1, 4), np.float32)
    d = Detections(xyxy=xyxy, score=np.ones(1, np.float32), label=np.zeros(1, np.int64))
    xyxy[0, 0] = 5.0
    assert d.xyxy[0, 0] == 0.0
    with pytest.raises(ValueError):
        d.score[0] = 0.5


def test_empty_detections() -> None:
    d = Detections.empty()
    assert len(d) == 0
    assert d.xyxy.shape == (0, 4)
    assert (d.score.dtype, d.label.dtype, d.track_id.dtype) == (np.float32, np.int64, np.int64)
    assert len(d[d.score > 0.5]) == 0


def test_empty_detections_are_shared_and_none_can_change_them() -> None:
    d = Detections.empty()
    assert Detections.empty() is d
    for column in (d.xyxy, d.score, d.label, d.track_id):
        assert not column.flags.writeable


def test_frame_requires_rgb_uint8_image() -> None:
    Frame("cam", 0, 0.0, 0.0, np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        Frame("cam", 0, 0.0, 0.0, np.zeros((4, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        Frame("cam", 0, 0.0, 0.0, np.zeros((4, 6), np.uint8))


def test_a_frames_model_image_is_checked_and_used_only_at_its_own_size() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(TypeError, match=r"Frame\.model_image must be a uint8"):
        Frame("c", 0, 0.0, 0.0, image, np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"Frame\.model_image must have shape \[H, W, 3\]"):
        Frame("c", 0, 0.0, 0.0, image, np.zeros((32, 32), np.uint8))
    small = np.ones((32, 48, 3), np.uint8)
    frame = Frame("c", 0, 0.0, 0.0, image, small)
    assert frame.image_for((32, 48)) is small
    assert frame.image_for((48, 32)) is image  # made for another network
    assert (frame.width, frame.height) == (320, 240)  # boxes stay in the image's pixels
    assert Frame("c", 0, 0.0, 0.0, image).image_for((32, 48)) is image


def test_a_snapshot_refuses_what_is_not_an_rgb_image_and_a_frame_without_its_name() -> None:
    crop = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match=r"Snapshot\.crop must be a uint8"):
        Snapshot(0, (0, 0, 1, 1), crop.astype(np.float32), "d", "c/x.jpg")
    with pytest.raises(ValueError, match=r"Snapshot\.frame must have shape \[H, W, 3\]"):
        Snapshot(0, (0, 0, 1, 1), crop, "d", "c/x.jpg", np.zeros((4, 4), np.uint8), "c/f.jpg")
    with pytest.raises(ValueError, match="go together"):
        Snapshot(0, (0, 0, 1, 1), crop, "d", "c/x.jpg", crop)
    assert Snapshot(0, (0, 0, 1, 1), crop, "out/", "c/x.jpg").path == "out/c/x.jpg"


COCO_LIKE = LabelMap(("__background__", "person", "N/A", "Car", "car", ""))


@pytest.mark.parametrize(
    ("name", "columns"),
    [("person", (1,)), (" PERSON ", (1,)), ("car", (3, 4)), ("N/A", ()), ("", ()), ("bus", ())],
)
def test_a_class_is_named_by_the_one_rule_case_and_spaces_aside(
    name: str, columns: tuple[int, ...]
) -> None:
    assert COCO_LIKE.columns(name, background=0) == columns


def test_the_background_column_and_unnamed_columns_are_no_class() -> None:
    assert COCO_LIKE.classes(background=0) == (1, 3, 4)
    assert COCO_LIKE.columns("__background__", background=0) == ()
    assert COCO_LIKE.columns("__background__") == (0,)  # a model without one


def test_a_class_name_matches_by_unicode_case_folding_not_only_ascii_case() -> None:
    labels = LabelMap(("Straße", "ÆBLE", "Σίσυφος"))
    assert labels.columns("STRASSE") == (0,)  # ß folds to ss, which lower() leaves alone
    assert labels.columns("strasse") == labels.columns(" straße ") == (0,)
    assert labels.columns("æble") == (1,)
    assert labels.columns("ΣΊΣΥΦΟΣ") == (2,)  # a final sigma folds as a sigma does
    assert labels.columns("strase") == ()
