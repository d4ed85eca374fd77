"""The bounded argparse types of the commands."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pipeline.argtypes import (
    INT_MAX,
    in_folder,
    name,
    nonempty,
    number,
    plain,
    seconds,
    whole,
    whole_like,
)
from pipeline.config import VideoSinkConfig


@pytest.mark.parametrize("text", ["0", "-1", "11", str(INT_MAX + 1), "9" * 5000, "1.5", "", "x"])
def test_whole_refuses_what_is_not_an_integer_in_its_bounds_in_a_short_message(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        whole(1, 10)(text)
    assert len(str(info.value)) < 100


def test_whole_takes_its_bounds_and_defaults_to_64_bits() -> None:
    assert (whole(1, 10)("1"), whole(1, 10)("10"), whole(0)(str(INT_MAX))) == (1, 10, INT_MAX)
    with pytest.raises(argparse.ArgumentTypeError):
        whole(0)(str(INT_MAX + 1))


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-0.1", "1.01", "1e400", "", "x" * 10_000])
def test_number_refuses_what_is_not_a_finite_number_in_its_bounds(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        number(0, 1)(text)
    assert len(str(info.value)) < 100


@pytest.mark.parametrize(
    ("low", "high", "says"),
    [
        (0, 365 * 86400, "from 0 to 31536000,"),
        (1e-8, 10, "from 0.00000001 to 10,"),
        (0.01, 0.99, "from 0.01 to 0.99,"),
        (0, 1e20, "from 0 to 100000000000000000000,"),
    ],
)
def test_number_says_its_bounds_as_a_person_writes_them(low: float, high: float, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"^must be {says} got '-1'$"):
        number(low, high)("-1")


@pytest.mark.parametrize(
    ("high", "says"),
    [
        (365 * 86400, "31536000 seconds (365 days)"),
        (3600, "3600 seconds (1 hour)"),
        (5400, "5400 seconds (90 minutes)"),
        (59, "59 seconds"),
        (90.5, "90.5 seconds"),
    ],
)
def test_seconds_also_says_its_upper_bound_in_the_largest_whole_unit(
    high: float, says: str
) -> None:
    with pytest.raises(
        argparse.ArgumentTypeError, match=rf"^must be from 0 to {re.escape(says)}, "
    ):
        seconds(0, high)("1e12")
    assert seconds(0, high)(plain(high)) == high


def test_whole_like_takes_the_bounds_of_the_config_field() -> None:
    crf = whole_like(VideoSinkConfig, "crf")
    assert (crf("0"), crf("51")) == (0, 51)
    for text in ("-1", "52"):
        with pytest.raises(argparse.ArgumentTypeError, match="from 0 to 51"):
            crf(text)


@pytest.mark.parametrize("text", ["", " ", "\t"])
def test_nonempty_refuses_blank_text(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must not be empty"):
        nonempty(text)


@pytest.mark.parametrize("text", ["", "../x", "a/b", ".hidden", "-x", "a b", "caf\udce9"])
def test_name_refuses_what_is_not_a_plain_file_name(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="a file name"):
        name(text)


def test_in_folder_takes_a_folder_and_names_what_else_it_got(tmp_path: Path) -> None:
    assert in_folder(str(tmp_path)) == str(tmp_path)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^not a folder: '.*a-file'$"):
        in_folder(str(tmp_path / "a-file"))
    for missing in (str(tmp_path / "gone"), "a\0b"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"^no such folder: "):
            in_folder(missing)
    with pytest.raises(argparse.ArgumentTypeError, match=r"File name too long\): 'd{300}\.\.\.'$"):
        in_folder("d" * 5000)
