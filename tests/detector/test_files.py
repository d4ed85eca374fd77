"""Files written whole: whatever stops the writing, the previous file stays and no partial
file is left; the file system's error names the file the user knows, not the partial one."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.files import write_whole


def test_a_new_file_replaces_the_old_one_whole(tmp_path: Path) -> None:
    file = tmp_path / "made" / "here.bin"  # its folder is made
    write_whole(file, lambda partial: partial.write_bytes(b"old"))
    write_whole(file, lambda partial: partial.write_bytes(b"new"))
    assert file.read_bytes() == b"new" and list(file.parent.iterdir()) == [file]


def full_disk_naming_the_partial(partial: Path) -> None:
    partial.write_bytes(b"half")
    raise OSError(errno.ENOSPC, "No space left on device", str(partial))  # as shutil's copy


def full_disk_inside_torch(partial: Path) -> None:
    partial.write_bytes(b"half")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from None


@pytest.mark.parametrize(
    "write", [full_disk_naming_the_partial, full_disk_inside_torch], ids=["named", "wrapped"]
)
def test_a_full_disk_is_an_os_error_naming_the_file_and_the_old_one_stays(
    write: Callable[[Path], None], tmp_path: Path
) -> None:
    file = tmp_path / "best.int8.onnx"
    file.write_bytes(b"old")
    with pytest.raises(OSError) as info:
        write_whole(file, write)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(file))
    assert file.read_bytes() == b"old" and list(tmp_path.iterdir()) == [file]


def test_ctrl_c_leaves_the_old_file_and_no_partial_one(tmp_path: Path) -> None:
    def interrupted(partial: Path) -> None:
        partial.write_bytes(b"half")
        raise KeyboardInterrupt

    file = tmp_path / "last.pt"
    file.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        write_whole(file, interrupted)
    assert file.read_bytes() == b"old" and list(tmp_path.iterdir()) == [file]
