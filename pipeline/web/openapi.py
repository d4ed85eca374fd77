"""The OpenAPI description of the routes FastAPI does not describe itself: those of the
run's sinks (the live view), plain Starlette routes whose endpoints give their operation in
their docstring after `---`, as Starlette's schemas read it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.schemas import SchemaGenerator


def describe_routes(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """`app`'s OpenAPI description also holds the operations of `routes` (mounts included,
    under their path) that their endpoints describe; where `app` describes the same path
    and method, its own route answers first and its operation stays."""
    describe = app.openapi
    reader = SchemaGenerator({})

    def openapi() -> dict[str, Any]:
        schema = describe()  # FastAPI keeps it as `app.openapi_schema`: changed in place
        paths = schema.setdefault("paths", {})
        for endpoint in reader.get_endpoints(list(routes)):
            operation = reader.parse_docstring(endpoint.func)
            if operation:
                paths.setdefault(endpoint.path, {}).setdefault(endpoint.http_method, operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
