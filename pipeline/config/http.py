"""The `http:` section: the pipeline's own HTTP server (metrics, health, the API)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from pipeline.config.base import AllowedHosts, FsPath, ListenHost, ListenPort
from pipeline.config.server import LiveAuthConfig, ServerAccess
from pipeline.web.swagger_ui import swagger_files_problem

DEFAULT_HTTP_PORT = 9464
"""The port of the pipeline's HTTP server (9464: Prometheus exporters' range)."""


class HttpConfig(ServerAccess):
    serves: ClassVar[str] = "the HTTP server"
    host: ListenHost = Field(
        "127.0.0.1",
        description="Address to listen on; 127.0.0.1 keeps it on this machine. Any other "
        "(0.0.0.0: all interfaces) needs `auth` or `allow_unauthenticated: true`.",
    )
    port: ListenPort = Field(DEFAULT_HTTP_PORT, description="TCP port (0: any free port).")
    metrics: bool = Field(
        True, description="Serve Prometheus metrics at /metrics (docs/metrics.md)."
    )
    api: bool = Field(
        True,
        description="Serve the API (docs/api.md): camera status at /api/status, and the "
        "runs, detections, tracks and counts of the sql sink's database when there is one.",
    )
    allowed_hosts: AllowedHosts = Field(
        (),
        description="More names the server is reached by (checked in Host and Origin); "
        "localhost, 127.0.0.1, ::1 and `host` are always allowed.",
    )
    auth: LiveAuthConfig | None = Field(
        None,
        description="Require a password or token from every request, as the live view does "
        "(none: no login).",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Serve a non-loopback `host` without `auth`: anyone who can reach the "
        "port reads the metrics and the API.",
    )

    swagger_ui: FsPath | None = Field(
        None,
        description="Folder holding Swagger UI's swagger-ui-bundle.js and swagger-ui.css "
        "(npm's swagger-ui-dist, version 5 or later), which the server sends for /docs so that "
        "it works without internet. None: the copy the `api` extra installs, else the browser "
        "loads them from cdn.jsdelivr.net.",
    )

    @field_validator("swagger_ui")
    @classmethod
    def _swagger_ui_files_exist(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        folder = value.expanduser()
        if (problem := swagger_files_problem(folder)) is not None:
            raise ValueError(problem)
        return folder
