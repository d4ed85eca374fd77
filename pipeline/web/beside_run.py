"""The one HTTP server of a run: its `http:` section (or the live sink's own settings)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config.http import HttpConfig
from pipeline.metrics import RunMetrics
from pipeline.web.app import create_app
from pipeline.web.server import HttpServer, bind, url_of
from sinks.base import Sink
from sinks.live_view.access import Access


def start_run_server(
    config: HttpConfig,
    metrics: RunMetrics,
    db: str | None,
    sinks: Sequence[Sink] = (),
    *,
    sinks_at_root: bool = False,
) -> HttpServer:
    """Serves the run's metrics and status, `db` (the sql sink's database, if any) when
    `config.api`, and the routes of each of `sinks` that has some, under /<its name>/ (at
    the root when `sinks_at_root`); ServerError when its port cannot be had."""
    credentials = config.auth.credentials() if config.auth is not None else None
    sock = bind(config.host, config.port)
    try:
        mounts = []
        for sink in sinks:
            path = "" if sinks_at_root else f"/{sink.name}"
            routes = sink.routes(url_of(sock) + (f"{sink.name}/" if path else ""))
            if routes:
                mounts.append((path, routes))
        app = create_app(
            db=db if config.api else None,
            metrics=metrics,
            serve_metrics=config.metrics,
            serve_status=config.api,
            access=Access(config.host, config.allowed_hosts, credentials),
            mounts=mounts,
            swagger_ui=config.swagger_ui,
        )
        return HttpServer(app, sock).start()
    except BaseException:
        sock.close()
        raise
