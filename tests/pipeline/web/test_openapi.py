"""Property-based tests of the API against its own OpenAPI description (schemathesis):
every operation, with generated parameters, answers as the description says and never 5xx.

`since` and `until` take the times `query` takes ('10 minutes ago', ISO 8601, ...) and
`every` its periods ('15m', '1 day'), grammars a schema does not state: a request with one is not expected to be accepted
whatever the string, only answered as described (a 422 naming it when it is no time).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from pipeline.web.app import create_app  # noqa: E402
from sinks.live_view.access import Access, Credentials  # noqa: E402

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


@pytest.fixture
def api_schema(stored: str) -> object:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(db=stored))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_its_openapi_description_says(case: object) -> None:
    query = case.query or {}  # type: ignore[attr-defined]
    free_form = {"since", "until", "every"} & set(query)
    excluded = [positive_data_acceptance] if free_form else []
    case.call_and_validate(excluded_checks=excluded)  # type: ignore[attr-defined]


@pytest.fixture
def guarded_schema(stored: str) -> object:
    """The API of a server with a token, asked for its description with the token."""
    access = Access("127.0.0.1", ("testserver",), Credentials(token=TOKEN))  # the ASGI client's
    app = create_app(db=stored, access=access)
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
    response = case.call()  # type: ignore[attr-defined]
    assert response.status_code == 401
    case.validate_response(response)  # type: ignore[attr-defined]
