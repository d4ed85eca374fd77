"""The pipeline's HTTP server: Prometheus metrics, health, an API over what is stored and
the live view (docs/metrics.md, docs/api.md, docs/live-view.md). Needs the `api` extra
(FastAPI and uvicorn); this module itself imports neither."""


class ServerError(RuntimeError):
    """The HTTP server cannot start (its port taken, say); the message is one line."""
