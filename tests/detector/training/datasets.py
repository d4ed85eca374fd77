"""Tiny detection datasets for tests: solid coloured shapes with exact boxes, written as
COCO, Pascal VOC or YOLO so that all three describe the same images and boxes.

    data = make_shapes_dataset(tmp_path / "shapes", images=12, val=4, seed=0)
    folder = write_coco(data, tmp_path / "coco")   # or write_voc / write_yolo
    read_dataset(folder)                           # train and val as in `data`

Each image is a 320x240 JPEG: a frame of ../shared/data/vtest.avi (people crossing a
yard), or of its mirror image, when that file is present, else a noisy synthetic
background; on it 1-3 non-overlapping objects (a red square, a green disc or a blue
triangle, 20-90 pixels across). Each box is the exact extent of the object's pixels: xyxy
with x2, y2 one past the last pixel. Class names are "background", "disc", "square",
"triangle" (sorted, so a VOC folder without labels.txt gets the same labels).

The shared `shapes` fixture (conftest.py) is one such dataset of 12 images, 4 for val.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import yaml
from PIL import Image

from detector.training.samples import Sample
from tests.conftest import SHARED_DATA

CLASS_NAMES = ("background", "disc", "square", "triangle")
COLOURS = {1: (40, 200, 60), 2: (230, 40, 40), 3: (50, 90, 240)}
"""RGB of each class's objects."""
IMAGE_SIZE = (320, 240)
"""(width, height) of every image."""
SIDES = (20, 90)
"""Smallest and largest object side in pixels."""


@dataclass(frozen=True)
class ShapesData:
    """The made dataset: `class_names` ("background" first) and its samples."""

    class_names: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]

    @property
    def samples(self) -> tuple[Sample, ...]:
        return self.train + self.val


def make_shapes_dataset(root: Path, images: int = 40, val: int = 0, seed: int = 0) -> ShapesData:
    """`images` JPEGs in `root` (the last `val` of them for validation), drawn from `seed`."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = _video_frames()
    samples = []
    for i in range(images):
        pixels = frames[i % len(frames)].copy() if frames else _noisy(rng)
        boxes, labels = draw_objects(pixels, rng)
        path = root / f"{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=95)
        samples.append(Sample(path.resolve(), *IMAGE_SIZE, boxes, labels, f"shapes {path.name}"))
    cut = images - val
    return ShapesData(CLASS_NAMES, tuple(samples[:cut]), tuple(samples[cut:]))


def val_without_boxes(data: ShapesData) -> ShapesData:
    """`data` whose validation images hold no box (negative examples only)."""
    empty = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    val = tuple(replace(s, boxes=empty[0], labels=empty[1]) for s in data.val)
    return replace(data, val=val)


def write_coco(data: ShapesData, root: Path) -> Path:
    """root/train.json (and root/val.json if `data` has val images), images in root/images/;
    returns `root`. Category ids are 1..K."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i, "name": n} for i, n in enumerate(data.class_names) if i]
    for name, samples in (("train", data.train), ("val", data.val)):
        if name == "val" and not samples:
            continue
        doc: dict[str, list[dict[str, object]]] = {
            "images": [],
            "annotations": [],
            "categories": categories,
        }
        for image_id, sample in enumerate(samples, start=1):
            shutil.copy(sample.image, root / "images" / sample.image.name)
            doc["images"].append(
                {
                    "id": image_id,
                    "file_name": f"images/{sample.image.name}",
                    "width": sample.width,
                    "height": sample.height,
                }
            )
            for (x1, y1, x2, y2), label in zip(
                sample.boxes.tolist(), sample.labels.tolist(), strict=True
            ):
                doc["annotations"].append(
                    {
                        "id": len(doc["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": label,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        (root / f"{name}.json").write_text(json.dumps(doc, indent=1))
    return root


def write_voc(data: ShapesData, root: Path, labels_txt: bool = True) -> Path:
    """root/Annotations/*.xml, root/JPEGImages/*.jpg, root/ImageSets/Main/train.txt (and
    val.txt if `data` has val images), root/labels.txt unless `labels_txt` is False;
    returns `root`. Corners count pixels from 1, as in the VOC devkit."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    if labels_txt:
        (root / "labels.txt").write_text("\n".join(data.class_names[1:]) + "\n")
    for name, samples in (("train", data.train), ("val", data.val)):
        if name == "val" and not samples:
            continue
        ids = [s.image.stem for s in samples]
        (root / "ImageSets/Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
        for sample in samples:
            shutil.copy(sample.image, root / "JPEGImages" / sample.image.name)
            (root / "Annotations" / f"{sample.image.stem}.xml").write_text(
                _voc_xml(sample, data.class_names)
            )
    return root


def write_yolo(data: ShapesData, root: Path) -> Path:
    """root/data.yaml, root/images/{train,val}/*.jpg, root/labels/{train,val}/*.txt;
    returns `root`."""
    for name, samples in (("train", data.train), ("val", data.val)):
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        (root / "labels" / name).mkdir(parents=True, exist_ok=True)
        for sample in samples:
            shutil.copy(sample.image, root / "images" / name / sample.image.name)
            lines = []
            for (x1, y1, x2, y2), label in zip(
                sample.boxes.tolist(), sample.labels.tolist(), strict=True
            ):
                w, h = sample.width, sample.height
                lines.append(
                    f"{label - 1} {(x1 + x2) / 2 / w!r} {(y1 + y2) / 2 / h!r} "
                    f"{(x2 - x1) / w!r} {(y2 - y1) / h!r}\n"
                )
            (root / "labels" / name / f"{sample.image.stem}.txt").write_text("".join(lines))
    doc = {"path": ".", "train": "images/train", "names": list(data.class_names[1:])}
    if data.val:
        doc["val"] = "images/val"
    (root / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


def _voc_xml(sample: Sample, class_names: tuple[str, ...]) -> str:
    objects = "".join(
        f"  <object>\n    <name>{class_names[label]}</name>\n    <difficult>0</difficult>\n"
        f"    <bndbox>\n      <xmin>{x1 + 1:g}</xmin>\n      <ymin>{y1 + 1:g}</ymin>\n"
        f"      <xmax>{x2:g}</xmax>\n      <ymax>{y2:g}</ymax>\n    </bndbox>\n  </object>\n"
        for (x1, y1, x2, y2), label in zip(
            sample.boxes.tolist(), sample.labels.tolist(), strict=True
        )
    )
    return (
        f"<annotation>\n  <folder>JPEGImages</folder>\n"
        f"  <filename>{sample.image.name}</filename>\n"
        f"  <size>\n    <width>{sample.width}</width>\n    <height>{sample.height}</height>\n"
        f"    <depth>3</depth>\n  </size>\n{objects}</annotation>\n"
    )


def shape_mask(label: int, side: int) -> npt.NDArray[np.bool_]:
    """bool [side, side]: the pixels of a class-`label` object drawn in a side x side square
    (a square fills it; a disc and an upward triangle touch its edges, or nearly)."""
    centre = (np.arange(side) + 0.5) - side / 2  # pixel centres from the middle
    x, y = np.meshgrid(centre, centre)
    if CLASS_NAMES[label] == "square":
        return np.ones((side, side), bool)
    if CLASS_NAMES[label] == "disc":
        return np.asarray(x**2 + y**2 <= (side / 2) ** 2)
    return np.asarray(np.abs(x) <= (y + side / 2) / 2 + 0.5)  # apex at the top


def draw_objects(
    pixels: npt.NDArray[np.uint8], rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Draws 1-3 non-overlapping objects into `pixels`; their exact boxes and labels."""
    width, height = IMAGE_SIZE
    taken = np.zeros((height, width), bool)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            label = int(rng.integers(1, len(CLASS_NAMES)))
            side = int(rng.integers(SIDES[0], SIDES[1] + 1))
            x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            if not taken[max(0, y - 2) : y + side + 2, max(0, x - 2) : x + side + 2].any():
                break
        else:
            continue
        mask = shape_mask(label, side)
        pixels[y : y + side, x : x + side][mask] = COLOURS[label]
        taken[y : y + side, x : x + side] = True
        rows, cols = np.nonzero(mask)
        boxes.append((x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1))
        labels.append(label)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


@functools.lru_cache(maxsize=1)
def _video_frames() -> tuple[npt.NDArray[np.uint8], ...]:
    """Frames of vtest.avi at IMAGE_SIZE and their mirror images; none without the file."""
    video = SHARED_DATA / "vtest.avi"
    if not video.is_file():
        return ()
    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10 == 0:
                rgb = frame.reformat(width=IMAGE_SIZE[0], height=IMAGE_SIZE[1], format="rgb24")
                frames.append(rgb.to_ndarray())
            if len(frames) == 4:
                break
    return tuple(frames) + tuple(np.ascontiguousarray(f[:, ::-1]) for f in frames)


def _noisy(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A grey gradient with noise, IMAGE_SIZE."""
    width, height = IMAGE_SIZE
    ramp = np.linspace(60, 180, width)[None, :, None] + rng.normal(0, 20, (height, width, 3))
    return np.clip(ramp, 0, 255).astype(np.uint8)
