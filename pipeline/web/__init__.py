"""The pipeline's HTTP server: Prometheus metrics, health, and an API over what is stored
(docs/metrics.md, docs/api.md). Needs the `api` extra (FastAPI and uvicorn)."""
