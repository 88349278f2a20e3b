"""Credential resolution (shared by REST headers and gRPC metadata), static keys and the edge's
configuration checks (no secret in any message), and validation error shaping."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from datatorag.config import ConfigError, Mode, Settings
from datatorag.gateway.auth import Authenticator, AuthError, StaticKeys, key_subject
from datatorag.gateway.edge import check_settings
from datatorag.gateway.errors import validation_details
from datatorag.gateway.schemas import Filters, SearchRequest

AUTH = Authenticator(StaticKeys.from_settings(Settings(api_keys="k-a=acme,k-b=globex")))


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
async def test_resolve_accepts(authorization, x_api_key, tenant) -> None:
    assert (await AUTH.authenticate(authorization, x_api_key)).tenant == tenant


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "message"),
    [
        (None, None, "missing credentials"),
        (None, "  ", "missing credentials"),
        ("Bearer nope", None, "invalid API key"),
        ("Bearer K-A", None, "invalid API key"),  # keys are case-sensitive
        ("Token k-a", None, "must be 'Bearer <credential>'"),
        ("Bearer", None, "must be 'Bearer <credential>'"),
        ("Bearer k-a", "k-b", "two different credentials"),
        ("Bearer k-a\udcff", None, "invalid API key"),  # undecodable bytes never crash
        ("Bearer " + "x" * 20_000, None, "credential too long"),
        # a JWT-shaped credential with no issuer configured
        ("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", None, "no OIDC issuer"),
        # a registry-shaped key on a gateway without a registry is just an unknown static key
        ("Bearer dtr_0123456789abcdef_" + "a" * 43, None, "invalid API key"),
    ],
)
async def test_resolve_rejects(authorization, x_api_key, message) -> None:
    with pytest.raises(AuthError, match=message.replace("(", r"\(")):
        await AUTH.authenticate(authorization, x_api_key)


def test_keys_come_from_settings_and_malformed_config_fails() -> None:
    keys = StaticKeys.from_settings(Settings(api_keys="a=t1, b=t2", admin_api_keys="b"))
    a, b = keys.principal("a"), keys.principal("b")
    assert a is not None and b is not None and keys.principal("c") is None
    assert (a.tenant, b.tenant) == ("t1", "t2")
    assert (a.role, b.role) == ("reader", "admin")
    # the subject names the key by a digest, never the key itself
    assert a.subject == key_subject(b"a") != b.subject and a.subject.startswith("key:")
    with pytest.raises(ConfigError, match="entry 2 of 2 is not key=tenant"):
        StaticKeys.from_settings(Settings(api_keys="x=t,super-secret-key"))


SECRET = "hunter2-do-not-print-me"
DIGEST = hashlib.sha256(SECRET.encode()).hexdigest()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # a malformed entry: the message names its position, never the key
        (Settings(api_keys=f"{SECRET}"), "entry 1 of 1 is not key=tenant"),
        (Settings(api_keys=f"a=t,{SECRET}="), "entry 2 of 2 is not key=tenant"),
        # outside embedded mode a plain key is refused: digests only
        (
            Settings(mode=Mode.PRODUCTION, api_keys=f"{SECRET}=acme", service_token="t" * 32),
            "is a plain key; outside embedded mode give its digest",
        ),
        (
            Settings(mode=Mode.PRODUCTION, api_keys=f"sha256:{SECRET}=acme"),
            "is not sha256:<64 hex digits>",
        ),
        (
            Settings(api_keys=f"{SECRET}=acme", admin_api_keys=f"{SECRET}x"),
            "DATATORAG_ADMIN_API_KEYS names a key that DATATORAG_API_KEYS does not have",
        ),
        (
            Settings(mode=Mode.PRODUCTION, api_keys=f"sha256:{DIGEST}=acme"),
            "DATATORAG_SERVICE_TOKEN must be set outside embedded mode",
        ),
        (Settings(service_token=SECRET[:8]), "at least 16 characters"),
        (Settings(oidc={"issuer": "https://idp.example"}), "DATATORAG_OIDC_AUDIENCE must be set"),
        (
            Settings(oidc={"issuer": "https://idp.example", "audience": "datatorag"}),
            "OIDC needs the tenant",
        ),
        (
            Settings(
                oidc={
                    "issuer": "https://idp.example",
                    "audience": "a",
                    "tenant": "acme",
                    "algorithms": "RS256,HS256",
                }
            ),
            "must name asymmetric algorithms",
        ),
        (Settings(edge_redis_url=f"http://{SECRET}@x"), "must be a redis://"),
    ],
)
def test_configuration_errors_are_precise_and_never_echo_a_secret(settings, message) -> None:
    with pytest.raises(ConfigError) as info:
        check_settings(settings)
    assert message in str(info.value)
    assert SECRET not in str(info.value) and SECRET[:8] not in str(info.value)
    assert DIGEST not in str(info.value)
    assert SECRET not in repr(settings)  # the settings themselves hide the keys


async def test_production_takes_digests_and_has_no_default_key() -> None:
    settings = Settings(
        mode=Mode.PRODUCTION,
        api_keys=f"sha256:{DIGEST}=acme",
        admin_api_keys=f"sha256:{DIGEST.upper()}",
        service_token="s" * 32,
    )
    check_settings(settings)
    auth = Authenticator.from_settings(settings)
    principal = await auth.authenticate(f"Bearer {SECRET}", None)
    assert (principal.tenant, principal.role) == ("acme", "admin")
    with pytest.raises(AuthError):  # the digest itself is not a key
        await auth.authenticate(f"Bearer sha256:{DIGEST}", None)
    bare = Authenticator.from_settings(Settings(mode=Mode.PRODUCTION, service_token="s" * 32))
    with pytest.raises(AuthError, match="invalid API key"):  # no dev-key outside embedded mode
        await bare.authenticate("Bearer dev-key", None)


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
