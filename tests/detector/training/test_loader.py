"""SampleDataset, collate and SampleLoader: model inputs from samples, reproducibly."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from detector.training.loader import SampleDataset, SampleLoader, TrainBatch, collate
from detector.training.samples import DatasetError, Sample
from detector.training.transforms import eval_transform, train_transform
from tests.detector.training.datasets import ShapesData

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 64
SMALLEST_BOX = 0.1
"""The side of the smallest default box, as a fraction of the input's (the bundled model's)."""


def copied(samples: tuple[Sample, ...], folder: Path) -> list[Sample]:
    """The samples with their images copied into `folder`, free to be broken."""
    folder.mkdir()
    return [replace(s, image=Path(shutil.copy(s.image, folder))) for s in samples]


def test_an_item_is_the_resized_image_with_normalised_boxes(shapes: ShapesData) -> None:
    sample = shapes.train[0]
    image, boxes, labels = SampleDataset(shapes.train, eval_transform(SIZE))[0]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.uint8
    assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
    expected = sample.boxes / np.array([sample.width, sample.height] * 2, np.float32)
    np.testing.assert_allclose(boxes.numpy(), expected, atol=1e-6)
    assert labels.tolist() == sample.labels.tolist()


def test_training_items_keep_boxes_within_the_unit_square(shapes: ShapesData) -> None:
    dataset = SampleDataset(shapes.train, train_transform(SIZE, SMALLEST_BOX))
    torch.manual_seed(0)
    for i in range(len(dataset)):
        image, boxes, labels = dataset[i]
        assert image.shape == (3, SIZE, SIZE) and len(boxes) == len(labels)
        assert ((boxes >= 0) & (boxes <= 1)).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_an_image_that_no_longer_decodes_names_its_file(shapes: ShapesData, tmp_path: Path) -> None:
    samples = copied(shapes.train[:1], tmp_path / "images")
    samples[0].image.write_bytes(samples[0].image.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(DatasetError) as caught:
        SampleDataset(samples, eval_transform(SIZE))[0]
    assert caught.value.problems[0].startswith("shapes 0000.jpg: unreadable image (OSError: ")
    assert caught.value.problems[0].endswith(f": {samples[0].image}")


def test_an_image_of_another_size_than_annotated_is_named(
    shapes: ShapesData, tmp_path: Path
) -> None:
    sample = replace(shapes.train[0], width=640)
    with pytest.raises(DatasetError, match=r"is 320x240, the annotation says 640x240"):
        SampleDataset([sample], eval_transform(SIZE))[0]


def test_collate_stacks_images_and_keeps_boxes_per_image(shapes: ShapesData) -> None:
    dataset = SampleDataset(shapes.train, eval_transform(SIZE))
    batch = collate([dataset[0], dataset[1], dataset[2]])
    assert isinstance(batch, TrainBatch)
    assert batch.images.shape == (3, 3, SIZE, SIZE) and batch.images.dtype == torch.uint8
    assert [len(b) for b in batch.boxes] == [len(s.boxes) for s in shapes.train[:3]]
    assert [lab.tolist() for lab in batch.labels] == [s.labels.tolist() for s in shapes.train[:3]]
    assert all(b.shape[1:] == (4,) for b in batch.boxes)


def batches(seed: int, workers: int, shapes: ShapesData) -> list[TrainBatch]:
    dataset = SampleDataset(shapes.train[:6], train_transform(SIZE, SMALLEST_BOX))
    return list(SampleLoader(dataset, 4, shuffle=True, seed=seed, workers=workers))


def same(a: list[TrainBatch], b: list[TrainBatch]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x.images, y.images)
        and all(torch.equal(p, q) for p, q in zip(x.boxes, y.boxes, strict=True))
        and all(torch.equal(p, q) for p, q in zip(x.labels, y.labels, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def test_the_same_seed_gives_the_same_batches_whatever_the_workers(shapes: ShapesData) -> None:
    first = batches(3, 0, shapes)
    torch.manual_seed(1234)  # the process's RNG plays no part
    assert same(first, batches(3, 0, shapes))
    assert same(first, batches(3, 2, shapes))
    assert [len(b.images) for b in first] == [4, 2]
    assert not same(first, batches(4, 0, shapes))


def test_each_epoch_draws_new_augmentations(shapes: ShapesData) -> None:
    dataset = SampleDataset(shapes.train[:4], train_transform(SIZE, SMALLEST_BOX))
    loader = SampleLoader(dataset, 4, shuffle=False, seed=0)
    assert len(loader) == 1
    first, second = next(iter(loader)), next(iter(loader))
    assert not torch.equal(first.images, second.images)


def test_a_broken_image_in_a_worker_is_named_without_its_traceback(
    shapes: ShapesData, tmp_path: Path
) -> None:
    samples = copied(shapes.train[:4], tmp_path / "images")
    samples[2].image.write_bytes(b"")
    loader = SampleLoader(
        SampleDataset(samples, eval_transform(SIZE)), 2, shuffle=False, seed=0, workers=1
    )
    with pytest.raises(DatasetError) as caught:
        list(loader)
    [problem] = caught.value.problems
    assert problem.startswith("shapes 0002.jpg: unreadable image (UnidentifiedImageError: ")
    assert problem.endswith(f": {samples[2].image}")
    assert "Traceback" not in str(caught.value)


def test_a_batch_moves_to_a_device_whole(shapes: ShapesData) -> None:
    batch = collate([SampleDataset(shapes.train, eval_transform(SIZE))[0]])
    moved = batch.to("meta")
    assert moved.images.device.type == "meta"
    assert all(t.device.type == "meta" for t in [*moved.boxes, *moved.labels])
    assert batch.images.device.type == "cpu"
