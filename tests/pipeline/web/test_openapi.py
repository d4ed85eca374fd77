"""Property-based tests of the API against its own OpenAPI description (schemathesis):
every operation, with generated parameters, answers as the description says and never 5xx;
the live view's too, served beside the API as a run serves it, its run over so that its
streams end at once.

`since`, `until` and `every` are described by the patterns of the times and periods `query`
takes (`pipeline.timeparse`), so a request is expected to be accepted whenever they match,
unless beyond the bounds a pattern cannot state (`beyond_what_a_pattern_states`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from pipeline.metrics import RunMetrics  # noqa: E402
from pipeline.timeparse import OutOfRange, parse_duration, parse_time  # noqa: E402
from pipeline.types import LabelMap, StreamInfo  # noqa: E402
from pipeline.web.app import create_app  # noqa: E402
from sinks.live_view.access import Access, Credentials  # noqa: E402
from sinks.live_view.sink import LiveViewSink  # noqa: E402
from sinks.snapshot_files import snapshot_name  # noqa: E402
from tests.sinks.live_view.conftest import moving_frame  # noqa: E402
from tests.sinks.live_view.test_tracks import ended, result  # noqa: E402
from tests.sinks.snapshots.builders import T0  # noqa: E402

TOKEN = "0123456789abcdef-token"


@pytest.fixture(autouse=True)
def subnormal_floats() -> Iterator[None]:
    """Hypothesis refuses to generate floats where subnormals flush to zero, which a
    detector built earlier in the same process turns on (`torch.set_flush_denormal`)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
    yield
    if torch is not None:
        torch.set_flush_denormal(True)


def served_run(
    stored: str, folder: Path, access: Access | None = None, *, over: bool = True
) -> object:
    """The server of a run with an `sql` sink and a live view at /live: camera `lobby` with
    a frame and a track ended with its snapshot in `folder`; when the run is `over` the
    view's streams end at once and its newest frame is 503."""
    view = LiveViewSink(LabelMap(("background", "person")), snapshot_dir=folder)
    view.start(StreamInfo("lobby", 320, 240, Fraction(25), "synthetic"))
    view.write(moving_frame("lobby", 0))
    view.write(result((ended(folder, 1),)))
    if over:
        view.close()
    mounts = [("/live", view.routes("http://testserver/live/"))]
    return create_app(db=stored, metrics=RunMetrics(), access=access, mounts=mounts)


@pytest.fixture
def api_schema(stored: str, tmp_path: Path) -> object:
    """The API of `serve`, and of a run (its status, metrics and live view)."""
    app = served_run(stored, tmp_path)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_its_openapi_description_says(case: object) -> None:
    response = case.call()  # type: ignore[attr-defined]
    refused = beyond_what_a_pattern_states(case.query or {}, response)  # type: ignore[attr-defined]
    excluded = [positive_data_acceptance] if refused else []
    case.validate_response(response, excluded_checks=excluded)  # type: ignore[attr-defined]


def beyond_what_a_pattern_states(query: dict[str, object], response: object) -> bool:
    """Whether `response` is the 422 of a time or period of the described form that is out
    of range (a duration over 100 years or under a microsecond, a time outside years 1 to
    9999 in UTC: sums and offsets no pattern states), or of a period that makes too many for
    the span counted (which the stored rows decide): the only well-formed values refused."""
    if response.status_code != 422:  # type: ignore[attr-defined]
        return False
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    if isinstance(detail, str):
        return "periods for this time span" in detail  # `TooManyPeriods`
    parsers: dict[str, Callable[[str], object]] = {
        "since": parse_time, "until": parse_time, "every": parse_duration,
    }  # fmt: skip
    for name, parse in parsers.items():
        value = query.get(name)
        if isinstance(value, str):
            try:
                parse(value)
            except OutOfRange:
                return True
            except ValueError:  # malformed: the check's own business, not out of range
                continue
    return False


@pytest.fixture
def guarded_schema(stored: str, tmp_path: Path) -> object:
    """The API of a server with a token, asked for its description with the token."""
    access = Access("127.0.0.1", ("testserver",), Credentials(token=TOKEN))  # the ASGI client's
    app = served_run(stored, tmp_path, access)
    return schemathesis.openapi.from_asgi(f"/openapi.json?token={TOKEN}", app)


guarded = schemathesis.pytest.from_fixture("guarded_schema")


@guarded.parametrize()
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_request_without_the_token_is_answered_401_as_the_description_says(
    case: object,
) -> None:
    """The 401 of a server with a token was in no operation's description."""
    headers = case.headers or {}  # type: ignore[attr-defined]
    # An Origin is checked before the token (403 for one naming no allowed host, an empty
    # one too); schemathesis sometimes sends an empty one.
    case.headers = {k: v for k, v in headers.items() if k.lower() != "origin"}  # type: ignore[attr-defined]
    response = case.call()  # type: ignore[attr-defined]
    assert response.status_code == 401
    case.validate_response(response)  # type: ignore[attr-defined]


SNAPSHOT = snapshot_name("lobby", 1, T0 + 1)


@pytest.mark.parametrize(
    ("over", "path", "parameters", "answer"),
    [
        (True, "/live/", {}, (200, "text/html")),
        (True, "/live/tracks", {}, (200, "text/html")),
        (True, "/live/api/cameras", {}, (200, "application/json")),
        (True, "/live/api/tracks", {}, (200, "application/json")),
        (True, "/live/cameras/{camera}.mjpg", {"camera": "lobby"}, (200, "multipart/x-mixed-replace")),
        (True, "/live/cameras/{camera}.mjpg", {"camera": "nope"}, (404, "text/plain")),
        (True, "/live/cameras/{camera}.mjpg", {"camera": "a/b"}, (404, "application/json")),
        (False, "/live/cameras/{camera}.jpg", {"camera": "lobby"}, (200, "image/jpeg")),
        (True, "/live/cameras/{camera}.jpg", {"camera": "lobby"}, (503, "text/plain")),
        (True, "/live/cameras/{camera}.jpg", {"camera": "nope"}, (404, "text/plain")),
        (True, "/live/snapshots/{name}", {"name": SNAPSHOT}, (200, "image/jpeg")),
        (True, "/live/snapshots/{name}", {"name": "lobby/secret.jpg"}, (404, "text/plain")),
    ],
)  # fmt: skip
def test_the_live_views_answers_are_as_the_openapi_description_says(
    stored: str,
    tmp_path: Path,
    over: bool,
    path: str,
    parameters: dict[str, str],
    answer: tuple[int, str],
) -> None:
    """Its routes were in no description; each of its answers, a stream's included (its
    run over, it ends at once), has its status, content type and body described."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", served_run(stored, tmp_path, over=over)
    )
    case = schema[path]["GET"].Case(path_parameters=parameters)
    response = case.call()
    media = response.headers["content-type"][0].partition(";")[0]
    assert (response.status_code, media) == answer
    # a 503 it describes (no frame yet) is no server error here
    case.validate_response(response, excluded_checks=[not_a_server_error])


def test_a_live_view_at_the_root_is_described_at_the_root(tmp_path: Path) -> None:
    """Without an `http:` section the view is the server's root, and so in its description."""
    view = LiveViewSink(LabelMap(("background", "person")), snapshot_dir=tmp_path)
    app = create_app(metrics=RunMetrics(), mounts=[("", view.routes("http://testserver/"))])
    described = app.openapi()["paths"]
    assert "text/html" in described["/"]["get"]["responses"]["200"]["content"]
    mjpeg = described["/cameras/{camera}.mjpg"]["get"]["responses"]
    assert "multipart/x-mixed-replace" in mjpeg["200"]["content"]
    assert {"/api/cameras", "/api/tracks", "/tracks", "/snapshots/{name}"} <= described.keys()
    assert "/index.html" not in described  # the same page as /
