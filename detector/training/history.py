"""The record of a training run: one row per epoch, written as CSV and JSON, and plotted."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from detector.files import write_whole


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did. Losses are means over its steps; mAP is on the validation images.
    Epoch 0 is the starting weights, scored before any step: its rate is 0, and its losses
    and speed are NaN (empty in the CSV, null in the JSON)."""

    epoch: int
    lr: float
    loss: float
    localisation: float
    confidence: float
    map: float
    map50: float
    seconds: float
    images_per_s: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        epoch, *measures = (data[name] for name in COLUMNS)
        return cls(int(epoch), *(math.nan if m in (None, "") else float(m) for m in measures))


COLUMNS = tuple(f.name for f in fields(EpochRecord))


def write_history(records: list[EpochRecord], folder: Path) -> None:
    """`history.csv` and `history.json` in `folder`, replaced whole (never half-written)."""
    # NaN is not JSON; null (and an empty CSV cell) says "not measured" to any reader.
    rows = [{k: _or_none(v) for k, v in asdict(r).items()} for r in records]
    _replace(folder / "history.json", json.dumps(rows, indent=1) + "\n")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _replace(folder / "history.csv", text.getvalue())


def read_history(folder: Path) -> list[EpochRecord]:
    """The records `write_history` left in `folder` (none when there is no file yet)."""
    file = folder / "history.json"
    if not file.is_file():
        return []
    return [EpochRecord.from_dict(row) for row in json.loads(file.read_text(encoding="utf-8"))]


def plot_history(records: list[EpochRecord], file: Path) -> None:
    """Loss and validation mAP by epoch, as a PNG (matplotlib, drawn off-screen)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: training runs on servers
    from matplotlib import pyplot as plt

    epochs = [r.epoch for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    left.plot(epochs, [r.loss for r in records], label="total")
    left.plot(epochs, [r.localisation for r in records], label="localisation")
    left.plot(epochs, [r.confidence for r in records], label="confidence")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    left.legend()
    right.plot(epochs, [_or_nan(r.map) for r in records], label="mAP@[.5:.95]")
    right.plot(epochs, [_or_nan(r.map50) for r in records], label="mAP@.5")
    right.set_xlabel("epoch")
    right.set_ylabel("validation mAP")
    right.set_ylim(0, 1)
    right.legend()
    fig.tight_layout()
    try:
        write_whole(file, lambda partial: fig.savefig(partial, format="png"))
    finally:
        plt.close(fig)


def _or_none(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _or_nan(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def _replace(file: Path, text: str) -> None:
    write_whole(file, lambda partial: partial.write_text(text, encoding="utf-8"))
