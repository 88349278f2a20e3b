"""Which audience the connector gives each document: Workday and Rippling records by their
audience and confidentiality fields (fakes over real HTTP, following the documented APIs),
uploads by the sidecar the landing zone writes, files by the source's path rules; and an
audience change of unchanged content is a ``DocumentAudience``, never a new version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from datatorag.connectors.audience import AudienceRules, RecordAudience
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.landing import FolderLanding
from datatorag.connectors.rippling import RipplingSettings, RipplingSource
from datatorag.connectors.workday import Report, WorkdaySettings, WorkdaySource
from datatorag.domain.contracts import DocumentAudience, DocumentFetched
from datatorag.domain.keys import doc_id_for
from datatorag.domain.principal import EVERYONE
from datatorag.ports import SyncRun
from tests.fakes.connector_env import ConnectorEnv
from tests.fakes.rippling import FakeRippling
from tests.fakes.workday import FakeWorkday

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ConnectorEnv]:
    e = ConnectorEnv.create(tmp_path)
    yield e
    await e.close()


async def _groups(env: ConnectorEnv, source: str, key: str) -> tuple[str, ...]:
    record = await env.registry.current("acme", doc_id_for(source, key))
    assert record is not None, key
    return record.groups


async def test_workday_report_fields_decide_the_audience(env: ConnectorEnv) -> None:
    async with FakeWorkday() as fake:
        rows = fake.reports[("isu", "Cases")] = [
            # RaaS renders a boolean as "1"/"0"; a multi-instance field as references
            {"Case_ID": "C1", "Title": "Grievance", "Confidential": "1", "Body": "..."},
            {"Case_ID": "C2", "Title": "Raise", "Confidential": "0",
             "Security_Groups": [{"id": "g1", "descriptor": "Managers"},
                                 {"id": "g2", "descriptor": "HR Partners"}]},
            {"Case_ID": "C3", "Title": "Holiday", "Confidential": "0"},
            {"Case_ID": "C4", "Title": "Bad", "Security_Groups": "ok,\x01bad"},
        ]  # fmt: skip
        audience = RecordAudience("Security_Groups", "Confidential", ("hr",))
        settings = WorkdaySettings(
            base_url=fake.base_url, tenant_name="acme", client_id=fake.client_id,
            client_secret=SecretStr(fake.client_secret),
            refresh_token=SecretStr(fake.refresh_token),
            reports=[Report("cases", "/ccx/service/customreport2/{tenant}/isu/Cases",
                            id_field="Case_ID", title_field="Title", audience=audience)],
        )  # fmt: skip
        source = WorkdaySource("wd", "acme", settings)
        source.audience = AudienceRules.build(["staff"])  # the source's default
        run = await env.sync(source)
        assert run.counts["new"] == 3 and run.counts["failed"] == 1, run.errors
        assert await _groups(env, "wd", "reports/cases:C1") == ("hr",)
        assert await _groups(env, "wd", "reports/cases:C2") == ("HR Partners", "Managers")
        assert await _groups(env, "wd", "reports/cases:C3") == ("staff",)
        failed = await _groups(env, "wd", "reports/cases:C4")  # listed for the default audience
        assert failed == ("staff",) and run.errors[0]["code"] == "bad_audience"
        fetched = [m for m in await env.drain() if isinstance(m, DocumentFetched)]
        assert {m.groups for m in fetched} == {("hr",), ("HR Partners", "Managers"), ("staff",)}
        for m in fetched:  # who may see a record is not part of what it says (nor its hash)
            raw = await env.blobstore.get(m.blob_key)
            assert b"Confidential" not in raw and b"Security_Groups" not in raw

        # C2 is made confidential, C3 gets a group: the records' content is the same, so no
        # new version, only their audience moves
        rows[1]["Confidential"] = "1"
        rows[2]["Security_Groups"] = [{"descriptor": "Finance"}]
        run = await source_sync(env, source)
        assert run.counts["changed"] == 0 and run.counts["audience"] == 2
        changes = {m.doc_id: m.groups for m in await env.drain()}
        assert changes == {
            doc_id_for("wd", "reports/cases:C2"): ("hr",),
            doc_id_for("wd", "reports/cases:C3"): ("Finance",),
        }
        await source.close()


async def source_sync(env: ConnectorEnv, source: WorkdaySource | RipplingSource) -> SyncRun:
    run = await env.sync(source)
    assert run.status == "ok", run.error
    return run


async def test_rippling_confidential_records(env: ConnectorEnv) -> None:
    async with FakeRippling() as fake:
        fake.data["workers"] = {
            "w1": {"id": "w1", "display_name": "Ada", "is_confidential": True},
            "w2": {"id": "w2", "display_name": "Bob", "is_confidential": False},
        }
        settings = RipplingSettings(
            token=SecretStr(fake.token), base_url=fake.base_url, backoff_initial_s=0.01,
            audience=RecordAudience(None, "is_confidential", ("hr", "legal")),
        )  # fmt: skip
        source = RipplingSource("rp", "acme", settings)
        await source_sync(env, source)
        assert await _groups(env, "rp", "workers:w1") == ("hr", "legal")
        assert await _groups(env, "rp", "workers:w2") == (EVERYONE,)
        await source.close()


async def test_uploads_carry_their_audience_in_a_sidecar(env: ConnectorEnv, tmp_path: Path) -> None:
    landing = FolderLanding(tmp_path / "landing", max_bytes=1 << 20)

    async def body(data: bytes) -> AsyncIterator[bytes]:
        yield data

    await landing.receive("acme", "raises.md", body(b"# Raises\n\nfour percent"), ("hr",))
    await landing.receive("acme", "memo.md", body(b"# Memo\n\nhello"), None)
    uploads = FolderSource("uploads", "acme", tmp_path / "landing" / "acme", upload_audience=True)
    run = await env.sync(uploads)
    assert run.counts["new"] == 2 and run.counts["seen"] == 2  # the sidecars are no documents
    assert await _groups(env, "uploads", "raises.md") == ("hr",)
    assert await _groups(env, "uploads", "memo.md") == (EVERYONE,)
    await env.drain()
    # the same bytes again for everyone: an audience change, not a new version
    await landing.receive("acme", "raises.md", body(b"# Raises\n\nfour percent"), (EVERYONE,))
    run = await env.sync(uploads)
    assert run.counts["audience"] == 1 and run.counts["new"] == run.counts["changed"] == 0
    (message,) = await env.drain()
    assert isinstance(message, DocumentAudience) and message.groups == (EVERYONE,)
    # a damaged sidecar stops nothing else and changes nothing: the run says why
    (tmp_path / "landing" / "acme" / ".audience" / "memo.md.json").write_text("{oops")
    run = await env.sync(uploads)
    assert run.status == "ok" and [e["code"] for e in run.errors] == ["bad_audience"]
    assert await _groups(env, "uploads", "memo.md") == (EVERYONE,)


async def test_path_rules_first_match_wins(env: ConnectorEnv, tmp_path: Path) -> None:
    root = tmp_path / "share"
    for rel in ("managers/pay/bands.md", "managers/offsite.md", "policies/leave.md"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n\ntext")
    source = FolderSource("share", "acme", root)
    source.audience = AudienceRules.build(
        ["staff"], [("managers/pay/*", ["hr"]), ("managers/**", ["managers", "hr"])]
    )
    await env.sync(source)
    assert await _groups(env, "share", "managers/pay/bands.md") == ("hr",)
    assert await _groups(env, "share", "managers/offsite.md") == ("hr", "managers")
    assert await _groups(env, "share", "policies/leave.md") == ("staff",)
