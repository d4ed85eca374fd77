"""Pascal VOC: boxes read back as written, the image sets, class names, hostile XML."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from detector.training.formats.common import MAX_XML_BYTES, FileProblem
from detector.training.formats.voc import parse_xml
from detector.training.samples import DatasetError, read_dataset
from tests.detector.training.datasets import ShapesData, write_voc

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><filename>&lol9;</filename></annotation>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotation><filename>&secret;</filename></annotation>
"""


def test_voc_reads_back_the_boxes_written(shapes: ShapesData, tmp_path: Path) -> None:
    data = read_dataset(write_voc(shapes, tmp_path / "voc"))
    assert data.class_names == shapes.class_names
    for part, written in ((data.train, shapes.train), (data.val, shapes.val)):
        assert len(part) == len(written)
        for read, sample in zip(part, written, strict=True):
            assert read.image == tmp_path / "voc" / "JPEGImages" / sample.image.name
            assert (read.width, read.height) == (sample.width, sample.height)
            np.testing.assert_allclose(read.boxes, sample.boxes, atol=1e-4)
            np.testing.assert_array_equal(read.labels, sample.labels)
    assert data.val[0].origin == f"Annotations/{shapes.val[0].image.stem}.xml"


def test_trainval_alone_makes_every_image_a_training_one(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    sets = root / "ImageSets/Main"
    (sets / "trainval.txt").write_text(
        (sets / "train.txt").read_text() + (sets / "val.txt").read_text()
    )
    (sets / "train.txt").unlink()
    (sets / "val.txt").unlink()
    data = read_dataset(root)
    assert [s.image.name for s in data.train] == [s.image.name for s in shapes.samples]
    assert data.val == ()


def test_without_image_sets_every_annotation_is_for_training(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    for listed in (root / "ImageSets/Main").iterdir():
        listed.unlink()
    assert len(read_dataset(root).train) == len(shapes.samples)


def test_val_txt_takes_its_images_out_of_trainval(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    sets = root / "ImageSets/Main"
    (sets / "train.txt").rename(sets / "trainval.txt")
    (sets / "trainval.txt").write_text("".join(f"{s.image.stem}\n" for s in shapes.samples))
    data = read_dataset(root)
    assert [s.image.name for s in data.train] == [s.image.name for s in shapes.train]
    assert [s.image.name for s in data.val] == [s.image.name for s in shapes.val]


def test_an_image_set_naming_a_missing_annotation_is_named_with_its_line(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    with (root / "ImageSets/Main/train.txt").open("a") as f:
        f.write("\nghost\n")
    line = len((root / "ImageSets/Main/train.txt").read_text().splitlines())
    message = f"ImageSets/Main/train.txt:{line}: no Annotations/ghost.xml"
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_dataset(root)


def test_without_labels_txt_the_classes_are_the_names_seen_sorted(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc", labels_txt=False)
    for xml in (root / "Annotations").iterdir():
        xml.write_text(xml.read_text().replace("<name>disc</name>", "<name>zdisc</name>"))
    data = read_dataset(root)
    assert data.class_names == ("background", "square", "triangle", "zdisc")
    renamed = {"disc": "zdisc"}
    for read, sample in zip(data.train, shapes.train, strict=True):
        names = [shapes.class_names[label] for label in sample.labels]
        assert [data.class_names[label] for label in read.labels] == [
            renamed.get(n, n) for n in names
        ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "Disc",
            "object names: class names 'Disc' and 'disc' are one class where a class is named "
            "(case and surrounding spaces aside, as in `labels:` and `evaluate`)",
        ),
        (
            "di&#10;sc",
            "object names: class name 'di\\nsc' holds a control character (a newline, a tab...)",
        ),
    ],
    ids=["alike but for case: one class named twice", "a control character"],
)
def test_an_object_name_a_class_cannot_have_is_refused(
    shapes: ShapesData, tmp_path: Path, name: str, problem: str
) -> None:
    root = write_voc(shapes, tmp_path / "voc", labels_txt=False)
    first = sorted((root / "Annotations").iterdir())[0]
    first.write_text(first.read_text().replace("<name>disc</name>", f"<name>{name}</name>"))
    with pytest.raises(DatasetError) as refused:
        read_dataset(root)
    assert refused.value.problems == (problem,)


def test_labels_txt_orders_the_classes(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    (root / "labels.txt").write_text("triangle\nsquare\ndisc\nhexagon\n")
    data = read_dataset(root)
    assert data.class_names == ("background", "triangle", "square", "disc", "hexagon")
    first = shapes.train[0]
    assert [data.class_names[label] for label in data.train[0].labels] == [
        shapes.class_names[label] for label in first.labels
    ]


def test_an_annotation_without_size_takes_the_image_size(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    xml = root / "Annotations/0000.xml"
    xml.write_text(re.sub(r"<size>.*</size>", "", xml.read_text(), flags=re.S))
    first = read_dataset(root).train[0]
    assert (first.width, first.height) == (shapes.train[0].width, shapes.train[0].height)


def test_difficult_objects_are_kept(shapes: ShapesData, tmp_path: Path) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    xml = root / "Annotations/0000.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>"))
    assert len(read_dataset(root).train[0].boxes) == len(shapes.train[0].boxes)


def test_xml_lines_are_those_of_the_elements() -> None:
    root, lines = parse_xml(b"<a>\n  <b/>\n\n  <c>\n    <d>1</d>\n  </c>\n</a>\n")
    assert [lines[e] for e in root.iter()] == [1, 2, 4, 5]


@pytest.mark.parametrize(
    "document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["entity expansion", "external entity"]
)
def test_xml_with_entity_declarations_is_refused(
    document: str, shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    (root / "Annotations/0000.xml").write_text(document)
    message = "Annotations/0000.xml:2: DOCTYPE and ENTITY declarations are refused"
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_dataset(root)


def test_parse_xml_refuses_a_doctype_before_expanding_anything() -> None:
    with pytest.raises(FileProblem, match="refused"):
        parse_xml(BILLION_LAUGHS.encode())


def test_an_xml_file_larger_than_the_bound_is_refused_unread(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    with (root / "Annotations/0000.xml").open("ab") as f:
        f.truncate(MAX_XML_BYTES + 1)
    with pytest.raises(DatasetError, match=re.escape("Annotations/0000.xml: file too large")):
        read_dataset(root)


def test_a_voc_image_id_listed_twice_is_refused_naming_both_lines(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    with (root / "ImageSets/Main/train.txt").open("a") as listed:
        listed.write("0000\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    line = len(shapes.train) + 1
    assert caught.value.problems == (
        f"ImageSets/Main/train.txt:{line}: 0000 is listed on line 1 too",
    )


def test_a_size_of_thousands_of_digits_is_named_not_raised(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    xml = root / "Annotations/0000.xml"
    xml.write_text(re.sub(r"<width>\d+</width>", f"<width>{'9' * 5000}</width>", xml.read_text()))
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    (problem,) = caught.value.problems
    assert re.match(r"Annotations/0000\.xml:\d+: size: width and height must be positive", problem)
    assert len(problem) < 200


def test_an_annotation_that_is_a_pipe_is_refused_not_waited_on(
    shapes: ShapesData, tmp_path: Path
) -> None:
    root = write_voc(shapes, tmp_path / "voc")
    (root / "Annotations/0000.xml").unlink()
    os.mkfifo(root / "Annotations/0000.xml")  # reading it would block until someone writes
    with pytest.raises(DatasetError) as caught:
        read_dataset(root)
    assert caught.value.problems == (
        "Annotations/0000.xml: not a regular file (a folder, a device or a pipe)",
    )
