"""Schemathesis against the gateway's own OpenAPI schema, with valid and with invalid
credentials: whatever it generates, no 5xx (the 501/503 the schema declares aside), every status
code is one the operation declares, and every response matches its schema and content type."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from datatorag.config import Settings
from datatorag.gateway import GatewayDeps, create_app
from datatorag.testing.memory import MemoryRegistry, MemoryVectorIndex
from datatorag.testing.memory.embedder import HashingEmbedder

ADMIN, READER = "schema-admin-key", "schema-reader-key"
NO_LIMITS = {"per_s": 1e6, "burst": 1e6, "auth_failures_per_min": 1e6, "auth_failure_burst": 1e6}


def _app():
    index = MemoryVectorIndex(dim=16)
    asyncio.run(index.ensure())
    return create_app(
        GatewayDeps(
            settings=Settings(
                api_keys=f"{ADMIN}=acme,{READER}=acme",
                admin_api_keys=ADMIN,
                rate_limit=NO_LIMITS,
            ),
            index=index,
            embedder=HashingEmbedder(dim=16),
            registry=MemoryRegistry(),
        )
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
_CHECKS = CHECKS.get_by_names(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
_FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
pytestmark = pytest.mark.timeout(600)


def _validate(case, headers: dict[str, str]):
    response = case.call(headers=headers)
    if response.status_code in (501, 503):  # declared: no hook configured / no provider
        return response
    case.validate_response(response, checks=_CHECKS)
    return response


@schema.parametrize()
@_FUZZ
def test_with_an_admin_key(case) -> None:
    _validate(case, {"Authorization": f"Bearer {ADMIN}"})


@schema.parametrize()
@_FUZZ
def test_with_a_reader_key(case) -> None:
    response = _validate(case, {"X-API-Key": READER})
    assert response.status_code != 500


@schema.parametrize()
@_FUZZ
def test_with_invalid_credentials(case) -> None:
    response = _validate(case, {"Authorization": "Bearer not-a-key"})
    public = case.operation.path in ("/healthz", "/readyz", "/metrics")
    # OPTIONS (a CORS preflight carries no credentials) reaches the router: 405, no data
    expected = {405} if case.method.upper() == "OPTIONS" else {401}
    if not public:
        assert response.status_code in expected, (case.method, case.operation.path, response.text)
