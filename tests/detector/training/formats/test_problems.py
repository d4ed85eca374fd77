"""Every kind of bad annotation, in every format that can have it, is refused with a
DatasetError naming the file and line (or COCO annotation id), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.training.samples import DatasetError, read_dataset
from tests.detector.training.datasets import IMAGE_SIZE, ShapesData
from tests.detector.training.formats.editors import EDITORS, SIZED

WIDTH, HEIGHT = IMAGE_SIZE
every_format = pytest.mark.parametrize("editor", EDITORS, ids=lambda e: e.name)


def problems_of(root: Path) -> tuple[str, ...]:
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert "Traceback" not in str(caught.value)
    return caught.value.problems


def the_problem(root: Path) -> str:
    """The one problem read_dataset finds in `root`."""
    problems = problems_of(root)
    assert len(problems) == 1, problems
    return problems[0]


@every_format
@pytest.mark.parametrize(
    "xyxy",
    [(WIDTH - 30, 10, WIDTH + 10, 40), (-5, 10, 30, 40), (10, HEIGHT - 20, 40, HEIGHT + 2)],
    ids=["right", "left", "bottom"],
)
def test_a_box_outside_the_image_is_named(
    editor, xyxy: tuple[float, ...], shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    place = editor.set_first_box(root, xyxy)
    problem = the_problem(root)
    assert problem.startswith(f"{place}: ")
    assert f"is outside the {WIDTH}x{HEIGHT} image" in problem


@every_format
@pytest.mark.parametrize(
    "xyxy",
    [(50, 50, 50, 80), (60, 50, 40, 80), (50, 70, 90, 69)],
    ids=["zero width", "negative width", "negative height"],
)
def test_a_box_without_area_is_named(
    editor, xyxy: tuple[float, ...], shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    place = editor.set_first_box(root, xyxy)
    problem = the_problem(root)
    assert problem.startswith(f"{place}: ")
    assert "has zero or negative area" in problem


@every_format
def test_a_box_out_by_under_a_pixel_is_clipped_to_the_image(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    editor.set_first_box(root, (-0.5, 10, WIDTH + 0.75, 40))
    first = read_dataset(root).train[0]
    assert first.boxes[0].tolist() == pytest.approx([0, 10, WIDTH, 40], abs=1e-3)


@every_format
def test_an_unknown_class_is_named(editor, shapes: ShapesData, tmp_path: Path) -> None:
    root = editor.write(shapes, tmp_path / "data")
    place = editor.set_first_class(root)
    problem = the_problem(root)
    assert problem.startswith(f"{place}: unknown class")


@every_format
def test_a_missing_image_is_named(editor, shapes: ShapesData, tmp_path: Path) -> None:
    root = editor.write(shapes, tmp_path / "data")
    image, place = editor.first_image(root)
    image.unlink()
    problem = the_problem(root)
    assert problem.startswith(f"{place}: missing image")
    assert image.name in problem


@every_format
def test_an_unreadable_image_is_named(editor, shapes: ShapesData, tmp_path: Path) -> None:
    root = editor.write(shapes, tmp_path / "data")
    image, place = editor.first_image(root)
    image.write_bytes(b"not a JPEG at all")
    problem = the_problem(root)
    assert problem.startswith(f"{place}: unreadable image")
    assert image.name in problem


@every_format
def test_a_malformed_file_is_named_with_its_line(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    place = editor.break_syntax(root)
    problem = the_problem(root)
    assert problem.startswith(f"{place}: not valid")


@every_format
def test_a_value_of_the_wrong_type_is_named(editor, shapes: ShapesData, tmp_path: Path) -> None:
    root = editor.write(shapes, tmp_path / "data")
    place = editor.break_type(root)
    assert the_problem(root).startswith(f"{place}: ")


@pytest.mark.parametrize("editor", SIZED, ids=lambda e: e.name)
def test_an_image_of_another_size_than_declared_is_named(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    place = editor.declare_first_size(root, 640, 480)
    problem = the_problem(root)
    assert problem.startswith(f"{place}: declares 640x480 but 0000.jpg is {WIDTH}x{HEIGHT}")


@every_format
def test_every_problem_is_listed_not_just_the_first(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    class_place = editor.set_first_class(root)
    first, _ = editor.first_image(root)
    second = first.with_name(shapes.train[1].image.name)
    second.unlink()
    problems = problems_of(root)
    assert len(problems) == 2, problems
    assert sum(p.startswith(f"{class_place}: unknown class") for p in problems) == 1
    assert sum("missing image" in p and second.name in p for p in problems) == 1


@every_format
def test_an_image_that_is_a_loop_of_symbolic_links_is_named_not_a_crash(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    image, place = editor.first_image(root)
    image.unlink()
    image.symlink_to(image.name)  # resolving it raised RuntimeError("Symlink loop")
    problem = the_problem(root)
    assert problem.startswith(f"{place}: a broken symbolic link (or a loop of them)")
    assert image.name in problem


@pytest.mark.parametrize("editor", SIZED, ids=lambda e: e.name)
def test_a_folder_where_an_image_should_be_is_named_a_folder_not_missing(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    image, place = editor.first_image(root)
    image.unlink()
    image.mkdir()
    assert the_problem(root).startswith(f"{place}: a folder, not an image")


@every_format
def test_an_image_in_both_training_and_validation_is_refused_naming_both_places(
    editor, shapes: ShapesData, tmp_path: Path
) -> None:
    root = editor.write(shapes, tmp_path / "data")
    assert len(read_dataset(root).val) == len(shapes.val)  # apart, as written
    problem = editor.train_on_a_validation_image(root)
    assert the_problem(root) == problem
