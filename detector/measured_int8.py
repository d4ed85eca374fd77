"""A trained model's int8 network and what it scored against float32, kept beside its
checkpoint: what lets `precision: auto` run a checkpoint in int8.

`python -m pipeline train` quantizes its `best.pt` (calibrated on its own training images),
scores both networks on its validation images (COCO mAP@.5) and writes, beside it,
`best.int8.onnx` (the int8 network measured) and `best.int8.json` (an `Int8Measurement`).
`precision: auto` then runs that very network where int8 lost at most `MAX_MAP50_LOSS`.

Nothing here imports torch: options are resolved without it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from detector.files import write_whole

MAX_MAP50_LOSS = 0.01
"""The most mAP@.5 (absolute, 0..1) int8 may lose against float32 on a checkpoint's
validation images for `precision: auto` to run it in int8."""
RECORD_FORMAT = 1
"""Bumped when `Int8Measurement`'s fields change: older records are not read."""


def record_path(checkpoint: Path) -> Path:
    """Where the measurement of `checkpoint` is kept: DIR/best.pt -> DIR/best.int8.json."""
    return checkpoint.with_name(f"{checkpoint.stem}.int8.json")


def network_path(checkpoint: Path) -> Path:
    """Where the measured int8 network of `checkpoint` is kept: DIR/best.int8.onnx."""
    return checkpoint.with_name(f"{checkpoint.stem}.int8.onnx")


def file_digest(path: Path) -> str:
    """sha256 of the file at `path`, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Int8Measurement:
    """What int8 scored against float32 on a checkpoint's validation images."""

    checkpoint_sha256: str
    """The checkpoint measured: a record of another file (a later training) is not used."""
    network_sha256: str
    """The int8 network measured (`network_path`)."""
    fp32_map50: float
    int8_map50: float
    images: int
    """Validation images scored."""
    calibration_images: int
    """Training images the int8 activation ranges were measured on."""
    recipe: str
    """How it was quantized (`detector.quantize.RECIPE`) and with which onnxruntime."""
    vnni: bool
    """Whether the CPU that measured it had 8-bit dot products (without them the sessions
    take ONNX Runtime's exact kernel, `detector.onnx_runtime.open_session`)."""

    @property
    def loss(self) -> float:
        """mAP@.5 lost to int8 (negative: int8 scored higher)."""
        return self.fp32_map50 - self.int8_map50

    @property
    def acceptable(self) -> bool:
        """Whether int8 lost at most `MAX_MAP50_LOSS`: the one statement of the rule (the
        difference rounded, so that 0.80 - 0.79 counts as the 0.01 it is)."""
        return round(self.loss, 9) <= MAX_MAP50_LOSS

    def describe(self) -> str:
        """e.g. "int8 mAP@.5 0.801 against float32's 0.805 on 66 validation images (-0.004;
        at most -0.01 allowed)"."""
        return (
            f"int8 mAP@.5 {self.int8_map50:.3f} against float32's {self.fp32_map50:.3f} on "
            f"{self.images} validation images ({-self.loss:+.3f}; at most "
            f"-{MAX_MAP50_LOSS:g} allowed)"
        )

    def save(self, checkpoint: Path) -> None:
        """Writes the record beside `checkpoint` (`record_path`), whole or not at all."""
        text = json.dumps({"format": RECORD_FORMAT, **asdict(self)}, indent=1)
        write_whole(record_path(checkpoint), lambda partial: partial.write_text(text))


@dataclass(frozen=True)
class Int8Evidence:
    """What is known beside a checkpoint about its int8 network: the measurement that holds
    for it (None: `why_none` says why there is none)."""

    measurement: Int8Measurement | None
    network: Path | None
    why_none: str | None = None


def measured_int8(checkpoint: Path) -> Int8Evidence:
    """The int8 measurement of `checkpoint` and its network, where both are beside it and of
    this very file (the record names the checkpoint's and the network's sha256)."""
    record, network = record_path(checkpoint), network_path(checkpoint)
    try:
        data = json.loads(record.read_text())
        fields = {k: v for k, v in data.items() if k != "format"}
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {RECORD_FORMAT}")
        measurement = Int8Measurement(**fields)
    except FileNotFoundError:
        return Int8Evidence(None, None, f"no int8 measurement beside it ({record.name})")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return Int8Evidence(None, None, f"its int8 measurement {record} is unreadable ({exc})")
    try:
        if measurement.checkpoint_sha256 != file_digest(checkpoint):
            return Int8Evidence(None, None, f"{record.name} measured another {checkpoint.name}")
        if measurement.network_sha256 != file_digest(network):
            return Int8Evidence(None, None, f"{network.name} is not the int8 network measured")
    except OSError as exc:
        return Int8Evidence(None, None, f"cannot read {exc.filename}: {exc.strerror}")
    return Int8Evidence(measurement, network)
