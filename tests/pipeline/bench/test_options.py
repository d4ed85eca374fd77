"""`python -m pipeline bench --help`: the options table renders every option, each default
filled into its help as written there; the command a report prints parses back to the same
options, whichever were given."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from pipeline.bench.options import OPTIONS, add_arguments, bench_command


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    add_arguments(parser)
    return parser


def bench_help() -> str:
    return " ".join(bench_parser().format_help().split())


def reparsed(args: argparse.Namespace) -> argparse.Namespace:
    """The options of the command `bench_command` prints for `args`."""
    words = shlex.split(bench_command(args))
    assert words[:4] == ["python", "-m", "pipeline", "bench"]
    return bench_parser().parse_args(words[4:])


EVERY_OPTION = [
    "--json", "--clip", "my clips/lobby's door.mp4", "--copies", "3", "--scale", "640x360",
    "--model", "ssd300_vgg16", "--batch-size", "4", "--workers", "2", "--models", "a", "b",
    "--batch-sizes", "1", "4", "--precisions", "fp32", "int8", "--device", "cpu",
    "--video-codec", "h264_nvenc", "--no-video", "--no-pipelining", "--video-preset", "fast",
    "--video-crf", "30", "--runtime", "onnxruntime", "--precision", "fp16",
    "--runtimes", "torch", "compile", "--threads", "2", "--repeat", "5", "--min-time", "0.25",
    "--skip-model-only", "--skip-end-to-end", "--skip-naive", "--capacity",
    "--capacity-max", "12", "--motion", "--motion-regions", "--trial-seconds", "7.5",
]  # fmt: skip
"""Every option given, each with a value other than its default."""


def test_every_option_is_given_a_value_of_its_own_in_the_round_trip_below() -> None:
    given = {word for word in EVERY_OPTION if word.startswith("--")}
    assert given == {option.flag for option in OPTIONS}
    defaults = vars(bench_parser().parse_args([]))
    given_values = vars(bench_parser().parse_args(EVERY_OPTION))
    assert [key for key, value in given_values.items() if value == defaults[key]] == []


@pytest.mark.parametrize(
    "given",
    [
        [],
        ["--capacity", "--motion"],
        ["--capacity", "--motion-regions", "--trial-seconds", "2", "--capacity-max", "1"],
        ["--batch-size", "auto", "--min-time", "1.5", "--scale", "96x64", "--no-video"],
        EVERY_OPTION,
    ],
    ids=["defaults", "capacity with motion", "capacity with motion regions", "end to end",
         "every option"],
)  # fmt: skip
def test_the_printed_command_parses_back_to_the_options_of_the_run(given: list[str]) -> None:
    args = bench_parser().parse_args(given)
    assert reparsed(args) == args


def test_bench_help_lists_every_option_once_with_no_unfilled_default() -> None:
    text = bench_help()
    assert "%(" not in text
    for option in OPTIONS:
        usage = re.findall(rf"\[{re.escape(option.flag)}[\] ]", text)
        assert len(usage) == 1, option.flag


def test_bench_help_shows_each_default_in_the_form_it_is_typed() -> None:
    text = bench_help()
    assert "runs per figure (3)" in text
    assert "least seconds per model-only run (1.0)" in text
    assert "seconds each trial reads (10)" in text
    assert "auto or a number (auto)" in text
    assert "sink's encoder (libx264)" in text
