"""API key resolution (shared by REST headers and gRPC metadata) and validation error shaping."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datatorag.config import Settings
from datatorag.gateway.auth import ApiKeys, AuthError, key_subject
from datatorag.gateway.errors import validation_details
from datatorag.gateway.schemas import Filters, SearchRequest

KEYS = ApiKeys({"k-a": "acme", "k-b": "globex"})


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "tenant"),
    [
        ("Bearer k-a", None, "acme"),
        ("bearer   k-a  ", None, "acme"),  # scheme is case-insensitive, spaces trimmed
        (None, "k-b", "globex"),
        ("Bearer k-b", "k-b", "globex"),  # the same key twice is fine
        ("", "k-a", "acme"),  # an empty Authorization header counts as absent
    ],
)
def test_resolve_accepts(authorization, x_api_key, tenant) -> None:
    assert KEYS.resolve(authorization, x_api_key).tenant == tenant


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "message"),
    [
        (None, None, "missing API key"),
        (None, "  ", "missing API key"),
        ("Bearer nope", None, "invalid API key"),
        ("Bearer K-A", None, "invalid API key"),  # keys are case-sensitive
        ("Token k-a", None, "must be 'Bearer <api key>'"),
        ("Bearer", None, "must be 'Bearer <api key>'"),
        ("Bearer k-a", "k-b", "two different API keys"),
        ("Bearer k-a\udcff", None, "invalid API key"),  # undecodable bytes never crash
    ],
)
def test_resolve_rejects(authorization, x_api_key, message) -> None:
    with pytest.raises(AuthError, match=message.replace("(", r"\(")):
        KEYS.resolve(authorization, x_api_key)


def test_keys_come_from_settings_and_malformed_config_fails() -> None:
    keys = ApiKeys.from_settings(Settings(api_keys="a=t1, b=t2"))
    a, b = keys.principal("a"), keys.principal("b")
    assert a is not None and b is not None and keys.principal("c") is None
    assert (a.tenant, b.tenant) == ("t1", "t2")
    # the subject names the key by a digest, never the key itself
    assert a.subject == key_subject(b"a") != b.subject and a.subject.startswith("key:")
    with pytest.raises(ValueError, match="not key=tenant"):
        ApiKeys.from_settings(Settings(api_keys="just-a-key"))


def test_request_schema_rejects_tenant_and_names_it() -> None:
    with pytest.raises(ValidationError) as info:
        SearchRequest.model_validate({"query": "q", "tenant": "globex"})
    summary, details = validation_details(info.value.errors())
    assert details == [
        {
            "field": "tenant",
            "message": "unknown field; the tenant comes from the API key",
            "type": "extra_forbidden",
        }
    ]
    assert summary == "tenant: unknown field; the tenant comes from the API key"


def test_filters_naive_times_are_utc_and_map_to_domain() -> None:
    f = Filters.model_validate({"updated_after": "2026-01-01T00:00:00", "sources": [" hr "]})
    domain = f.to_domain()
    assert (
        domain.updated_after is not None and domain.updated_after.utcoffset().total_seconds() == 0
    )
    assert domain.sources == ["hr"]  # whitespace stripped


def test_validation_summary_is_capped() -> None:
    errors = [{"loc": ("body", f"f{i}"), "msg": "bad", "type": "x"} for i in range(8)]
    summary, details = validation_details(errors)
    assert len(details) == 8 and summary.endswith("(and 3 more)")
