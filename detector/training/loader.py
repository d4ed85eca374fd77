"""Samples to model inputs: decode, transform, normalise boxes, batch.

`SampleDataset` is a torch Dataset of (image, boxes, labels); `collate` stacks them into
a `TrainBatch`. `SampleLoader` batches a dataset reproducibly: every item's augmentation
is drawn from its own seed, made from `seed`, the epoch and the item's index, so the same
`seed` gives the same batches whatever the number of worker processes, and a broken image
raises DatasetError in the caller's process, not inside a worker's traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from detector.training.images import UnreadableImage, decode_rgb
from detector.training.samples import DatasetError, Sample
from detector.training.transforms import transform_input

EPOCH_STRIDE = 1_000_003
"""Seeds of epochs: seed * EPOCH_STRIDE + epoch, distinct for any run of under a million epochs."""
Transform = Callable[[dict[str, Tensor]], dict[str, Tensor]]
Item = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class TrainBatch:
    """A batch of transformed samples.

    Attributes:
        images: uint8 [B, 3, S, S].
        boxes: B tensors float32 [Ni, 4], xyxy normalised to [0, 1] of the image.
        labels: B tensors int64 [Ni], class indices 1..K.
    """

    images: Tensor
    boxes: list[Tensor]
    labels: list[Tensor]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainBatch:
        """The batch on `device`."""
        return TrainBatch(
            self.images.to(device, non_blocking=non_blocking),
            [b.to(device, non_blocking=non_blocking) for b in self.boxes],
            [lab.to(device, non_blocking=non_blocking) for lab in self.labels],
        )

    def pin_memory(self) -> TrainBatch:
        """The batch in page-locked memory (DataLoader's pin_memory calls this)."""
        return TrainBatch(
            self.images.pin_memory(),
            [b.pin_memory() for b in self.boxes],
            [lab.pin_memory() for lab in self.labels],
        )


def read_image(sample: Sample) -> Tensor:
    """The upright pixels of `sample.image`, uint8 [3, H, W] RGB; DatasetError naming the
    file if it cannot be decoded or its size is not the annotated one."""
    try:
        pixels = decode_rgb(sample.image)
    except UnreadableImage as e:
        raise DatasetError([f"{sample.origin}: {e}: {sample.image}"]) from None
    height, width = pixels.shape[:2]
    if (width, height) != (sample.width, sample.height):
        raise DatasetError(
            [
                f"{sample.origin}: image {sample.image} is {width}x{height}, "
                f"the annotation says {sample.width}x{sample.height}"
            ]
        )
    return torch.from_numpy(pixels).permute(2, 0, 1)


class SampleDataset(Dataset[Item]):
    """Samples as model inputs: (image uint8 [3, S, S], boxes float32 [N, 4] xyxy
    normalised to the image, labels int64 [N]) after `transform` (transforms.py)."""

    def __init__(self, samples: Sequence[Sample], transform: Transform) -> None:
        self.samples = tuple(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        sample = self.samples[index]
        image = read_image(sample)
        out = self.transform(
            transform_input(image, torch.tensor(sample.boxes), torch.tensor(sample.labels))
        )
        pixels = out["image"].as_subclass(Tensor)
        height, width = pixels.shape[-2:]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        boxes = out["boxes"].as_subclass(Tensor).to(torch.float32) / scale
        return pixels, boxes, out["labels"]


def collate(batch: Sequence[Item]) -> TrainBatch:
    """Stacks same-sized items into a TrainBatch (boxes and labels stay per image)."""
    images, boxes, labels = zip(*batch, strict=True)
    return TrainBatch(torch.stack(images), list(boxes), list(labels))


class SampleLoader:
    """Batches of `dataset` in shuffled (or given) order, reproducible from `seed`.

    The order of each epoch and a seed per epoch are drawn from a torch.Generator seeded
    with `seed` and the epoch's number; each item is transformed under a forked torch RNG
    seeded from the epoch's seed and its index (torchvision's transforms draw from torch's
    RNG). The process-wide RNG is left untouched, and `workers` changes speed only, not the
    batches. Iterating the loader gives epochs 1, 2, ... in turn; `epoch(n, skip)` gives
    epoch n from its batch `skip` on, exactly as it would have come (a resumed training).
    """

    def __init__(
        self,
        dataset: SampleDataset,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        workers: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.order = _SeededOrder(len(dataset), shuffle, seed)
        self.next_epoch = 1
        self.loader = DataLoader(
            _SeededItems(dataset),
            batch_size=batch_size,
            sampler=self.order,
            num_workers=workers,
            collate_fn=_collate_or_broken,
            drop_last=drop_last,
            pin_memory=pin_memory,
            persistent_workers=workers > 0,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[TrainBatch]:
        self.next_epoch += 1
        return self.epoch(self.next_epoch - 1)

    def epoch(self, number: int, skip: int = 0) -> Iterator[TrainBatch]:
        """The batches of epoch `number` (from 1), the first `skip` of them left out."""
        self.order.epoch, self.order.skip = number, skip * self.batch_size
        for batch in self.loader:
            if isinstance(batch, _Broken):
                raise DatasetError(batch.problems)
            yield batch


@dataclass(frozen=True)
class _Broken:
    """What a worker returns in place of a batch holding a sample it could not load."""

    problems: tuple[str, ...]

    def pin_memory(self) -> _Broken:
        return self


class _SeededOrder(Sampler[tuple[int, int]]):
    """(epoch seed, index) for every index of epoch `epoch` from position `skip` on,
    shuffled if asked; the same (seed, epoch) always gives the same keys."""

    def __init__(self, size: int, shuffle: bool, seed: int) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.epoch, self.skip = 1, 0

    def __len__(self) -> int:
        return max(0, self.size - self.skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * EPOCH_STRIDE + self.epoch)
        epoch_seed = int(torch.randint(0, 2**62, (), generator=generator))
        order = (
            torch.randperm(self.size, generator=generator).tolist()
            if self.shuffle
            else list(range(self.size))
        )
        return ((epoch_seed, i) for i in order[self.skip :])


class _SeededItems(Dataset["Item | _Broken"]):
    """`dataset[index]` for keys (epoch seed, index), drawn under a forked torch RNG."""

    def __init__(self, dataset: SampleDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Item | _Broken:
        epoch_seed, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((epoch_seed + index) % 2**63)
            try:
                return self.dataset[index]
            except DatasetError as e:
                return _Broken(e.problems)


def _collate_or_broken(batch: Sequence[Item | _Broken]) -> TrainBatch | _Broken:
    broken = [p for item in batch if isinstance(item, _Broken) for p in item.problems]
    if broken:
        return _Broken(tuple(broken))
    return collate(batch)  # type: ignore[arg-type]  # no _Broken left
