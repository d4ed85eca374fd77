"""What a training run is asked to do: every knob with its default and bounds, stated once.

The command line's options are these fields (their bounds become the argparse types), and
the checkpoint keeps them, so `--resume` continues with the same settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detector.training.evaluation import SCORE_FLOOR

WARMUP_SHARE = 0.1
"""The largest part of a run the warm-up takes. Counted in steps, not epochs, as detection
recipes count it (mmdetection's SSD: 500 iterations from a thousandth of the rate;
torchvision's references: up to 1000): an epoch is one step on 25 images in batches of 16,
where the whole warm-up was one step at a thousandth of the rate, and thousands of steps on
a large dataset, a long stretch at a low rate. The cap keeps a short fine-tuning mostly at
its rate."""

MIN_STEPS = 100
"""The fewest optimiser steps a run takes by default. What a fine-tuning learns follows its
steps, not its epochs, and an epoch of a small dataset is a step or two (25 images in
batches of 16: one). On 25 shape images, with seeds 0 and 1, 30, 60 and 100 steps scored
mAP@[.5:.95] 0.155, 0.295 and 0.481 on average, each more than the last with both seeds,
the seeds 0.222, 0.117 and 0.016 apart (docs/training.md). A dataset of a few hundred
images makes them within its first epochs and trains as if the rule were not there."""


@dataclass(frozen=True)
class BaseRecipe:
    """Defaults that suit fine-tuning one base model (from torchvision's detection recipes,
    scaled to small batches): SGD's learning rate and weight decay, and the batch size."""

    lr: float
    """The rate when the class head is made anew."""
    kept_head_lr: float
    """The rate of the whole model when its class head is kept from the base (its own
    classes): a model that knows its classes already loses less of what it knew when it
    moves slower."""
    weight_decay: float
    batch_size: int
    head_lr_factor: float
    """A class head made anew for the user's classes learns this much faster than the
    pretrained rest: at `lr` alone it barely moves in the first epochs. A head kept from
    the base (its own classes) is trained already and learns at `kept_head_lr`, like the
    rest: fine-tuning the bundled person model for `person` at 25x lost much of what it
    knew."""
    amp_on_cuda: bool
    """Whether `--amp auto` trains it in mixed precision on a CUDA device (always in
    float32 on the CPU); what each recipe's choice rests on is said beside it."""


RECIPES: dict[str, BaseRecipe] = {
    # The bundled SSDLite has its batch norms folded into the convolutions: nothing
    # renormalises its activations, and 0.01 diverged on the test shapes where 0.002 learned
    # steadily (docs/training.md).
    # Its fresh class head at 25x: on one batch of 8 shape images without augmentation, 40
    # steps took the confidence loss from 5.65 to 5.28 at 1x, 3.57 at 10x, 1.29 at 25x and
    # 0.19 at 50x, all finite (benchmarks/head_lr.py; docs/training.md, `BASE`).
    # Its kept head (fine-tuned for person on the reviewed vtest frames at batch 16, 10
    # steps, two seeds): 0.001 scored best of 0.002 to 0.000125 with both; 0.002 lost much
    # of what the model knew on the way, with one seed most of it (docs/training.md, the
    # fourth figure).
    # Float32 on CUDA: the trainer's step ran slower in mixed precision on an NVIDIA H200,
    # 0.66 and 0.69x float32's images/s at batch 8 (two runs), 0.92x at batch 32
    # (docs/training.md, "On a GPU").
    "person_ssdlite": BaseRecipe(
        lr=0.002,
        kept_head_lr=0.001,
        weight_decay=4e-5,
        batch_size=16,
        head_lr_factor=25,
        amp_on_cuda=False,
    ),
    # The others' kept_head_lr: half of lr, as measured for person_ssdlite; a guess.
    # MobileNetV3 SSDLite with its batch norms: torchvision's recipe rate, scaled to batch 16.
    # Float32 on CUDA: mixed precision stepped at 0.93x float32's images/s at batch 8 and
    # 0.77x at batch 32 on an NVIDIA H200 (docs/training.md, "On a GPU").
    "ssdlite320_mobilenet_v3_large": BaseRecipe(
        lr=0.01,
        kept_head_lr=0.005,
        weight_decay=4e-5,
        batch_size=16,
        head_lr_factor=10,
        amp_on_cuda=False,
    ),
    # VGG16 SSD: the paper's 1e-3 order and 5e-4 decay; big activations, smaller batches.
    # Mixed precision on CUDA: not measured in training; in inference SSD300 ran 1.45x
    # faster in float16 than in float32 at batch 64 on an NVIDIA H200 (docs/performance.md).
    "ssd300_vgg16": BaseRecipe(
        lr=0.002,
        kept_head_lr=0.001,
        weight_decay=5e-4,
        batch_size=8,
        head_lr_factor=10,
        amp_on_cuda=True,
    ),
    "ssd512_vgg16": BaseRecipe(
        lr=0.002,
        kept_head_lr=0.001,
        weight_decay=5e-4,
        batch_size=4,
        head_lr_factor=10,
        amp_on_cuda=True,
    ),
}
FALLBACK_BASE = "person_ssdlite"
"""Whose recipe a base given as a checkpoint follows when its architecture has none."""
FALLBACK_RECIPE = RECIPES[FALLBACK_BASE]


RESUMABLE = ("device", "amp", "workers", "epochs")
"""Settings a resumed run may change: where and in which precision it runs, and how long
(never fewer epochs than it takes to the epochs done)."""


def as_options(names: tuple[str, ...]) -> str:
    """Settings as the command's options: "--device, --amp and --epochs"."""
    flags = [f"--{name.replace('_', '-')}" for name in names]
    return f"{', '.join(flags[:-1])} and {flags[-1]}" if len(flags) > 1 else flags[0]


def recipe_for(arch: str) -> BaseRecipe:
    """The defaults for fine-tuning architecture `arch`."""
    return RECIPES.get(arch, FALLBACK_RECIPE)


class TrainSettings(BaseModel):
    """One training run. None means "the base model's recipe" (`RECIPES`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(30, ge=1, le=10_000, description="passes over the training images")
    batch_size: int | None = Field(
        None, ge=1, le=1024, description="images per step (default: the base model's recipe)"
    )
    lr: float | None = Field(
        None,
        gt=0,
        le=10,
        description="peak learning rate of SGD (default: the recipe's, "
        "`kept_head_lr` when the class head is kept from the base)",
    )
    head_lr_factor: float | None = Field(
        None,
        ge=1,
        le=1000,
        description="how much faster than `lr` the class head learns "
        "(default: the recipe's for a head made anew, 1 for a head kept from the base)",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float | None = Field(
        None, ge=0, le=1, description="L2 weight decay (default: the recipe's)"
    )
    warmup_steps: int = Field(
        500,
        ge=0,
        le=100_000,
        description="optimiser steps over which the rate rises linearly from a thousandth "
        "to `lr`, at most a tenth of the run's steps",
    )
    patience: int = Field(
        10,
        ge=0,
        le=10_000,
        description="stop after this many epochs without a better mAP, once `min_steps` "
        "steps are done (0: never)",
    )
    min_steps: int = Field(
        MIN_STEPS,
        ge=0,
        le=1_000_000,
        description="the fewest optimiser steps a run takes: a small dataset, whose epochs "
        "are a few steps, gets more epochs, and early stop waits for them (0: `epochs` alone)",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of every random choice")
    size: int | None = Field(
        None, description="model input size in pixels (default: the base model's own)"
    )
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of images held out when the data has no split"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when torch sees a GPU, else the CPU"
    )
    amp: Literal["auto", "on", "off"] = Field(
        "auto",
        description="mixed precision (float16 autocast with a loss scaler): auto trains in it "
        "on a CUDA device as the base's recipe says (the SSD300/SSD512 VGG16 bases; the "
        "SSDLite bases stepped faster in float32 on an H200), and in float32 on the CPU; "
        "on forces it and needs a CUDA device",
    )
    workers: int = Field(
        2, ge=0, le=64, description="processes decoding and augmenting images (0: in the loop)"
    )
    eval_score_threshold: float = Field(
        SCORE_FLOOR, ge=0, lt=1, description="lowest score kept when measuring mAP (COCO practice)"
    )

    def batch_size_for(self, arch: str) -> int:
        return self.batch_size if self.batch_size is not None else recipe_for(arch).batch_size

    def lr_for(self, arch: str, fresh_head: bool) -> float:
        """The peak rate; `fresh_head`: the class head was made anew, not kept."""
        if self.lr is not None:
            return self.lr
        recipe = recipe_for(arch)
        return recipe.lr if fresh_head else recipe.kept_head_lr

    def head_lr_factor_for(self, arch: str, fresh_head: bool) -> float:
        """The class head's rate over `lr`; `fresh_head`: it was made anew, not kept."""
        if self.head_lr_factor is not None:
            return self.head_lr_factor
        return recipe_for(arch).head_lr_factor if fresh_head else 1.0

    def warmup_for(self, total_steps: int) -> int:
        """The warm-up's steps in a run of `total_steps`: `warmup_steps`, at most
        `WARMUP_SHARE` of the run."""
        return min(self.warmup_steps, round(total_steps * WARMUP_SHARE))

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The epochs a run of `steps_per_epoch` steps an epoch takes: `epochs`, or as many
        more as make `min_steps` steps."""
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))

    def may_stop_early(self, stale_epochs: int, steps_done: int) -> bool:
        """Whether `stale_epochs` epochs without a better mAP end a run `steps_done` steps
        in: `patience` of them, once `min_steps` steps are done."""
        return 0 < self.patience <= stale_epochs and steps_done >= self.min_steps

    def amp_on(self, device_type: str, arch: str) -> bool:
        """Whether a run of base `arch` on a `device_type` device ("cuda", "cpu") trains in
        mixed precision (`amp_choice`)."""
        return self.amp_choice(device_type, arch)[0]

    def amp_choice(self, device_type: str, arch: str) -> tuple[bool, str]:
        """Whether a run of base `arch` on a `device_type` device trains in mixed precision,
        and why, in a few words for the start line: `--amp on` or off as asked, auto on CUDA
        where `arch`'s recipe says so."""
        if self.amp != "auto":
            return self.amp == "on", f"--amp {self.amp}"
        if device_type != "cuda":
            return False, "--amp auto: mixed precision only on CUDA"
        if recipe_for(arch).amp_on_cuda:
            return True, (
                f"--amp auto: mixed precision on CUDA for {arch}, not timed against float32 "
                "in training"
            )
        measured = arch if arch in RECIPES else f"{arch} follows {FALLBACK_BASE}, which"
        return False, (
            f"--amp auto: {measured} trained faster in float32 than in mixed precision on CUDA"
        )

    def weight_decay_for(self, arch: str) -> float:
        return self.weight_decay if self.weight_decay is not None else recipe_for(arch).weight_decay
