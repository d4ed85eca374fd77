"""`bench`: model-only and end-to-end throughput against a naive baseline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_USAGE


def add_parser(sub: Any) -> None:
    """The `bench` subcommand; its options are the bench package's."""
    p = sub.add_parser(
        "bench", help="measure model-only and end-to-end throughput against a naive baseline"
    )
    from pipeline.bench.options import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from detector.clip_frames import NotAVideoError
    from detector.errors import ModelConfigError, WeightsUnavailableError
    from pipeline.bench.cli import main as bench_main
    from pipeline.bench.end_to_end import BenchError
    from sinks.base import SinkError

    try:
        return bench_main(args)
    except (ModelConfigError, WeightsUnavailableError, FileNotFoundError, NotAVideoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:  # options making no valid config: --workers 2 --runtime torch
        for error in exc.errors():
            print(f"error: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return EXIT_USAGE
    except (BenchError, SinkError) as exc:  # a sink that could not open: as `run` says it
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
