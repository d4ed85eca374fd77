"""`python -m pipeline run|validate|subscribe|query|retention|dataset|keygen|bench|train|
evaluate|export|zones|serve|cluster|cameras`.

Each subcommand lives in its own module (`run`, `events`, `records`, `dataset`, `bench`,
`train`, `export`, `zones`); this one
assembles the parser and runs the chosen command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, NoReturn

from pipeline.cli import (
    bench,
    cameras,
    cluster,
    dataset,
    evaluate,
    events,
    export,
    records,
    retention,
    run,
    serve,
    train,
    zones,
)
from pipeline.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Terminated,
    interrupted_status,
)
from pipeline.urls import mask_credentials

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "MaskCredentials", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskCredentials())
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):  # a path of non-UTF-8 bytes is printed
            stream.reconfigure(errors="backslashreplace")
    try:
        with _sigterm_as_ctrl_c():
            code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| head`): end quietly, as SIGPIPE would
        _drop_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:  # the machine's: a full disk, an I/O error
        logging.getLogger(__name__).debug("%s failed", args.command, exc_info=True)
        _drop_stdout()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM where a command has no stop of its own
        _drop_stdout()
        print(f"\ninterrupted: {args.command} stopped before it finished", file=sys.stderr)
        return interrupted_status(exc)
    return code


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, `timeout`, a process manager) stops every command as Ctrl-C does:
    it raises `Terminated`, a KeyboardInterrupt, in the main thread. Commands with a stop of
    their own (`run`, `serve`, `train`) replace this handler with theirs."""
    if threading.current_thread() is not threading.main_thread():  # signals cannot be set
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _drop_stdout() -> None:
    """Points stdout at /dev/null when it cannot be written, so that exiting, which
    flushes it, does not fail on it again."""
    try:
        sys.stdout.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError):  # not a file (in-process tests)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class MaskCredentials(logging.Filter):
    """Replaces passwords in URLs by '***' in every log line, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed log call: logging reports it, once
            return True
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_HELP = "what the log on stderr shows (default: warning); before or after the command"


class OneLineErrors(argparse.ArgumentParser):
    """A parser (and, as argparse makes them of the parent's class, its commands' parsers)
    that refuses bad arguments in one line, `error: --out: why (see ... --help)`, instead
    of its usage block and then the reason: the reason is what the user needs to read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _CommandsRefuseWhatTheyDoNotKnow)

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


class _CommandsRefuseWhatTheyDoNotKnow(argparse._SubParsersAction):
    """A command's parser refuses the arguments it does not know itself, so that the error
    points to that command's `--help`, not (as argparse leaves them to) the top one's."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        unknown = vars(namespace).pop(argparse._UNRECOGNIZED_ARGS_ATTR, None)
        if unknown and values:
            command = self._name_parser_map[values[0]]
            command.error(f"unrecognized arguments: {' '.join(unknown)}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="python -m pipeline",
        description="Real-time video analytics: SSD detection, IoU tracking, video/ZeroMQ/SQL.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do; `python -m pipeline COMMAND --help` tells its options",
    )

    run.add_parsers(sub)
    events.add_subscribe_parser(sub)
    records.add_parser(sub)
    retention.add_parser(sub)
    dataset.add_parsers(sub)
    events.add_keygen_parser(sub)
    bench.add_parser(sub)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    export.add_parser(sub)
    zones.add_parser(sub)
    serve.add_parser(sub)
    cluster.add_parser(sub)
    cameras.add_parser(sub)
    for command in _commands(sub):
        # SUPPRESS: given after the command, it overrides the one before; absent, it does not.
        command.add_argument(
            "--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS, help=LOG_LEVEL_HELP
        )
    return parser


def _commands(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """The parsers of `sub`'s commands and of their own actions (`dataset export`)."""
    found = []
    for command in sub.choices.values():
        found.append(command)
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += _commands(action)
    return found


def _version() -> str:
    try:
        return importlib.metadata.version("ssd-pipeline")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: run from a source checkout)"
