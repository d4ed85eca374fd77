"""`serve`: the HTTP API and a page over a stored database, without a running pipeline."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from pipeline.argtypes import nonempty, whole_like
from pipeline.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, stopped_by
from pipeline.cli.records import DB_HELP, DEFAULT_DB
from pipeline.config.http import DEFAULT_HTTP_PORT, HttpConfig
from pipeline.web.swagger_ui import swagger_files_problem

TOKEN_ENV = "PIPELINE_HTTP_TOKEN"
"""Where `serve` takes its token from without --token (kept out of `ps`)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the HTTP API and a page of runs, tracks and counts over a stored database",
    )
    p.add_argument("--db", type=nonempty, default=DEFAULT_DB, help=DB_HELP)
    p.add_argument(
        "--host",
        type=nonempty,
        default="127.0.0.1",
        help="address to listen on (default: %(default)s)",
    )
    p.add_argument(
        "--port",
        type=whole_like(HttpConfig, "port"),
        default=DEFAULT_HTTP_PORT,
        help="TCP port (default: %(default)s)",
    )
    p.add_argument(
        "--token",
        type=nonempty,
        default=None,
        help=f"require this bearer token, 16+ characters (default: ${TOKEN_ENV} if set)",
    )
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback --host without a token",
    )
    p.add_argument(
        "--swagger-ui",
        type=_swagger_folder,
        default=None,
        metavar="FOLDER",
        help="send /docs Swagger UI's swagger-ui-bundle.js and swagger-ui.css from FOLDER "
        "(npm's swagger-ui-dist 5+), for a browser without internet (default: the copy the "
        "api extra installs, else the browser loads them from cdn.jsdelivr.net)",
    )
    p.set_defaults(func=cmd_serve)


def _swagger_folder(value: str) -> Path:
    """An argparse type: a folder holding Swagger UI's files (`swagger_files_problem`)."""
    folder = Path(nonempty(value)).expanduser()
    if (problem := swagger_files_problem(folder)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return folder


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from pipeline.web.app import create_app
        from pipeline.web.server import ServerError, bind, serve_forever
    except ImportError as exc:
        print(f"error: serve: {exc}; pip install 'ssd-pipeline[api]'", file=sys.stderr)
        return EXIT_USAGE
    from sinks.live_view.access import Access, Credentials, exposure_problem
    from sinks.sql.query import list_runs
    from sinks.sql.reading import QueryError

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is not None and not 16 <= len(token) <= 1024:
        print("error: --token must be 16 to 1024 characters long", file=sys.stderr)
        return EXIT_USAGE
    problem = exposure_problem(
        args.host,
        token is not None,
        args.allow_unauthenticated,
        served="the API",
        credentials=f"--token (or ${TOKEN_ENV})",
        opt_out="--allow-unauthenticated",
    )
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        list_runs(args.db, 1)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    credentials = Credentials(token=token) if token is not None else None
    access = Access(args.host, (), credentials)
    app = create_app(db=args.db, access=access, swagger_ui=args.swagger_ui)
    try:
        sock = bind(args.host, args.port)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serving {args.db} at http://{shown}:{port}/ (API: /docs); Ctrl-C stops", file=sys.stderr
    )
    from pipeline.cli.run import stop_on_signals

    stop = threading.Event()
    try:
        with stop_on_signals(stop, doing="closing connections") as received:
            serve_forever(app, sock, stop)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return stopped_by(received[0]) if received else EXIT_OK
