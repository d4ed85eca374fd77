"""The training's history files: a file that cannot be replaced is named as the user knows
it, and no partial file is left beside it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from detector.training.history import EpochRecord, plot_history, write_history

RECORD = EpochRecord(
    epoch=1, lr=0.01, loss=1.5, localisation=0.5, confidence=1.0, map=0.2, map50=0.4,
    seconds=3.0, images_per_s=4.0,
)  # fmt: skip


@pytest.mark.parametrize("name", ["history.json", "history.csv"])
def test_a_folder_where_a_history_file_goes_is_named_not_the_partial_file_written(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(OSError) as info:
        write_history([RECORD], tmp_path)
    assert info.value.errno == errno.EISDIR and info.value.filename == str(tmp_path / name)
    assert {p.name for p in tmp_path.iterdir()} <= {"history.json", "history.csv"}


def test_a_folder_where_the_plot_goes_is_named_not_the_partial_file_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "history.png").mkdir()
    with pytest.raises(OSError) as info:
        plot_history([RECORD], tmp_path / "history.png")
    assert info.value.errno == errno.EISDIR
    assert info.value.filename == str(tmp_path / "history.png")
    assert [p.name for p in tmp_path.iterdir()] == ["history.png"]


def test_the_history_is_written_and_read_back(tmp_path: Path) -> None:
    write_history([RECORD], tmp_path)
    assert (tmp_path / "history.csv").read_text().splitlines()[1].startswith("1,0.01,1.5,")
    plot_history([RECORD], tmp_path / "history.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "history.csv", "history.json", "history.png"
    ]  # fmt: skip
