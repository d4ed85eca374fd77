"""The bounded argparse types of the commands."""

from __future__ import annotations

import argparse

import pytest

from pipeline.argtypes import INT_MAX, name, nonempty, number, whole, whole_like
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
