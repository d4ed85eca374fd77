"""`subscribe` and `keygen`: reading the event bus, and keys to secure it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from pipeline.argtypes import name, nonempty, plain, seconds, whole
from pipeline.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_NO_EVENTS,
    EXIT_OK,
    EXIT_USAGE,
    interrupted_status,
)
from pipeline.config import ZmqSinkConfig
from sinks.event_bus.endpoints import connect_problem, unknown_host

if TYPE_CHECKING:
    from sinks.event_bus.subscriber import PublisherState

DEFAULT_ENDPOINT: str = ZmqSinkConfig.model_fields["endpoint"].default
"""The publisher `subscribe` connects to: where the `zmq` sink binds by default."""
MAX_TIMEOUT_S = 365 * 86400
NAME_RETRY_S = 1.0
"""How often `subscribe` asks again for an endpoint's host name that does not resolve yet
(its publisher's machine not in DNS yet, say)."""


def endpoint(value: str) -> str:
    """An argparse type: a ZeroMQ endpoint a publisher in another process can be reached
    at (no inproc://, no wildcard)."""
    if (problem := connect_problem(value)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def add_subscribe_parser(sub: Any) -> None:
    """The `subscribe` subcommand."""
    p = sub.add_parser(
        "subscribe", help="print events from a running pipeline (readable, or JSON lines)"
    )
    p.add_argument(
        "--endpoint", type=endpoint, default=DEFAULT_ENDPOINT, help="PUB socket to connect to"
    )
    p.add_argument(
        "--camera", type=nonempty, action="append", default=[],
        help="only this camera (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--type",
        action="append",
        default=[],
        help="only this event type: detections, track.started, track.ended, stream.ended, "
        "camera.status, zone.entered, zone.left, zone.dwell, zone.occupancy, line.crossed",
    )
    p.add_argument(
        "--label",
        type=nonempty,
        action="append",
        default=[],
        help="only objects and tracks of this class, e.g. person (repeatable)",
    )
    p.add_argument("--count", type=whole(1), default=None, help="exit after N events")
    p.add_argument(
        "--timeout", type=seconds(0, MAX_TIMEOUT_S), default=None,
        help="exit after N idle seconds (at most a year)",
    )  # fmt: skip
    p.add_argument(
        "--format",
        choices=["pretty", "json"],
        default=None,
        help="pretty: one readable line per event; json: one JSON object per line "
        "(default: pretty on a terminal, json otherwise)",
    )
    p.add_argument(
        "--server-key",
        default=os.environ.get("PIPELINE_ZMQ_SERVER_KEY"),
        help="CURVE: the publisher's public key, or its .key file "
        "(default: $PIPELINE_ZMQ_SERVER_KEY)",
    )
    p.add_argument(
        "--client-key",
        default=os.environ.get("PIPELINE_ZMQ_CLIENT_KEY"),
        help="CURVE: this client's .key_secret file, when the publisher only admits known "
        "clients (default: $PIPELINE_ZMQ_CLIENT_KEY; else a fresh key pair)",
    )
    p.set_defaults(func=cmd_subscribe)


def add_keygen_parser(sub: Any) -> None:
    """The `keygen` subcommand."""
    p = sub.add_parser("keygen", help="make a CURVE key pair for the ZeroMQ event bus")
    p.add_argument(
        "directory", type=nonempty, help="folder for NAME.key (public) and NAME.key_secret"
    )
    p.add_argument("--name", type=name, default="server", help="file name stem (default: server)")
    p.set_defaults(func=cmd_keygen)


def cmd_subscribe(args: argparse.Namespace) -> int:
    from sinks.event_bus.display import format_event
    from sinks.event_bus.keys import CurveKeyError, read_public_key, read_secret_key
    from sinks.event_bus.subscriber import EventSubscriber, only_labels

    pretty = args.format == "pretty" or (args.format is None and sys.stdout.isatty())
    seen = 0
    try:
        if not _host_resolves(args):
            return EXIT_FAILED
        server_key = read_public_key(args.server_key) if args.server_key else None
        client_keys = None
        if args.client_key:
            client_keys = (read_public_key(args.client_key), read_secret_key(args.client_key))
        with EventSubscriber(
            args.endpoint,
            cameras=args.camera,
            types=args.type,
            server_key=server_key,
            client_keys=client_keys,
        ) as subscriber:
            if sys.stderr.isatty():  # a person is watching: say what nothing-yet means
                limit = (
                    "" if args.timeout is None else f", at most {plain(args.timeout)} s without one"
                )
                print(
                    f"waiting for {_wanted(args)}{limit}; Ctrl-C stops", file=sys.stderr, flush=True
                )
            while (event := subscriber.receive(args.timeout)) is not None:
                shown = only_labels(event, args.label)
                if shown is None:
                    continue
                print(format_event(shown) if pretty else shown.model_dump_json(), flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    return EXIT_OK
            publisher = subscriber.publisher
    except (ValueError, CurveKeyError) as exc:  # bad type, endpoint or key
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # how a user ends an open-ended subscription
        return interrupted_status(exc)
    return _timed_out(args, seen, publisher, secured=server_key is not None)


def _host_resolves(args: argparse.Namespace) -> bool:
    """Whether the endpoint's host name resolves (or the resolver cannot say), once it does:
    while the system says it does not, says so once on stderr and asks again every
    `NAME_RETRY_S`, as a publisher not up yet is waited for (ZeroMQ would retry the name in
    silence); False, said in one more line, when `--timeout` passes first."""
    why = unknown_host(args.endpoint)
    if why is None:
        return True
    limit = "" if args.timeout is None else f", for at most {plain(args.timeout)} s"
    print(
        f"no publisher at {args.endpoint} yet: {why}; asking again every "
        f"{plain(NAME_RETRY_S)} s{limit}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            print(
                f"error: no publisher at {args.endpoint}: {why}, still after "
                f"{plain(args.timeout)} s",
                file=sys.stderr,
            )
            return False
        time.sleep(NAME_RETRY_S if left is None else min(NAME_RETRY_S, left))
        if unknown_host(args.endpoint) is None:
            return True


def _timed_out(
    args: argparse.Namespace, seen: int, publisher: PublisherState, *, secured: bool
) -> int:
    """Says, in one line on stderr, why `--timeout` passed without an event (`seen` events
    shown before), and returns the exit status that tells it (docs/events.md)."""
    if publisher == "absent":
        print(
            f"error: no publisher at {args.endpoint}: nothing accepted the connection in "
            f"{plain(args.timeout)} s (is the pipeline running, with a zmq sink bound there?)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if publisher == "refused":
        way_out = (
            "it is secured with CURVE: give its public key with --server-key"
            if not secured
            else "check --server-key, and --client-key when it admits only known clients"
        )
        print(
            f"error: the publisher at {args.endpoint} refused the connection: {way_out}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if seen == 0:
        left = "; the publisher has gone" if publisher == "gone" else ""
        print(f"no {_wanted(args)} in {plain(args.timeout)} s{left}", file=sys.stderr)
        return EXIT_NO_EVENTS
    if args.count is not None:
        print(
            f"only {seen} of {args.count} {_wanted(args)} before {plain(args.timeout)} s passed "
            "without one",
            file=sys.stderr,
        )
        return EXIT_NO_EVENTS
    return EXIT_OK  # events came until the publisher fell silent: the usual end


def _wanted(args: argparse.Namespace) -> str:
    """The events `subscribe` waits for, in words: "events from ENDPOINT (filters)"."""
    filters = [
        f"{what} {', '.join(values)}"
        for what, values in (("camera", args.camera), ("type", args.type), ("label", args.label))
        if values
    ]
    return f"events from {args.endpoint}" + (f" ({'; '.join(filters)})" if filters else "")


def cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sinks.event_bus.keys import create_key_pair

    directory = Path(args.directory)
    try:
        public_path, secret_path, public = create_key_pair(directory, args.name)
    except FileExistsError as exc:
        print(f"error: {exc.filename} exists; choose another --name or folder", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: cannot write keys to {directory}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"public key  {public_path}  ({public.decode()})")
    print(f"secret key  {secret_path}  (readable by you only; keep it private)")
    return EXIT_OK
