"""Which of a model's class columns a detector reports (`detector.labels`), without torch."""

from __future__ import annotations

from collections.abc import Sequence

from detector.errors import ModelConfigError
from pipeline.types import LabelMap


def resolve_label_filter(
    names: Sequence[str] | None, label_map: LabelMap, background_class: int | None
) -> list[int] | None:
    """Column indices of the label names to report (case-insensitive); None means all."""
    if not names:
        return None
    columns: dict[str, list[int]] = {}
    for index, name in enumerate(label_map.names):
        if index != background_class and name and name != "N/A":
            columns.setdefault(name.lower(), []).append(index)
    selected: set[int] = set()
    for name in names:
        found = columns.get(name.strip().lower())
        if found is None:
            valid = list(dict.fromkeys(label_map.names[i[0]] for i in columns.values()))
            raise ModelConfigError(
                f"unknown label {name!r} in `detector.labels`; valid labels include: "
                f"{', '.join(valid[:8])}{', ...' if len(valid) > 8 else ''} "
                f"({len(valid)} in all)"
            )
        selected.update(found)
    return sorted(selected)
