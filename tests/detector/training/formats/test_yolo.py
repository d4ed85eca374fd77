"""YOLO: boxes read back as written, data.yaml's keys, label files, hostile YAML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from detector.training.formats import yolo
from detector.training.formats.common import MAX_LABEL_BYTES, MAX_YAML_BYTES, resolved
from detector.training.formats.yolo import MAX_LINE_CHARS, MAX_LINE_PROBLEMS, label_path
from detector.training.samples import SHOWN_PROBLEMS, DatasetError, read_dataset
from tests.detector.training.datasets import ShapesData, write_yolo

ALIAS_BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
names: [*h,*h,*h,*h,*h,*h,*h,*h,*h]
train: images/train
"""


def edit_yaml(root: Path, **changes: object) -> None:
    doc = yaml.safe_load((root / "data.yaml").read_text())
    doc.update(changes)
    (root / "data.yaml").write_text(yaml.safe_dump(doc))


def test_yolo_reads_back_the_boxes_written(shapes: ShapesData, tmp_path: Path) -> None:
    data = read_dataset(write_yolo(shapes, tmp_path / "yolo"))
    assert data.class_names == shapes.class_names
    for name, part, written in (("train", data.train, shapes.train), ("val", data.val, shapes.val)):
        assert len(part) == len(written)
        for read, sample in zip(part, written, strict=True):
            assert read.image == tmp_path / "yolo" / "images" / name / sample.image.name
            assert (read.width, read.height) == (sample.width, sample.height)
            np.testing.assert_allclose(read.boxes, sample.boxes, atol=1e-3)
            np.testing.assert_array_equal(read.labels, sample.labels)
    assert data.train[0].origin == f"images/train/{shapes.train[0].image.name}"


def test_names_may_be_a_mapping_from_class_index(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    edit_yaml(root, names={2: "triangle", 0: "disc", 1: "square"}, nc=3)
    assert read_dataset(root).class_names == shapes.class_names


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"names": {0: "disc", 2: "square"}}, "names: the keys of a mapping must be 0..1"),
        ({"names": "disc"}, "names must be a list of class names or a mapping"),
        ({"names": ["disc", "disc"]}, "names: class name 'disc' appears twice"),
        (
            {"names": ["disc", "Disc ", "square"]},
            "names: class names 'disc' and 'Disc ' are one class where a class is named "
            "(case and surrounding spaces aside, as in `labels:` and `evaluate`)",
        ),
        (
            {"names": ["disc", "two\nlines"]},
            "names: class name 'two\\nlines' holds a control character (a newline, a tab...)",
        ),
        ({"names": ["background", "disc"]}, "names: class name 'background' is reserved"),
        (
            {"names": ["disc", "x" * 129]},
            f"names: class name '{'x' * 56}... is 129 characters long; the most is 128 "
            "(what the SQL tables' label column holds)",
        ),
        ({"names": ["disc", ["nested"]]}, "names: class name a list is not a non-empty string"),
        ({"nc": 5}, "nc is 5 but names has 3 classes"),
        ({"train": "images/nowhere"}, "train: no such folder or .txt list: images/nowhere"),
        ({"train": 3}, "train must be a path or a list of paths, got 3"),
        ({"path": ["x"]}, "path must be a string, got a list"),
    ],
    ids=[
        "gap in mapping",
        "names a string",
        "duplicate",
        "duplicate but for case and spaces",
        "control character",
        "background",
        "longer than the SQL label column",
        "nested",
        "nc",
        "missing train folder",
        "train a number",
        "path a list",
    ],
)
def test_a_bad_data_yaml_value_is_named(
    changes: dict[str, object], message: str, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    edit_yaml(root, **changes)
    with pytest.raises(DatasetError, match=re.escape(f"data.yaml: {message}")):
        read_dataset(root)


def test_a_data_yaml_without_train_is_named(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    doc = yaml.safe_load((root / "data.yaml").read_text())
    del doc["train"]
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError, match=re.escape("data.yaml: train is missing")):
        read_dataset(root)


def test_an_image_without_a_label_file_has_no_objects(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "labels/train/0001.txt").unlink()
    data = read_dataset(root)
    assert data.train[1].boxes.shape == (0, 4)
    np.testing.assert_allclose(data.train[0].boxes, shapes.train[0].boxes, atol=1e-3)


def test_a_path_key_and_list_files_locate_the_images(shapes: ShapesData, tmp_path: Path) -> None:
    data_root = write_yolo(shapes, tmp_path / "datasets" / "shapes")
    (data_root / "lists").mkdir()
    (data_root / "lists" / "train.txt").write_text(
        "".join(f"../images/train/{s.image.name}\n" for s in shapes.train[:3])
    )
    config = tmp_path / "configs" / "shapes.yaml"
    config.parent.mkdir()
    shutil.move(data_root / "data.yaml", config)
    edit_yaml_path = config.read_text().replace("path: .", "path: ../datasets/shapes")
    config.write_text(edit_yaml_path.replace("train: images/train", "train: lists/train.txt"))
    data = read_dataset(config)
    assert [s.image.name for s in data.train] == [s.image.name for s in shapes.train[:3]]
    assert len(data.val) == len(shapes.val)


def test_train_and_val_may_be_lists_of_folders(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    edit_yaml(root, train=["images/train", "images/val"], val=None)  # val's images trained on
    assert len(read_dataset(root).train) == len(shapes.samples)


@pytest.mark.parametrize(
    ("image", "labels"),
    [
        ("/d/images/train/a.jpg", "/d/labels/train/a.txt"),
        ("/images/d/images/x/a.b.png", "/images/d/labels/x/a.b.txt"),
        ("/d/photos/a.jpg", "/d/photos/a.txt"),
    ],
)
def test_the_label_file_replaces_the_last_images_folder(image: str, labels: str) -> None:
    assert label_path(Path(image)) == Path(labels)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.1", "got 4 numbers: as a polygon, it has an odd number of coordinates (3)"),
        ("0 0.1 0.1 0.2 0.1 0.2", "has an odd number of coordinates (5)"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1", "has an odd number of coordinates (7)"),
        ("0 0.1 0.1", "has 1 point(s); a polygon has 3 or more"),
        ("0 0.5 0.5 box 0.1", "expected numbers (class cx cy w h, or a polygon: class x1 y1"),
        ("1.5 0.5 0.5 0.1 0.1", "unknown class 1.5"),
        ("-1 0.5 0.5 0.1 0.1", "unknown class -1"),
        ("5 0.1 0.1 0.2 0.1 0.2 0.2", "unknown class 5"),
        ("0 nan 0.5 0.1 0.1", "has a coordinate that is not a finite number"),
        (
            "0 0.1 0.1 0.2 0.1 0.2 1.5",
            "polygon's bounding box (0.1 0.1 0.2 0.1 0.2 1.5) is outside",
        ),
    ],
    ids=[
        "four fields",
        "polygon of odd length",
        "polygon of 3.5 points",
        "one point",
        "a word",
        "fractional class",
        "negative class",
        "polygon of an unknown class",
        "nan",
        "polygon outside",
    ],
)
def test_a_bad_label_line_is_named_with_its_line(
    line: str, message: str, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    labels = root / "labels/train/0002.txt"
    labels.write_text(labels.read_text() + "\n" + line + "\n")
    n = len(labels.read_text().splitlines())
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems[0].startswith(f"labels/train/0002.txt:{n}: ")
    assert message in caught.value.problems[0]


def test_many_problems_are_all_kept_and_the_message_counts_the_rest(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "labels/train/0000.txt").write_text("9 0.5 0.5 0.1 0.1\n" * 30)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems == tuple(
        f"labels/train/0000.txt:{n}: unknown class 9 (names has 3: 0..2)" for n in range(1, 31)
    )
    assert str(caught.value).splitlines()[-1] == f"  and {30 - SHOWN_PROBLEMS} more"


@pytest.mark.parametrize("end", ["\r\n", "\r", "\n"], ids=["CRLF", "CR", "LF"])
def test_label_lines_end_as_python_splits_lines(
    end: str, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    labels = root / "labels/train/0000.txt"
    labels.write_bytes(labels.read_text().replace("\n", end).encode())
    first = read_dataset(root).train[0]
    np.testing.assert_allclose(first.boxes, shapes.train[0].boxes, atol=1e-3)


def test_a_label_line_longer_than_its_bound_is_refused_naming_its_line(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    long_line = "0" + " 0.5" * (MAX_LINE_CHARS // 4)
    (root / "labels/train/0001.txt").write_text("0 0.5 0.5 0.1 0.1\n" + long_line + "\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems == (
        f"labels/train/0001.txt:2: line too long ({len(long_line)} characters, "
        f"the limit is {MAX_LINE_CHARS})",
    )


def test_a_polygon_traced_round_a_whole_4k_frame_is_within_the_line_bound(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    # a point per pixel of the frame's edge, as a pixel-wise mask's outline has them
    top = [(x / 3840, 0.0) for x in range(3840)]
    right = [(1.0, y / 2160) for y in range(2160)]
    points = top + right + [(1 - x, 1.0) for x, _ in top] + [(0.0, 1 - y) for _, y in right]
    line = "0 " + " ".join(f"{x:.6f} {y:.6f}" for x, y in points)
    (root / "labels/train/0001.txt").write_text(line + "\n")
    sample = read_dataset(root).train[1]
    assert sample.boxes.tolist() == [[0.0, 0.0, sample.width, sample.height]]


def test_a_label_file_of_many_bad_lines_lists_the_first_and_counts_the_rest(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "labels/train/0001.txt").write_text("x\n" * (MAX_LINE_PROBLEMS + 50))
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    problems = caught.value.problems
    assert len(problems) == MAX_LINE_PROBLEMS + 1
    last_listed = f"labels/train/0001.txt:{MAX_LINE_PROBLEMS}: expected numbers"
    assert problems[MAX_LINE_PROBLEMS - 1].startswith(last_listed)
    assert problems[-1] == "labels/train/0001.txt: 50 more bad lines, not listed"


PEAK_MEMORY = """
import re, sys
from pathlib import Path
from PIL import Image
from detector.training.samples import read_dataset
Image.init()  # the image plugins, imported on the first image read
def kib(field):  # VmHWM: the peak resident memory of this process since its exec
    return int(re.search(field + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1])
before = kib("VmRSS")
boxes = len(read_dataset(sys.argv[1]).train[0].labels)
print(boxes, kib("VmHWM") - before)
"""


def test_a_large_label_file_costs_memory_of_its_boxes_not_many_times_its_size(
    tmp_path: Path,
) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "images/a.png")
    (tmp_path / "data.yaml").write_text("train: images\nnames: [thing]\n")
    line = "0 0.5 0.5 0.25 0.25\n"
    size = 1 << 20
    (tmp_path / "labels/a.txt").write_text(line * (size // len(line)))
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PEAK_MEMORY), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[4],
    )
    boxes, peak_kib = map(int, run.stdout.split())
    assert boxes == size // len(line)
    # the file's bytes and text and 24 bytes a box came to about 5 times its size; a
    # Python list of boxes to 20 times
    assert peak_kib * 1024 < 10 * size, f"reading took {peak_kib} KiB more"


def test_a_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text(ALIAS_BOMB)
    with pytest.raises(DatasetError, match=r"data.yaml:2: YAML aliases \(\*name\) are refused"):
        read_dataset(tmp_path)


def test_yaml_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(DatasetError, match=re.escape("data.yaml: not usable YAML: nested too")):
        read_dataset(tmp_path)


def test_a_yaml_integer_of_thousands_of_digits_is_named_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("train: images\nnames: [a]\nnc: " + "9" * 5000 + "\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(tmp_path)
    (problem,) = caught.value.problems
    assert problem.startswith("data.yaml:3: not valid YAML: cannot read '9999")
    assert len(problem) < 200


def test_a_data_yaml_key_given_twice_is_named_not_the_last_taken(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("train: images\nnames: [a]\nnames: [b, c]\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(tmp_path)
    assert caught.value.problems == (
        "data.yaml:3: not valid YAML: duplicate key 'names' (first on line 2)",
    )


@pytest.mark.parametrize(
    ("file", "limit"), [("data.yaml", MAX_YAML_BYTES), ("labels/train/0000.txt", MAX_LABEL_BYTES)]
)
def test_a_file_larger_than_its_bound_is_refused_unread(
    file: str, limit: int, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    with (root / file).open("ab") as f:
        f.truncate(limit + 1)
    with pytest.raises(DatasetError, match=re.escape(f"{file}: file too large")):
        read_dataset(root)


def _polygon_line(label: int, box: np.ndarray, width: int, height: int, beyond: float = 0) -> str:
    """A segmentation line: the diamond touching the middle of each side of the pixel `box`,
    its left corner `beyond` pixels further left."""
    x1, y1, x2, y2 = box.tolist()
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    points = [(cx, y1), (x2, cy), (cx, y2), (x1 - beyond, cy)]
    return f"{label} " + " ".join(f"{x / width!r} {y / height!r}" for x, y in points)


def test_a_polygon_line_is_read_as_its_bounding_box(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    sample = shapes.train[0]
    lines = (root / "labels/train/0000.txt").read_text().splitlines()
    lines[0] = _polygon_line(
        int(sample.labels[0]) - 1, sample.boxes[0], sample.width, sample.height
    )
    (root / "labels/train/0000.txt").write_text("\n".join(lines) + "\n")
    first = read_dataset(root).train[0]
    np.testing.assert_allclose(first.boxes, sample.boxes, atol=1e-3)  # a box line stays one
    np.testing.assert_array_equal(first.labels, sample.labels)


def test_a_polygon_beyond_the_image_by_under_a_pixel_is_clipped_to_it(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    sample = shapes.train[0]
    box = sample.boxes[0].copy()
    box[0] = 0.0  # the box's left side on the image's edge, the polygon's corner 0.6 px out
    (root / "labels/train/0000.txt").write_text(
        _polygon_line(int(sample.labels[0]) - 1, box, sample.width, sample.height, beyond=0.6)
        + "\n"
    )
    first = read_dataset(root).train[0]
    np.testing.assert_allclose(first.boxes, box[None], atol=1e-3)


def test_an_image_listed_twice_in_a_yolo_list_is_refused_naming_both_lines(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "train.txt").write_text(
        "images/train/0001.jpg\nimages/train/0000.jpg\n./images/train/0001.jpg\n"
    )
    text = (root / "data.yaml").read_text().replace("train: images/train", "train: train.txt")
    (root / "data.yaml").write_text(text)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems == (
        "train.txt:3: the same image file as train.txt:1 (images/train/0001.jpg)",
    )


def test_one_image_listed_over_and_over_is_resolved_once_and_named_in_one_problem(
    shapes: ShapesData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "train.txt").write_text("images/train/0001.jpg\n" * 50_000)
    text = (root / "data.yaml").read_text().replace("train: images/train", "train: train.txt")
    (root / "data.yaml").write_text(text)
    calls: list[Path] = []

    def spy(path: Path) -> Path:
        calls.append(path)
        return resolved(path)

    monkeypatch.setattr(yolo, "resolved", spy)
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems == (
        "train.txt:2: the same image file as train.txt:1 (images/train/0001.jpg); listed "
        "50000 times in all: also at train.txt:3, train.txt:4, train.txt:5 and 49995 more",
    )
    assert [p for p in calls if p.name == "0001.jpg"] == [root / "images/train/0001.jpg"]


@pytest.mark.parametrize("kind", ["folder", "pipe", "loop of links"])
def test_a_label_file_that_cannot_be_read_is_named_not_taken_for_no_objects(
    kind: str, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    labels = root / "labels/train/0001.txt"
    labels.unlink()
    {"folder": labels.mkdir, "pipe": lambda: os.mkfifo(labels)}.get(
        kind, lambda: labels.symlink_to(labels.name)
    )()
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    (problem,) = caught.value.problems
    assert problem.startswith("labels/train/0001.txt: ")
    assert "not a regular file" in problem or "symbolic links" in problem


def test_a_labels_folder_that_is_a_file_is_named_not_taken_for_images_without_objects(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    shutil.rmtree(root / "labels/train")
    (root / "labels/train").write_text("not a folder")
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    problems = caught.value.problems
    assert len(problems) == len(shapes.train)
    assert all(
        p.startswith("labels/train/")
        and p.endswith(": cannot be read: labels/train is not a folder")
        for p in problems
    ), problems


def test_a_class_of_thousands_of_digits_is_shown_cut_in_one_short_line(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_yolo(shapes, tmp_path / "yolo")
    (root / "labels/train/0001.txt").write_text("9" * 5000 + " 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    (problem,) = caught.value.problems
    assert problem.startswith("labels/train/0001.txt:1: unknown class 999")
    assert "...(5000 characters)..." in problem
    assert len(problem) < 300
