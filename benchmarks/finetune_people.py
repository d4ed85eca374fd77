"""A person dataset made from real footage for the fine-tuning figure of docs/training.md:
frames of ../shared/data/vtest.avi, labelled by the bundled person model (float32) looking
closer than it does when deployed.

    nice -n 10 python -m benchmarks.finetune_people --out /tmp/people
    python -m pipeline evaluate --model person_ssdlite --data /tmp/people   # before
    nice -n 10 python -m pipeline train --data /tmp/people --out /tmp/run --epochs 3 --lr 0.0005
    python -m pipeline evaluate --model /tmp/run/best.pt --data /tmp/people   # after

Deployed, the model sees each 768x576 frame shrunk to 300x300, where the people at the far
end of the yard are 20-30 pixels tall. The labels come from the same model run on sixteen
overlapping crops of the frame (4x4, each 5/8 of its width and height, so people are 1.6
times larger on the model's input) at score threshold `LABEL_SCORE`, merged by
non-maximum suppression; a box touching a crop's inner edge is dropped (the person is cut
there, and whole in a neighbouring crop). No
person reviewed them: they are the model's own guesses with a closer look, so the figure
says how much of that closer look fine-tuning teaches the whole-frame model.

Every `--every`-th frame is kept; the first `--train-fraction` of the clip trains, the rest
(a later stretch of time, other people walking) is held out for validation.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torchvision.ops import nms

from detector.engine import Detector
from detector.request import DetectorRequest
from pipeline.types import Frame
from tests.conftest import SHARED_DATA

TILES = 4
"""Crops per side: each is (TILES + 1) / (2 * TILES) of the frame's side, overlapping."""
EDGE = 2.0
"""Pixels from a crop's inner edge within which a box counts as cut there."""
LABEL_SCORE = 0.3
"""Score from which the crops' boxes become labels: lower than the deployed default (0.5)
finds more of the small people, and a few boxes that are no one."""
MERGE_IOU = 0.5
"""Boxes of two crops overlapping more than this are one person (the better one kept)."""


def frames(video: Path, every: int) -> list[npt.NDArray[np.uint8]]:
    """Every `every`-th frame of `video`, RGB at its own size."""
    with av.open(str(video)) as container:
        return [
            frame.to_ndarray(format="rgb24")
            for i, frame in enumerate(container.decode(video=0))
            if i % every == 0
        ]


def tiles(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) of the TILES x TILES overlapping crops of a frame."""
    tile_w, tile_h = width * (TILES + 1) // (2 * TILES), height * (TILES + 1) // (2 * TILES)
    xs = np.linspace(0, width - tile_w, TILES).round().astype(int)
    ys = np.linspace(0, height - tile_h, TILES).round().astype(int)
    return [(int(x), int(y), int(x) + tile_w, int(y) + tile_h) for y in ys for x in xs]


def label(detector: Detector, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Person boxes [N, 4] xyxy in `image`'s pixels, found on its crops (see the module)."""
    height, width = image.shape[:2]
    parts = tiles(height, width)
    crops = [
        Frame("label", i, 0.0, 0.0, np.ascontiguousarray(image[y1:y2, x1:x2]))
        for i, (x1, y1, x2, y2) in enumerate(parts)
    ]
    boxes, scores = [], []
    for (x1, y1, x2, y2), found in zip(parts, detector.detect(crops), strict=True):
        shifted = found.xyxy + np.array([x1, y1, x1, y1], dtype=np.float32)
        inner_cut = (
            ((shifted[:, 0] <= x1 + EDGE) & (x1 > 0))
            | ((shifted[:, 1] <= y1 + EDGE) & (y1 > 0))
            | ((shifted[:, 2] >= x2 - EDGE) & (x2 < width))
            | ((shifted[:, 3] >= y2 - EDGE) & (y2 < height))
        )
        boxes.append(shifted[~inner_cut])
        scores.append(found.score[~inner_cut])
    xyxy, score = torch.from_numpy(np.concatenate(boxes)), torch.from_numpy(np.concatenate(scores))
    return xyxy[nms(xyxy, score, MERGE_IOU)].numpy()


def write(
    out: Path,
    split: str,
    images: Sequence[tuple[str, npt.NDArray[np.uint8]]],
    boxes: Sequence[npt.NDArray[np.float32]],
) -> int:
    """out/{split}.json (COCO, one class "person") and the images in out/images; box count."""
    doc: dict[str, list[dict[str, object]]] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "person"}],
    }
    for image_id, ((name, pixels), found) in enumerate(zip(images, boxes, strict=True), 1):
        Image.fromarray(pixels).save(out / "images" / name, quality=95)
        doc["images"].append(
            {
                "id": image_id,
                "file_name": f"images/{name}",
                "width": pixels.shape[1],
                "height": pixels.shape[0],
            }
        )
        for x1, y1, x2, y2 in found.tolist():
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    (out / f"{split}.json").write_text(json.dumps(doc, indent=1))
    return len(doc["annotations"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=3, help="keep every N-th frame")
    parser.add_argument("--train-fraction", type=float, default=0.75)
    parser.add_argument("--video", type=Path, default=SHARED_DATA / "vtest.avi")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    detector = Detector.build(
        DetectorRequest(model="person_ssdlite", precision="fp32", score_threshold=LABEL_SCORE)
    )
    clip = frames(args.video, args.every)
    images = [(f"{i * args.every:05d}.jpg", pixels) for i, pixels in enumerate(clip)]
    boxes = [label(detector, pixels) for _, pixels in images]
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    cut = round(len(images) * args.train_fraction)
    for split, part in (("train", slice(None, cut)), ("val", slice(cut, None))):
        count = write(args.out, split, images[part], boxes[part])
        print(f"{args.out}/{split}.json: {len(images[part])} images, {count} person boxes")


if __name__ == "__main__":
    main()
