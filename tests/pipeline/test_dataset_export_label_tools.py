"""What `dataset export` writes, imported by a labelling tool's own code: Label Studio's
COCO converter makes a task of every image and a rectangle of every stored box."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.dataset_export import export_dataset
from tests.pipeline.test_dataset_export import Recorded, recorded, stored_rows

__all__ = ["recorded"]  # the fixture, shared with the export's own tests

ls_coco = pytest.importorskip(
    "label_studio_converter.imports.coco",
    reason="label-studio-converter is not installed (pip install -e '.[labeltools]')",
)

IMAGE_ROOT = "/data/local-files/?d=dataset"


def test_label_studio_imports_every_image_box_and_class_of_an_export(
    recorded: Recorded, tmp_path: Path
) -> None:
    export_dataset(recorded.request())
    doc = json.loads((recorded.out / "annotations.json").read_text())
    tasks_file = tmp_path / "tasks.json"
    ls_coco.convert_coco_to_ls(
        str(recorded.out / "annotations.json"),
        str(tasks_file),
        out_type="predictions",
        image_root_url=IMAGE_ROOT,
    )
    tasks = json.loads(tasks_file.read_text())

    # a task per image, in id order, pointing at the exported picture
    assert len(tasks) == len(doc["images"])
    by_frame = {}
    for task, image in zip(tasks, doc["images"], strict=True):
        assert task["data"]["image"] == f"{IMAGE_ROOT}/{image['file_name']}"
        assert (recorded.out / image["file_name"]).is_file()
        (prediction,) = task["predictions"]
        by_frame[image["camera"], image["frame"]] = (prediction["result"], image)

    # a rectangle per stored box, named by its label, where it was stored
    rows = stored_rows(recorded.db)
    for row in rows:
        results, image = by_frame[row["camera"], row["frame"]]
        width, height = image["width"], image["height"]
        as_read = [
            (r["value"]["rectanglelabels"], [
                r["value"]["x"] * width / 100, r["value"]["y"] * height / 100,
                (r["value"]["x"] + r["value"]["width"]) * width / 100,
                (r["value"]["y"] + r["value"]["height"]) * height / 100,
            ]) for r in results if r["type"] == "rectanglelabels"
        ]  # fmt: skip
        stored = [row[k] for k in ("x1", "y1", "x2", "y2")]
        assert any(
            labels == [row["label"]] and box == pytest.approx(stored, abs=1e-6)
            for labels, box in as_read
        ), (row, as_read)
    rectangles = [
        r
        for task in tasks
        for r in task["predictions"][0]["result"]
        if r["type"] == "rectanglelabels"
    ]
    assert len(rectangles) == len(rows) == len(doc["annotations"])
    # nothing but rectangles: an export holds boxes, not outlines
    assert all(r["type"] == "rectanglelabels" for t in tasks for r in t["predictions"][0]["result"])

    # the labelling config offers the export's classes
    config = (tmp_path / "tasks.label_config.xml").read_text()
    offered = set(re.findall(r'<Label value="([^"]+)"', config))
    assert offered == {c["name"] for c in doc["categories"]} == {"person", "car"}
