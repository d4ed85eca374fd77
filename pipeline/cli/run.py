"""`run` and `validate`: a config checked, then processed until every camera is done."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipeline.argtypes import nonempty
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, stopped_by
from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.config.cameras import FileProbe
from pipeline.config.safe_yaml import shown_path
from pipeline.stops import STOP_RUNNING
from pipeline.summary import RunSummary

if TYPE_CHECKING:
    from pipeline.cluster.run import ClusterRun
    from pipeline.decode_check import WholeDecodes


def add_parsers(sub: Any) -> None:
    """The `run` and `validate` subcommands."""
    p = sub.add_parser("run", help="process the cameras of a config until every file is done")
    p.add_argument("config", type=nonempty, help="YAML config, e.g. config/cams.yaml")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "validate",
        help="check a config as run would before reading a frame, naming every bad field, "
        "and decode each video file to its end, naming damaged stretches",
    )
    p.add_argument("config", type=nonempty, help="YAML config, e.g. config/cams.yaml")
    p.add_argument(
        "--quick",
        action="store_true",
        help="decode only the first frame of each video file, not the whole file",
    )
    p.set_defaults(func=cmd_validate)


def _load(
    path: str, *, check_sources: bool, file_probe: FileProbe | None = None
) -> PipelineConfig | None:
    """The config at `path`; None once the reasons it cannot be used are printed.
    `check_sources`: `validate`'s look at what each source on disk holds (else none), each
    file's by `file_probe` when given. Both commands ask whether the host names the run
    binds or must reach at its start resolve (`unknown_hosts`), in bounded time: before the
    detector is prepared, and at the line that names them."""
    try:
        return load_config(
            path,
            check_sources=check_sources,
            probe_sources=check_sources,
            file_probe=file_probe,
            resolve_hosts=True,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    from pipeline.decode_check import WholeDecodes

    # Each file is opened once: its first frame checked with the config, the rest decoded
    # once everything else is checked (not at all with --quick).
    with WholeDecodes() as decodes:
        return _validate(args, None if args.quick else decodes)


def _validate(args: argparse.Namespace, decodes: WholeDecodes | None) -> int:
    """`validate`; `decodes`: the whole files' decoders (None: each file's first frame)."""
    config = _load(args.config, check_sources=True, file_probe=decodes.probe if decodes else None)
    if config is None:
        return EXIT_USAGE

    from detector.errors import ModelConfigError, WeightsUnavailableError
    from pipeline.preflight import check_detector, check_labels, check_server, check_sinks

    try:
        classes, kept = check_detector(config.detector)
    except (ModelConfigError, WeightsUnavailableError) as exc:
        print(f"error: {shown_path(args.config)}: detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if label_problems := check_labels(config, kept):
        for problem in label_problems:
            print(f"error: {shown_path(args.config)}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    problems = check_sinks(config.sinks) + check_server(config)
    if config.cluster is not None:
        from pipeline.cluster.engine import ray_missing
        from pipeline.cluster.local import local_resources_problem, this_machine

        fit = local_resources_problem(config.cluster, this_machine(), len(config.cameras))
        problems += [p for p in [ray_missing(), fit] if p]
    if decodes is not None:
        problems += _decode_files(config, decodes)
    for problem in problems:
        print(f"error: {shown_path(args.config)}: {problem}", file=sys.stderr)
    if problems:
        return EXIT_FAILED  # as run exits when a sink cannot open, or a camera fails
    zones = sum(len(c.zones) for c in config.cameras)
    lines = sum(len(c.lines) for c in config.cameras)
    scene = f" with {zones} zone(s) and {lines} line(s)" if zones or lines else ""
    print(
        f"{shown_path(args.config)}: ok ({len(config.cameras)} camera(s){scene}, model "
        f"{config.detector.model} ({classes}), sinks: "
        f"{', '.join(s.type for s in config.sinks) or 'none'})"
    )
    return EXIT_OK


def _decode_files(config: PipelineConfig, decodes: WholeDecodes) -> list[str]:
    """Decodes each file camera's whole file: prints a line per damaged one that run plays
    all the same; returns one per file that run would stop reading (its camera failing)."""
    from pipeline.decode_check import decode_cameras

    problems = []
    for camera_id, found in decode_cameras(config.cameras, decodes).items():
        if (damage := found.damage()) is None:
            continue
        if found.playable:
            print(f"camera {camera_id!r}: {damage}")
        else:
            problems.append(f"camera {camera_id!r}: {damage}")
    return problems


def cmd_run(args: argparse.Namespace) -> int:
    # A missing source file fails its camera alone, as an unreadable one does.
    config = _load(args.config, check_sources=False)
    if config is None:
        return EXIT_USAGE

    from detector.errors import ModelConfigError, WeightsUnavailableError
    from pipeline.build import SceneConfigError
    from pipeline.cluster.engine import ClusterError
    from pipeline.progress import Progress
    from pipeline.runner import Pipeline
    from pipeline.web import ServerError
    from sinks.base import SinkError

    pipeline: Pipeline | ClusterRun
    if config.cluster is None:
        pipeline = Pipeline(config, config_source=str(args.config))
    else:
        from pipeline.cluster.run import ClusterRun

        pipeline = ClusterRun(config, config_source=str(args.config))
    progress = Progress([c.id for c in config.cameras], enabled=not args.no_progress)
    try:
        with stop_on_signals(pipeline.stop, doing=lambda: pipeline.stop_does) as received:
            summary = pipeline.run(on_progress=progress.update, on_start=progress.started)
    except (ModelConfigError, WeightsUnavailableError) as exc:
        print(f"error: detector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SceneConfigError as exc:
        print(f"error: {shown_path(args.config)}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SinkError, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ImportError as exc:  # the http server (or the live view) without the api extra
        print(f"error: http: {exc}; pip install 'ssd-pipeline[api]'", file=sys.stderr)
        return EXIT_USAGE
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        progress.close()
    progress.print_summary(summary)
    return run_exit_status(summary, received[0] if received else None)


def run_exit_status(summary: RunSummary, stop_signal: int | None) -> int:
    """`run`'s exit status: EXIT_FAILED when anything failed (`RunSummary.ok`: a camera
    marked FAILED in the summary, a sink, the detector), whatever stopped the run; else
    `stopped_by` the signal that stopped it, else EXIT_OK."""
    if not summary.ok:
        return EXIT_FAILED
    if summary.interrupted:
        return stopped_by(stop_signal or signal.SIGINT)
    return EXIT_OK


FORCE_AFTER_S = 0.5
"""A further signal forces the exit only this long after the first. `timeout` and process
managers signal a process and its group at once: that is one request to stop, not two."""


@contextlib.contextmanager
def stop_on_signals(
    stop: Any,
    clock: Callable[[], float] = time.monotonic,
    doing: str | Callable[[], str] = STOP_RUNNING,
) -> Iterator[list[int]]:
    """While in the block, first SIGINT/SIGTERM: set `stop` and say what the command is
    `doing` to stop well (`run`: what a stop does in its phase at that moment,
    `Pipeline.stop_does`). Another one at least `FORCE_AFTER_S` later (a person pressing
    Ctrl-C again): exit at once. On leaving
    the block the handlers found on entering it are back (a program that calls a command
    keeps its own).

    Yields the list the signals taken as the request to stop are appended to.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may set handlers: the caller's stay, and stop it
        return
    first_at: list[float] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        now = clock()
        if not first_at:
            first_at.append(now)
            received.append(signum)
            name = signal.Signals(signum).name
            said = doing() if callable(doing) else doing
            _say(f"\n{name}: stopping; {said} (again to force)\n")
            stop.set()  # last: it may raise, to end work that never looks at it
        elif now - first_at[0] >= FORCE_AFTER_S:
            _say("\nforced exit\n")
            os._exit(stopped_by(signum))

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, was in previous.items():
            # None: a handler not set from Python; the default is the nearest to it
            signal.signal(signum, signal.SIG_DFL if was is None else was)


def _say(text: str) -> None:
    """Writes to stderr unbuffered: a handler may run while the main thread is in the middle
    of writing there (progress bars), and the buffered stream would raise."""
    with contextlib.suppress(OSError):  # stderr closed: stopping matters more than saying so
        os.write(2, text.encode())
