"""What the suite measures: the full plan for one H100/H200-class GPU, the dry plan that
runs the same code on the CPU in seconds, and the targets the figures are held to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

KINDS = ("tests", "model", "end_to_end", "training", "training_epoch", "compile")
"""The kinds of case, in the order they run within a tier (`cases.case_tier`: the cases
every run must measure first, then the next most wanted, then the rest): the CUDA tests,
model-only timing in eager torch, end to end, training steps, whole training epochs, then
model-only timing under torch.compile, last because each shape compiles for 10-30 s."""


@dataclass(frozen=True)
class EndToEndPlan:
    """The end-to-end cases: `copies` cameras reading the bundled clip re-encoded at `size`,
    through the real pipeline without its video sink, pipelining on and off."""

    model: str
    """The detector's model (with its bundled weights, or random ones: nothing downloaded)."""
    size: tuple[int, int]
    """W, H of the frames decoded (the clip is re-encoded at this size first)."""
    copies: int
    """Cameras reading the clip at once."""
    frames: int | None
    """Frames of the clip each camera reads (None: all of them)."""
    batch_size: int
    runtime: str
    """`detector.runtime` of the runs."""
    precision: str
    """`detector.precision` of the runs."""
    repeat: int
    """Counted runs per case (frames/s is their median)."""
    processes: int
    """Processes the cameras are split over in the several-processes case, each with an
    interpreter lock of its own, sharing the device (1: no such case)."""

    def __post_init__(self) -> None:
        if not 1 <= self.processes <= self.copies:
            raise ValueError("an end-to-end plan splits its cameras over 1 to `copies` processes")


@dataclass(frozen=True)
class TrainingPlan:
    """The training cases: the trainer's own steps on a small synthetic set, one case per
    (model, batch size), each run with mixed precision on (CUDA only) and off."""

    models: tuple[str, ...]
    """Bases to train (person_ssdlite from its bundled weights, the others from random
    ones: nothing downloaded)."""
    batch_sizes: tuple[int, ...]
    """The largest runs in the first tier, the others in the second."""
    steps: int
    """Timed steps per run, all on the same batch (so the loss must fall over them)."""
    warmup: int
    """Untimed steps first, at least one (cuDNN picks its kernels; the loss counts from the
    first)."""

    def __post_init__(self) -> None:
        if self.warmup < 1 or self.steps < 1:
            raise ValueError("a training plan takes at least one warm-up and one timed step")


@dataclass(frozen=True)
class EpochPlan:
    """The training-epoch case: `python -m pipeline train` in a child process, on a COCO
    dataset the case writes (frames of the clip at `image_size`, each with 1-3 solid boxes
    labelled person), for `epochs` epochs with train's defaults otherwise (data loading,
    augmentation, validation and checkpoints included)."""

    model: str
    image_size: tuple[int, int]
    """W, H of each JPEG."""
    train_images: int
    val_images: int
    epochs: int
    """The first epoch also pays what is paid once (the loader's workers start, kernels
    load): from two on, the last one is a steady epoch and the first one's extra shows."""
    batch_size: int | None
    """None: the base's recipe (16 for person_ssdlite), as train has it."""
    workers: int | None
    """None: train's default (2)."""
    amp: str
    """train's `--amp`: auto (its default: as the base's recipe says, float32 on CUDA for
    the SSDLite bases), on or off."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.train_images < 2 or self.val_images < 1:
            raise ValueError(
                "a training-epoch plan takes one epoch, two training and one validation "
                "image at least"
            )


@dataclass(frozen=True)
class Plan:
    """Everything the suite runs, and the time it has for it."""

    name: str
    device: str
    """Where the detector cases run: "cuda" (or cuda:N, from --device) or "cpu"."""
    models: tuple[str, ...]
    """Model-only models (bundled weights for person_ssdlite, random ones for the others:
    nothing is downloaded)."""
    runtimes: tuple[str, ...]
    """Model-only runtimes: "torch" (eager) and "compile" (torch.compile; CUDA graphs on
    CUDA)."""
    precisions: tuple[str, ...]
    """Model-only precisions, the most wanted first: the first runs in the first tier, the
    others later (`cases.case_tier`)."""
    batch_sizes: tuple[int, ...]
    """Model-only batch sizes: compile runs the largest first, and at the largest the other
    precisions run a tier before their smaller batches."""
    repeat: int
    """Timed runs per model-only figure (the figure is their median)."""
    min_time_s: float
    """Least seconds of each timed model-only run."""
    warmup: int
    """Untimed passes before a model-only figure (CUDA graphs are recorded on the second)."""
    end_to_end: EndToEndPlan
    training: TrainingPlan
    epoch: EpochPlan
    budget_s: float
    """Seconds the suite may take on its own clock; a case that would not finish in what is
    left is skipped, and said so."""
    first_guess_s: Mapping[str, float]
    """Expected seconds of a case of each kind until one has run (then: the longest so far)."""
    tests_timeout_s: float
    """Most seconds the CUDA tests may take (less where less of the budget is left): a hung
    test must not take the time of every case after it."""
    held_to_targets: bool
    """Whether the figures are held to `TARGETS` (not the dry run's tiny sizes)."""


FULL = Plan(
    name="full",
    device="cuda",
    models=("ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "person_ssdlite"),
    runtimes=("torch", "compile"),
    precisions=("fp16", "bf16", "fp32"),
    batch_sizes=(1, 8, 64),
    repeat=3,
    min_time_s=0.3,
    warmup=3,
    end_to_end=EndToEndPlan(
        model="person_ssdlite",
        size=(1920, 1080),
        copies=16,
        frames=None,
        batch_size=32,
        runtime="torch",
        precision="fp16",
        repeat=3,  # one H200 run measured 425 frames/s, the next 170: the median of three
        # Python work of every thread shares one interpreter lock, which at 1,500 frames/s
        # leaves 0.67 ms a frame (docs/performance.md, "The pipeline's own cost per frame"):
        # four processes of four cameras have four.
        processes=4,
    ),
    training=TrainingPlan(
        models=("person_ssdlite", "ssdlite320_mobilenet_v3_large"),
        batch_sizes=(8, 32),
        steps=20,
        warmup=3,
    ),
    # 512 images at batch 16: 32 steps an epoch, a few seconds on an H200 (its training
    # step ran 625 images/s at batch 32 in float32, which `--amp auto` trains it in on
    # CUDA), where two loader workers decoding and augmenting 640x480 JPEGs may be the
    # limit, as they are in a real training.
    epoch=EpochPlan(
        model="person_ssdlite",
        image_size=(640, 480),
        train_images=512,
        val_images=128,
        epochs=2,
        batch_size=None,
        workers=None,
        amp="auto",
    ),
    # Under 8 minutes in all: Python starts before this clock does, and the last case may
    # outlast its guess.
    budget_s=420.0,
    # The longest case of each kind on an H200 (16-core Xeon host), 2026-12-04; end to end
    # with its three runs and the pipelining-on case's stage run (about 16 s a run); the
    # training epoch's a guess, not run on a GPU yet (writing 640 JPEGs, the child's start,
    # epoch 0's validation, two epochs). What the tier-1 cases come to by these figures:
    # docs/performance.md, "GPU suite".
    first_guess_s=MappingProxyType(
        {
            "tests": 30.0,
            "model": 11.0,
            "end_to_end": 65.0,
            "training": 70.0,
            "training_epoch": 45.0,
            "compile": 30.0,
        }
    ),
    tests_timeout_s=240.0,
    held_to_targets=True,
)
"""The suite on one H100/H200-class GPU."""

DRY = Plan(
    name="dry",
    device="cpu",
    models=("person_ssdlite", "ssdlite320_mobilenet_v3_large"),
    runtimes=("torch", "compile"),
    precisions=("fp32",),
    batch_sizes=(1, 2),
    repeat=1,
    min_time_s=0.0,
    warmup=1,
    end_to_end=EndToEndPlan(
        model="person_ssdlite",
        size=(160, 96),
        copies=2,
        frames=4,
        batch_size=2,
        runtime="torch",
        precision="fp32",
        repeat=1,
        processes=2,
    ),
    training=TrainingPlan(models=("person_ssdlite",), batch_sizes=(2,), steps=1, warmup=1),
    epoch=EpochPlan(
        model="person_ssdlite",
        image_size=(160, 120),
        train_images=4,
        val_images=2,
        epochs=2,
        batch_size=2,
        workers=0,  # two workers' start costs seconds on a 2-core CPU; the GPU plan has them
        amp="auto",
    ),
    budget_s=120.0,
    # torch.compile takes longer per shape on a small CPU than the whole dry budget
    # (docs/performance.md, "GPU suite"): the dry run shows compile cases skipped by the
    # deadline, as the full run skips the ones its budget cannot hold.
    first_guess_s=MappingProxyType(
        {
            "tests": 30.0,
            "model": 5.0,
            "end_to_end": 10.0,
            "training": 10.0,
            "training_epoch": 30.0,
            "compile": 600.0,
        }
    ),
    tests_timeout_s=120.0,
    held_to_targets=False,
)
"""The same code on the CPU with tiny sizes, in seconds: so that the suite never rots."""


@dataclass(frozen=True)
class Target:
    """A figure the project aims for: the best `figure` among the cases whose id matches
    `cases` (fnmatch) must be at least `at_least`."""

    name: str
    cases: str
    figure: str
    at_least: float


TARGETS = (
    Target("SSD300 fp16 images/s at batch 64", "model/ssd300_vgg16/*/fp16/b64", "images_per_s",
           3000.0),
    Target("end-to-end frames/s, 16 cameras at 1080p", "end_to_end/*", "frames_per_s", 1500.0),
)  # fmt: skip
"""The GPU targets (one H100-class GPU)."""
