"""Where `/docs` loads Swagger UI from: a folder of swagger-ui-dist's files that the server
sends itself (so the page works without internet), else its CDN. Imports no web library:
the config checks a folder with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
"""What /docs loads of swagger-ui-dist (version 5 or later: FastAPI describes its API in
OpenAPI 3.1, which Swagger UI 4 cannot show)."""
CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
"""Where the page loads them from without a folder (as FastAPI's own page does)."""
PACKAGE = "fastapi_offline"
"""The package (`fastapi-offline`, in the `api` extra) whose `static/` folder holds a copy."""


def swagger_files_problem(folder: Path) -> str | None:
    """Why `folder` cannot give /docs Swagger UI (not a folder, a file missing); None when
    it can."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        return (
            f"{folder} holds no {' and no '.join(missing)} (the files of npm's swagger-ui-dist, "
            "version 5 or later: the 'package' folder of `npm pack swagger-ui-dist`)"
        )
    return None


def packaged_folder() -> Path | None:
    """The copy of Swagger UI that `fastapi-offline` installs; None without it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if swagger_files_problem(folder) is None else None


def served_folder(configured: Path | None) -> Path | None:
    """The folder the server sends Swagger UI from: `configured` (checked where it was
    given), else the packaged copy; None when there is neither (the page loads `CDN`)."""
    return configured if configured is not None else packaged_folder()
