"""Which of a model's class columns a detector reports (`detector.labels`), without torch."""

from __future__ import annotations

from collections.abc import Sequence

from detector.errors import ModelConfigError
from pipeline.types import CLASS_NAME_MAX, LabelMap


def resolve_label_filter(
    names: Sequence[str] | None, label_map: LabelMap, background_class: int | None
) -> list[int] | None:
    """Column indices of the label names to report, matched by `LabelMap.columns`; None
    means all."""
    if not names:
        return None
    selected: set[int] = set()
    for name in names:
        found = label_map.columns(name, background_class)
        if not found:
            classes = label_map.classes(background_class)
            valid = list(dict.fromkeys(label_map.names[i] for i in classes))
            raise ModelConfigError(
                f"unknown label {name!r} in `detector.labels`; valid labels include: "
                f"{', '.join(valid[:8])}{', ...' if len(valid) > 8 else ''} "
                f"({len(valid)} in all)"
            )
        selected.update(found)
    return sorted(selected)


def check_class_names(names: Sequence[str], model: str) -> None:
    """ModelConfigError naming `model` (its file, as messages show it) and the class, for a
    class name longer than the SQL tables' label column holds: PostgreSQL would refuse every
    detection of that class at every run, where cutting the name would write a class no
    `labels:` or query names."""
    for name in names:
        if (problem := name_length_problem(name)) is not None:
            raise ModelConfigError(f"{model}: {problem}")


def name_length_problem(name: str) -> str | None:
    """Why `name` is too long for a class (`CLASS_NAME_MAX`), or None."""
    if len(name) <= CLASS_NAME_MAX:
        return None
    shown = repr(name)[:57] + "..."  # as other messages shorten a value
    return (
        f"class name {shown} is {len(name)} characters long; the most is "
        f"{CLASS_NAME_MAX} (what the SQL tables' label column holds)"
    )
