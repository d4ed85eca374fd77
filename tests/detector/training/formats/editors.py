"""Breaking one annotation of a written shapes dataset, the same way in every format.

Each editor writes the dataset in its format, changes the first object (or image) of the
first training image, and returns where read_dataset must say the problem is: "FILE:LINE"
or "FILE: annotation id N".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.detector.training.datasets import (
    IMAGE_SIZE,
    ShapesData,
    write_coco,
    write_voc,
    write_yolo,
)


class CocoEditor:
    name = "coco"

    def write(self, shapes: ShapesData, root: Path) -> Path:
        return write_coco(shapes, root)

    def _edit(self, root: Path, change: Any) -> None:
        doc = json.loads((root / "train.json").read_text())
        change(doc)
        (root / "train.json").write_text(json.dumps(doc, indent=1))

    def set_first_box(self, root: Path, xyxy: tuple[float, ...]) -> str:
        x1, y1, x2, y2 = xyxy
        self._edit(root, lambda d: d["annotations"][0].update(bbox=[x1, y1, x2 - x1, y2 - y1]))
        return "train.json: annotation id 1"

    def set_first_class(self, root: Path) -> str:
        self._edit(root, lambda d: d["annotations"][0].update(category_id=99))
        return "train.json: annotation id 1"

    def declare_first_size(self, root: Path, width: int, height: int) -> str:
        self._edit(root, lambda d: d["images"][0].update(width=width, height=height))
        return "train.json: image id 1"

    def first_image(self, root: Path) -> tuple[Path, str]:
        return root / "images" / "0000.jpg", "train.json: image id 1"

    def break_syntax(self, root: Path) -> str:
        lines = (root / "train.json").read_text().splitlines()
        lines[5] += ","  # a second comma after the first image's file_name
        (root / "train.json").write_text("\n".join(lines))
        return "train.json:6"

    def break_type(self, root: Path) -> str:
        self._edit(root, lambda d: d["annotations"][0].update(bbox="10 10 5 5"))
        return "train.json: annotation id 1"

    def train_on_a_validation_image(self, root: Path) -> str:
        """Lists the first validation image for training too; returns the problem."""
        image = json.loads((root / "val.json").read_text())["images"][0]
        self._edit(root, lambda d: d["images"].append({**image, "id": 99}))
        return (
            "val.json: image id 1: the same image file as train.json: image id 99 "
            f"({image['file_name']})"
        )


class VocEditor:
    name = "voc"
    xml = "Annotations/0000.xml"

    def write(self, shapes: ShapesData, root: Path) -> Path:
        return write_voc(shapes, root)

    def _object_line(self, root: Path) -> int:
        return (root / self.xml).read_text().splitlines().index("  <object>") + 1

    def _edit(self, root: Path, pattern: str, new: str) -> None:
        text = (root / self.xml).read_text()
        (root / self.xml).write_text(re.sub(pattern, new, text, count=1))

    def set_first_box(self, root: Path, xyxy: tuple[float, ...]) -> str:
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), xyxy, strict=True):
            corner = value + 1 if tag in ("xmin", "ymin") else value  # VOC counts from 1
            self._edit(root, f"<{tag}>[^<]*</{tag}>", f"<{tag}>{corner:g}</{tag}>")
        return f"{self.xml}:{self._object_line(root)}"

    def set_first_class(self, root: Path) -> str:
        self._edit(root, "<name>[^<]*</name>", "<name>zebra</name>")
        return f"{self.xml}:{self._object_line(root)}"

    def declare_first_size(self, root: Path, width: int, height: int) -> str:
        self._edit(root, "<width>[^<]*</width>", f"<width>{width}</width>")
        self._edit(root, "<height>[^<]*</height>", f"<height>{height}</height>")
        return self.xml

    def first_image(self, root: Path) -> tuple[Path, str]:
        return root / "JPEGImages" / "0000.jpg", self.xml

    def break_syntax(self, root: Path) -> str:
        self._edit(root, "</size>", "</sise>")
        line = (root / self.xml).read_text().splitlines().index("  </sise>") + 1
        return f"{self.xml}:{line}"

    def break_type(self, root: Path) -> str:
        self._edit(root, "<xmin>[^<]*</xmin>", "<xmin>left</xmin>")
        return f"{self.xml}:{self._object_line(root)}"

    def train_on_a_validation_image(self, root: Path) -> str:
        """A training annotation of its own for the first validation image."""
        first = (root / "ImageSets/Main/val.txt").read_text().split()[0]
        xml = (root / f"Annotations/{first}.xml").read_text()
        (root / "Annotations/extra.xml").write_text(xml)
        with (root / "ImageSets/Main/train.txt").open("a") as listed:
            listed.write("extra\n")
        return (
            f"Annotations/{first}.xml: the same image file as Annotations/extra.xml "
            f"(JPEGImages/{first}.jpg)"
        )


class YoloEditor:
    name = "yolo"
    labels = "labels/train/0000.txt"

    def write(self, shapes: ShapesData, root: Path) -> Path:
        return write_yolo(shapes, root)

    def _set_first_line(self, root: Path, line: str) -> None:
        lines = (root / self.labels).read_text().splitlines()
        (root / self.labels).write_text("\n".join([line, *lines[1:]]) + "\n")

    def set_first_box(self, root: Path, xyxy: tuple[float, ...]) -> str:
        x1, y1, x2, y2 = xyxy
        w, h = IMAGE_SIZE
        label = (root / self.labels).read_text().split()[0]
        self._set_first_line(
            root,
            f"{label} {(x1 + x2) / 2 / w!r} {(y1 + y2) / 2 / h!r} "
            f"{(x2 - x1) / w!r} {(y2 - y1) / h!r}",
        )
        return f"{self.labels}:1"

    def set_first_class(self, root: Path) -> str:
        fields = (root / self.labels).read_text().splitlines()[0].split()
        self._set_first_line(root, " ".join(["7", *fields[1:]]))
        return f"{self.labels}:1"

    def first_image(self, root: Path) -> tuple[Path, str]:
        """The image is listed in train.txt, so that a missing one is noticed."""
        images = sorted(p.name for p in (root / "images/train").iterdir())
        (root / "train.txt").write_text("".join(f"images/train/{n}\n" for n in images))
        text = (root / "data.yaml").read_text().replace("train: images/train", "train: train.txt")
        (root / "data.yaml").write_text(text)
        return root / "images/train/0000.jpg", "train.txt:1"

    def break_syntax(self, root: Path) -> str:
        lines = (root / "data.yaml").read_text().splitlines()
        n = next(i for i, line in enumerate(lines) if line.startswith("train:"))
        lines[n] = "train: images: train"  # a mapping where a value must be
        (root / "data.yaml").write_text("\n".join(lines) + "\n")
        return f"data.yaml:{n + 1}"

    def break_type(self, root: Path) -> str:
        self._set_first_line(root, "0 0.5 half 0.1 0.1")
        return f"{self.labels}:1"

    def train_on_a_validation_image(self, root: Path) -> str:
        """Validation from a list that names a training image too."""
        first = sorted(p.name for p in (root / "images/val").iterdir())[0]
        (root / "val.txt").write_text(f"images/val/{first}\nimages/train/0000.jpg\n")
        text = (root / "data.yaml").read_text().replace("val: images/val", "val: val.txt")
        (root / "data.yaml").write_text(text)
        return "val.txt:2: the same image file as data.yaml: train (images/train/0000.jpg)"


EDITORS = (CocoEditor(), VocEditor(), YoloEditor())
SIZED = (CocoEditor(), VocEditor())
"""The formats that declare each image's size."""
