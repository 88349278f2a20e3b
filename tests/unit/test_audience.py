"""Audiences in the domain and the connector: group names, a document's groups, who sees what,
path rules and HR-record fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datatorag.connectors.audience import AudienceRules, RecordAudience, parse_sidecar
from datatorag.connectors.config import ConfigError, parse_sources
from datatorag.domain.audience import normalise_groups, parse_groups, visible
from datatorag.domain.contracts import DocumentAudience, parse_message
from datatorag.domain.models import DocumentRecord
from datatorag.domain.principal import EVERYONE, Principal


def test_groups_are_validated_unique_and_sorted() -> None:
    assert normalise_groups(["managers", " hr", "hr"]) == ("hr", "managers")
    assert normalise_groups(["hr", EVERYONE]) == (EVERYONE,)
    assert parse_groups("managers, hr,,") == ("hr", "managers")
    for bad, why in (([], "at least one"), (["a\nb"], "control"), (["x" * 129], "over 128"),
                     (["a,b"], "comma"), ([""], "empty"), ([1], "string")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            normalise_groups(bad)
    with pytest.raises(ValueError, match="at most 64"):
        normalise_groups([f"g{i}" for i in range(65)])


def test_records_default_to_everyone_and_reject_bad_groups() -> None:
    base = {"tenant": "t", "doc_id": "d", "version": "v", "seq": 1, "source": "s", "path": "p",
            "content_hash": "x"}  # fmt: skip
    assert DocumentRecord(**base).groups == (EVERYONE,)
    assert DocumentRecord(**base, groups=None).groups == (EVERYONE,)  # stored before audiences
    assert DocumentRecord(**base, groups=["b", "a"]).groups == ("a", "b")
    with pytest.raises(ValidationError):
        DocumentRecord(**base, groups=[])


def test_who_sees_what() -> None:
    staff = Principal("t", "s").audience()
    hr = Principal("t", "h", groups=frozenset({"hr"})).audience()
    admin = Principal("t", "a", role="admin").audience()
    assert visible((EVERYONE,), staff) and not visible(("hr",), staff)
    assert visible(("hr", "managers"), hr) and not visible(("exec",), hr)
    assert admin is None and visible(("exec",), admin)
    assert not visible((EVERYONE,), frozenset())


def test_audience_message_round_trips() -> None:
    msg = DocumentAudience(tenant="t", doc_id="d", source="s", path="p", groups=["hr"])
    assert parse_message(msg.to_json()) == msg


def test_path_rules_first_match_then_default() -> None:
    rules = AudienceRules.build(["staff"], [("managers/pay/*", ["hr"]), ("managers/**", ["m"])])
    assert rules.groups_for("managers/pay/2026.pdf") == ("hr",)
    assert rules.groups_for("managers/offsite.md") == ("m",)
    assert rules.groups_for("policies/leave.md") == ("staff",)
    assert rules.groups_for("managers/offsite.md", ("legal",)) == ("legal",)  # the record's own
    assert AudienceRules().groups_for("x") == (EVERYONE,)


def test_record_fields() -> None:
    fields = RecordAudience("groups", "confidential", ("hr",))
    assert fields.groups({"confidential": True, "groups": ["x"]}) == ("hr",)
    assert fields.groups({"confidential": "Yes"}) == ("hr",)
    assert fields.groups({"confidential": {"descriptor": "No"}, "groups": "a, b"}) == ("a", "b")
    assert fields.groups({"groups": [{"id": "1", "descriptor": "Managers"}]}) == ("Managers",)
    assert fields.groups({"confidential": 0}) is None  # nothing said: the rules decide
    with pytest.raises(ValueError):
        fields.groups({"groups": [{"id": 5}]})
    assert fields.content({"a": 1, "groups": ["x"], "confidential": True}) == {"a": 1}


def test_sidecars() -> None:
    assert parse_sidecar(b'{"groups": ["hr"]}') == ("hr",)
    assert parse_sidecar(b'{"groups": null}') is None
    for bad in (b"{", b"[]", b'{"groups": []}'):
        with pytest.raises(ValueError):
            parse_sidecar(bad)


def test_sources_file_audience_errors_are_precise() -> None:
    def parse(extra: str) -> None:
        parse_sources(
            "tenants:\n  acme:\n    sources:\n      - {id: f, type: folder, path: /tmp, "
            + extra
            + "}"
        )

    parse("audience: [hr], audience_rules: [{path: 'a/*', groups: [b]}]")
    with pytest.raises(ConfigError, match=r"audience_rules\.0\.groups"):
        parse("audience_rules: [{path: 'a/*', groups: []}]")
    with pytest.raises(ConfigError, match="audience"):
        parse("audience: ['a,b']")
    with pytest.raises(ConfigError, match="confidential"):
        parse_sources(
            "tenants:\n  acme:\n    sources:\n      - {id: r, type: rippling, token: 'env:T', "
            "confidential_field: c}"
        )
