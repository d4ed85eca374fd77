"""Training speed: images/s of a training step (forward, multibox loss, backward, SGD) per
base model and batch size, and of the augmentation that feeds it.

    python -m benchmarks.training                       # every base, batch 2/8/16, CPU
    python -m benchmarks.training --models person_ssdlite --batch-sizes 8 32 --device cuda
    python -m benchmarks.training --data DATA            # augmentation on your images too

Models start from random weights (no download); the step's cost does not depend on them.
Prints one markdown table; the ratio column compares each row with the first batch size of
its model. Batch 1 cannot train models with batch norm (one value per channel).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import torch

from detector.architectures import ARCHITECTURES, DEFAULT_SIZE
from detector.training.loss import MultiBoxLoss

DEFAULT_MODELS = ("person_ssdlite", "ssdlite320_mobilenet_v3_large", "ssd300_vgg16", "ssd512_vgg16")


def step_rate(arch: str, batch: int, device: torch.device, steps: int, warmup: int) -> float:
    """Images/s of training steps of `arch` at batch `batch` (after `warmup` untimed steps)."""
    size = DEFAULT_SIZE[arch]
    model = ARCHITECTURES[arch](3, size).to(device).train()
    loss = MultiBoxLoss(model.box_coder, model.anchors)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)
    images = images.to(device)
    corner = torch.rand(batch, 3, 2, generator=generator) * 0.6
    boxes = [torch.cat((c, c + 0.3), dim=1).to(device) for c in corner]
    labels = [torch.tensor([1, 2, 1], device=device) for _ in range(batch)]
    amp = device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            regression, logits = model(images)
        total = loss(regression.float(), logits.float(), boxes, labels).total
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - began)


def augmentation_rate(data: str, arch: str, images: int) -> float:
    """Images/s of reading and augmenting `images` training images of `data` for `arch`
    (its input size and smallest default box) on one core."""
    from detector.training.loader import SampleDataset
    from detector.training.samples import read_dataset
    from detector.training.transforms import smallest_default_box, train_transform

    size = DEFAULT_SIZE[arch]
    smallest = smallest_default_box(ARCHITECTURES[arch](3, size).anchors)
    samples = read_dataset(data).train[:images]
    dataset = SampleDataset(samples, train_transform(size, smallest))
    began = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return len(dataset) / (time.perf_counter() - began)


def _cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[2, 8, 16])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--data", help="also time augmentation on this dataset's images")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(
        f"# training step, {where}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {datetime.now(timezone.utc):%Y-%m-%d}"
    )
    print("| model | input | batch | images/s | vs the first |")
    print("|---|---|---|---|---|")
    for arch in args.models:
        first: float | None = None
        for batch in args.batch_sizes:
            rate = step_rate(arch, batch, device, args.steps, args.warmup)
            first = first or rate
            size = DEFAULT_SIZE[arch]
            print(f"| {arch} | {size} | {batch} | {rate:.1f} | {rate / first:.2f}x |", flush=True)
    if args.data:
        for arch in args.models:
            rate = augmentation_rate(args.data, arch, 64)
            print(f"augmentation at {DEFAULT_SIZE[arch]}: {rate:.1f} images/s on one core")


if __name__ == "__main__":
    main()
