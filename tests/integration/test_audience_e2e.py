"""Audiences end to end: a folder source whose path rule gives ``managers/**`` to managers and
HR, synced through the real sync engine and the three pipeline stages into LanceDB; a reader
without those groups never sees that document (search, answer, document detail, listing), a
reader in ``hr`` and the admin do; then the rule changes, the source is synced again, and the
index follows without the document being parsed or embedded again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
from datatorag.answering import AnswerQuery
from datatorag.config import Settings
from datatorag.connectors.builder import build_source
from datatorag.connectors.config import parse_sources
from datatorag.connectors.cursor import MemoryCursorStore
from datatorag.connectors.secrets import SecretResolver
from datatorag.connectors.sync import SyncOptions, sync_source
from datatorag.domain.principal import Principal
from datatorag.gateway.deps import GatewayDeps
from datatorag.gateway.errors import ApiError
from datatorag.gateway.schemas import SearchRequest
from datatorag.gateway.service import QueryService
from datatorag.testing.memory import HashingEmbedder
from tests.unit.test_stage_crashes import DIM, Pipeline

pytestmark = pytest.mark.timeout(300)

TENANT = "acme"
RAISES = "# Raises\n\nThe bonus pool for managers is four percent this year."
HANDBOOK = "# Handbook\n\nEvery employee gets a bonus review in March."


def _config(root: Path, groups: list[str]) -> str:
    doc = {
        "tenants": {
            TENANT: {
                "sources": [
                    {
                        "id": "hr-share",
                        "type": "folder",
                        "path": str(root),
                        "audience_rules": [{"path": "managers/**", "groups": groups}],
                    }
                ]
            }
        }
    }
    return json.dumps(doc)


async def _sync(pipeline: Pipeline, root: Path, groups: list[str], cursors: MemoryCursorStore):
    cfg = parse_sources(_config(root, groups)).find(TENANT, "hr-share")
    assert cfg is not None
    source = await build_source(TENANT, cfg, SecretResolver(environ={}))
    run = await sync_source(
        source,
        registry=pipeline.registry,
        blobstore=pipeline.blobs,
        parse_queue=pipeline.queues["parse"],
        settings=Settings(),
        cursor_store=cursors,
        options=SyncOptions(delete_grace_s=0.0),
    )
    assert run.status == "ok", run.error
    await pipeline.drain()
    await pipeline.assert_settled()
    return run


async def _sees(service: QueryService, who: Principal) -> dict[str, set[str]]:
    """Per surface, the documents ``who`` is shown."""
    every = await service.documents(Principal(TENANT, "key:admin", role="admin"), None, None, 100)
    ids = {("raises" if d.path.startswith("managers/") else "handbook"): d.doc_id
           for d in every.documents}  # fmt: skip
    assert len(ids) == 2
    listed = await service.documents(who, None, None, 100)
    hits = await service.search(who, SearchRequest(query="bonus pool managers", k=10))
    answer = await service.answers.answer(who, AnswerQuery(query="how big is the bonus pool?"))
    detail = set()
    statuses: list[int] = []
    for name, doc_id in ids.items():
        try:
            await service.document(who, doc_id)
            detail.add(name)
        except ApiError as exc:  # hidden: exactly what an unknown document gets
            statuses.append(exc.status)
    assert set(statuses) <= {404}
    paths = {h.citation.path for h in hits.hits} | {c.path for c in answer.citations}
    return {
        "listing": {("raises" if d.path.startswith("managers/") else "handbook")
                    for d in listed.documents},
        "search+answer": {("raises" if p.startswith("managers/") else "handbook") for p in paths},
        "detail": detail,
    }  # fmt: skip


async def test_a_path_rule_decides_who_sees_a_document_and_its_change_needs_no_embedding(
    tmp_path: Path,
) -> None:
    root = tmp_path / "share"
    (root / "managers").mkdir(parents=True)
    (root / "managers" / "raises.md").write_text(RAISES)
    (root / "handbook.md").write_text(HANDBOOK)
    index = LanceDbIndex(tmp_path / "lancedb", dim=DIM, table="chunks_audience")
    await index.ensure()
    pipeline = Pipeline(index=index)  # type: ignore[arg-type]  (any VectorIndex)
    cursors = MemoryCursorStore()
    service = QueryService(GatewayDeps(Settings(), index, HashingEmbedder(DIM), pipeline.registry))
    staff = Principal(TENANT, "key:staff")  # no group
    hr = Principal(TENANT, "oidc:hr", groups=frozenset({"hr"}))
    finance = Principal(TENANT, "oidc:fin", groups=frozenset({"finance"}))
    admin = Principal(TENANT, "key:admin", role="admin")
    other_tenant_admin = Principal("globex", "key:g", role="admin")
    try:
        await _sync(pipeline, root, ["managers", "hr"], cursors)
        both = {"handbook", "raises"}
        for who, expected in ((staff, {"handbook"}), (finance, {"handbook"}), (hr, both),
                              (admin, both), (other_tenant_admin, set())):  # fmt: skip
            seen = await _sees(service, who)
            assert seen["listing"] == expected, who
            assert seen["detail"] == expected, who
            assert seen["search+answer"] <= expected, who
            if "raises" in expected:  # the search does find it for those who may see it
                assert "raises" in seen["search+answer"], who
        chunks = await index.get_chunks(
            TENANT, _doc_id(await service.documents(admin, None, None, 100))
        )
        assert {c.groups for c in chunks} == {("hr", "managers")}  # fmt: skip

        # the rule changes: finance instead of managers and HR; the content does not
        embedded = pipeline.embedder.calls
        parsed = await pipeline.queues["embed"].depth()
        run = await _sync(pipeline, root, ["finance"], cursors)
        assert run.counts["audience"] == 1 and run.counts["changed"] == 0
        assert pipeline.embedder.calls == embedded  # nothing embedded again
        assert parsed == 0 and await pipeline.queues["embed"].depth() == 0  # nor parsed
        assert (await _sees(service, hr))["listing"] == {"handbook"}
        assert (await _sees(service, hr))["search+answer"] <= {"handbook"}
        seen = await _sees(service, finance)
        assert seen["listing"] == seen["detail"] == both and "raises" in seen["search+answer"]
        # an unchanged audience is no change: the next sync sends nothing
        again = await _sync(pipeline, root, ["finance"], cursors)
        assert again.counts["audience"] == 0 and again.counts["unchanged"] == 2
    finally:
        await service.aclose()
        await index.close()


def _doc_id(listed: object) -> str:
    return next(d.doc_id for d in listed.documents if d.path.startswith("managers/"))  # type: ignore[attr-defined]
