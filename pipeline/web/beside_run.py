"""The server a run starts for its `http:` section."""

from __future__ import annotations

from pipeline.config.http import HttpConfig
from pipeline.metrics import RunMetrics
from pipeline.web.app import create_app
from pipeline.web.server import HttpServer, bind
from sinks.live_view.access import Access


def start_run_server(config: HttpConfig, metrics: RunMetrics, db: str | None) -> HttpServer:
    """Serves the run's metrics and status, and `db` (the sql sink's database, if any) when
    `config.api`; ServerError when its port cannot be had."""
    credentials = config.auth.credentials() if config.auth is not None else None
    app = create_app(
        db=db if config.api else None,
        metrics=metrics,
        serve_metrics=config.metrics,
        access=Access(config.host, config.allowed_hosts, credentials),
    )
    return HttpServer(app, bind(config.host, config.port)).start()
