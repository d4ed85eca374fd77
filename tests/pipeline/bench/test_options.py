"""`python -m pipeline bench --help`: the options table renders every option, each default
filled into its help as written there."""

from __future__ import annotations

import argparse
import re

from pipeline.bench.options import OPTIONS, add_arguments


def bench_help() -> str:
    parser = argparse.ArgumentParser(prog="bench")
    add_arguments(parser)
    return " ".join(parser.format_help().split())


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
