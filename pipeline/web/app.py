"""The HTTP app: /metrics, /healthz, /api/status of a running pipeline, /api/runs,
detections, tracks, visits and counts of a stored database (docs/api.md), and the routes of the
run's sinks (the live view)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select
from starlette.routing import BaseRoute, Mount

from pipeline.metrics import RunMetrics, Watched
from pipeline.web.access import AccessMiddleware, describe_access
from pipeline.web.docs import ASSET_PATHS, docs_routes
from pipeline.web.index import Link, link_line, root_route, served_links, with_token
from pipeline.web.models import (
    CameraOut,
    CountOut,
    DetectionOut,
    DetectionsPage,
    HealthOut,
    LineCountOut,
    RunOut,
    RunsPage,
    SinkOut,
    StatusOut,
    TrackOut,
    TracksPage,
    VisitOut,
    VisitsPage,
    ZoneCountOut,
)
from pipeline.web.openapi import describe_routes
from pipeline.web.page import render_page
from pipeline.web.params import Counting, Limit, PathCamera, PathId, SceneCounting, filters
from pipeline.web.swagger_ui import served_folder
from pipeline.web.tickets import DocsTickets
from sinks.live_view.access import Access
from sinks.sql.database import DatabaseUrl
from sinks.sql.models import Track
from sinks.sql.query import CountBy, count_detections, latest_detections, list_runs, list_tracks
from sinks.sql.reading import DetectionQuery, QueryError, existing_database
from sinks.sql.scene_query import TooManyPeriods, count_crossings, count_visits, list_visits


def create_app(
    *,
    db: str | None = None,
    metrics: RunMetrics | None = None,
    serve_metrics: bool = True,
    serve_status: bool = True,
    access: Access | None = None,
    mounts: Sequence[tuple[str, Sequence[BaseRoute]]] = (),
    swagger_ui: Path | None = None,
) -> FastAPI:
    """The app over database `db` (the /api routes of what is stored and the page, only
    with one) and a running pipeline's `metrics` (its counts: /healthz; /api/status when
    `serve_status`, /metrics when `serve_metrics`), with each of `mounts` (a path such as
    "/live", or "" for the root, and its routes, in the OpenAPI description as their
    endpoints describe them: `describe_routes`); every request checked by `access` when
    given. `/` is the page over `db`, else a mount's at the root, else `root_route`'s;
    `/docs` loads Swagger UI from the folder `swagger_ui` (`served_folder`)."""
    app = FastAPI(
        title="ssd-pipeline",
        description="Metrics, health, the stored detections, tracks and runs, and the live "
        "view of a run.",
        version="1",
        docs_url=None,  # /docs: `docs_routes`, which passes a `?token=` on
        redoc_url=None,
    )
    tickets = DocsTickets() if access is not None and access.credentials is not None else None
    app.router.routes.extend(docs_routes(app, served_folder(swagger_ui), tickets))
    if access is not None:
        app.add_middleware(AccessMiddleware, access=access, public=ASSET_PATHS, tickets=tickets)

    @app.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
    def healthz() -> JSONResponse:
        """200 while no camera and no sink has failed (and the database can be read); 503
        naming what failed otherwise."""
        problems = _problems(metrics.watched()) if metrics is not None else []
        if db is not None and metrics is None:
            try:
                list_runs(db, 1)
            except QueryError as exc:
                problems.append(str(exc))
        body = HealthOut(ok=not problems, problems=problems)
        return JSONResponse(body.model_dump(), status_code=503 if problems else 200)

    serves_metrics = metrics is not None and serve_metrics
    serves_status = metrics is not None and serve_status
    if metrics is not None and serves_metrics:  # (not None again: for the type checker)

        @app.get("/metrics", response_class=PlainTextResponse)
        def prometheus() -> Response:
            """The run's metrics in Prometheus' text format (docs/metrics.md)."""
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if metrics is not None and serves_status:

        @app.get("/api/status", response_model=StatusOut)
        def status() -> StatusOut:
            """The running pipeline's cameras and sinks."""
            return _status(metrics.watched())

    views = [path for path, _ in mounts if path]
    links = served_links(mounts=views, status=serves_status, metrics=serves_metrics)
    if db is not None:
        _add_stored_routes(app, db, links)
    elif all(path for path, _ in mounts):  # else a mount's own `/` is there
        app.router.routes.append(root_route(links, views))
    served = [
        route
        for path, routes in mounts
        for route in ([Mount(path, routes=list(routes))] if path else routes)
    ]
    app.router.routes.extend(served)
    match_to_the_end(app.router.routes)
    describe_routes(app, served)
    if access is not None:  # after: what it answers before any route holds for these too
        describe_access(app, access)
    return app


def match_to_the_end(routes: Sequence[BaseRoute]) -> None:
    """Each of `routes` (those of a mount too) matches a path to its very end (`\\Z`).

    Starlette ends its patterns in `$`, which also matches before a trailing newline: a
    path with `%0A` after it was answered as the path, a file served by its name with a
    newline after it. Now such a path is answered 404, as any other that no route takes."""
    for route in routes:
        regex: re.Pattern[str] | None = getattr(route, "path_regex", None)
        if regex is not None and regex.pattern.endswith("$"):
            route.path_regex = re.compile(  # type: ignore[attr-defined]
                regex.pattern.removesuffix("$") + r"\Z", regex.flags
            )
        if isinstance(route, Mount):
            match_to_the_end(route.routes)


_UNREADABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database cannot be read (one line says why)."}
}


def _add_stored_routes(app: FastAPI, db: str, links: Sequence[Link]) -> None:
    """The routes over the stored runs, detections, tracks, visits and counts of `db`, and
    the page of them at `/` (with `links` at its foot)."""

    def stored(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except QueryError as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.get("/api/runs", response_model=RunsPage, responses=_UNREADABLE)
    def runs(limit: Limit = 100) -> RunsPage:
        """The last runs, newest first, with their detections and tracks counted."""
        page = stored(list_runs, db, limit)
        return RunsPage(total=page.total, rows=[RunOut(**r.as_dict()) for r in page.rows])

    @app.get("/api/detections", response_model=DetectionsPage, responses=_UNREADABLE)
    def detections(
        q: Annotated[
            DetectionQuery,
            filters("camera", "label", "run", "track", "since", "until", "min_score", "limit"),
        ],
    ) -> DetectionsPage:
        """The newest detections matching the filters (as `python -m pipeline query`)."""
        page = stored(latest_detections, db, q)
        return DetectionsPage(
            total=page.total, rows=[DetectionOut(**r.as_dict()) for r in page.rows]
        )

    @app.get("/api/tracks", response_model=TracksPage, responses=_UNREADABLE)
    def tracks(
        q: Annotated[DetectionQuery, filters("camera", "label", "run", "min_score", "limit")],
    ) -> TracksPage:
        """The finished tracks that ended last, newest first (`query --list tracks`)."""
        page = stored(list_tracks, db, q)
        return TracksPage(total=page.total, rows=[TrackOut(**r.as_dict()) for r in page.rows])

    @app.get("/api/visits", response_model=VisitsPage, responses=_UNREADABLE)
    def visits(
        q: Annotated[
            DetectionQuery, filters("camera", "label", "run", "track", "since", "until", "limit")
        ],
    ) -> VisitsPage:
        """The finished zone visits that ended last, newest first (`query --list visits`);
        times filter the visits' entering."""
        page = stored(list_visits, db, q)
        return VisitsPage(total=page.total, rows=[VisitOut(**r.as_dict()) for r in page.rows])

    @app.get(
        "/api/tracks/{run}/{camera}/{track}/snapshot",
        response_class=FileResponse,
        responses={**_UNREADABLE, 404: {"description": "No such track, or no snapshot file."}},
    )
    def snapshot(run: PathId, camera: PathCamera, track: PathId) -> FileResponse:
        """The JPEG of the track's best detection, when the snapshots sink wrote one."""
        path = stored(_snapshot_path, db, run, camera, track)
        # only a JPEG: the path comes from the database, which is not ours alone
        if path is None or Path(path).suffix.lower() != ".jpg" or not Path(path).is_file():
            raise HTTPException(404, "no snapshot of that track")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/api/counts", response_model=list[CountOut], responses=_UNREADABLE)
    def counts(
        q: Annotated[
            DetectionQuery, filters("camera", "label", "run", "since", "until", "min_score")
        ],
        by: Annotated[CountBy, Query(description="Count per label, camera or run.")] = "label",
    ) -> list[CountOut]:
        """Detections and distinct tracks per label, camera or run (`query --count-by`)."""
        rows = stored(count_detections, db, q, by)
        return [CountOut(key=r.key, detections=r.detections, tracks=r.tracks) for r in rows]

    def scene_counts(count: Any, counting: SceneCounting) -> list[dict[str, Any]]:
        """`count` (a scene query) of `db`; a 422 when `every` is too fine for the span."""
        try:
            rows: list[dict[str, Any]] = count(db, counting.query, counting.every)
        except TooManyPeriods as exc:
            raise HTTPException(422, str(exc)) from exc
        except QueryError as exc:
            raise HTTPException(503, str(exc)) from exc
        return rows

    _TOO_FINE: dict[int | str, dict[str, Any]] = {
        **_UNREADABLE,
        422: {"description": "A filter is wrong, or `every` makes too many periods."},
    }

    @app.get(
        "/api/counts/lines",
        response_model_exclude_none=True,  # the keys `query --format json` prints
        response_model=list[LineCountOut],
        responses=_TOO_FINE,
    )
    def line_counts(counting: Counting) -> list[LineCountOut]:
        """Line crossings per camera, line and direction, with distinct tracks; per period
        with `every` (`query --count-by line [--every]`). Times filter the crossings'."""
        rows = scene_counts(count_crossings, counting)
        return [LineCountOut.model_validate(r) for r in rows]

    @app.get(
        "/api/counts/zones",
        response_model_exclude_none=True,  # the keys `query --format json` prints
        response_model=list[ZoneCountOut],
        responses=_TOO_FINE,
    )
    def zone_counts(counting: Counting) -> list[ZoneCountOut]:
        """Finished zone visits per camera and zone: visits, distinct tracks, mean and
        longest dwell; with `every`, per period: visits entered and the peak occupancy
        (`query --count-by zone [--every]`). Times filter the visits' entering."""
        return [ZoneCountOut.model_validate(r) for r in scene_counts(count_visits, counting)]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        """A page of the runs, the latest tracks and the counts."""
        runs_page = stored(list_runs, db, 20)
        tracks_page = stored(list_tracks, db, DetectionQuery(limit=24))
        counted = stored(count_detections, db, DetectionQuery(), "label")
        foot = link_line(links, request)
        link = partial(with_token, request=request)
        return HTMLResponse(render_page(runs_page, tracks_page, counted, foot, link))


def _snapshot_path(db: str, run: int, camera: str, track: int) -> str | None:
    """The stored snapshot path of a track; None without a track or a path."""
    with existing_database(DatabaseUrl(db)) as engine, engine.connect() as conn:
        stmt = select(Track.snapshot_path).where(
            Track.run_id == run, Track.camera == camera, Track.track_id == track
        )
        return conn.scalar(stmt)


def _status(watched: Watched) -> StatusOut:
    readers = {r.camera_id: r for r in watched.readers}
    cameras = []
    for camera_id, cam in watched.stats.items():
        reader = readers.get(camera_id)
        lost = reader.lost if reader is not None else cam.lost
        said = f"FAILED: {cam.error}" if cam.error else f"ok until lost: {lost}" if lost else "ok"
        cameras.append(
            CameraOut(
                camera=camera_id,
                source=cam.source,
                ok=cam.error is None,
                status=said,
                frames=cam.frames,
                detections=cam.detections,
                tracks=cam.tracks,
                dropped=reader.dropped if reader else cam.dropped,
                decode_errors=reader.decode_errors if reader else cam.decode_errors,
                reconnects=reader.reconnects if reader else cam.reconnects,
            )
        )
    sinks = [
        SinkOut(
            sink=name, ok=not s.failed, written=s.written, failed=s.unwritten, buffered=s.buffered
        )
        for name, s in watched.sinks.items()
    ]
    ok = all(c.ok for c in cameras) and all(s.ok for s in sinks)
    return StatusOut(ok=ok, cameras=cameras, sinks=sinks)


def _problems(watched: Watched) -> list[str]:
    """One line per failed camera and sink."""
    cameras = [cam.error for cam in watched.stats.values() if cam.error is not None]
    sinks = [s.error or f"sink {name} failed" for name, s in watched.sinks.items() if s.failed]
    return cameras + sinks
