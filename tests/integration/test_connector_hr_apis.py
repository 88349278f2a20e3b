"""Workday and Rippling sources against fakes served over real HTTP that follow the documented
APIs: pagination, OAuth2 refresh-token grant and expiry, 429 with Retry-After, bad credentials,
and exactly which records flow to the parse queue between syncs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from datatorag.connectors.rippling import RipplingSettings, RipplingSource
from datatorag.connectors.workday import Report, Resource, WorkdaySettings, WorkdaySource
from datatorag.domain.keys import doc_id_for
from tests.fakes.connector_env import ConnectorEnv
from tests.fakes.rippling import FakeRippling
from tests.fakes.workday import FakeWorkday

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ConnectorEnv]:
    e = ConnectorEnv.create(tmp_path)
    yield e
    await e.close()


@pytest.fixture
async def workday() -> AsyncIterator[FakeWorkday]:
    async with FakeWorkday() as fake:
        for i in range(250):  # three pages of 100
            fake.workers[f"W{i:04d}"] = {
                "id": f"W{i:04d}",
                "descriptor": f"Worker {i}",
                "workerType": "Employee",
            }
        fake.reports[("isu", "Policies")] = [
            {"Policy_ID": "P1", "Title": "Leave policy", "Body": "20 days of paid leave."},
            {"Policy_ID": "P2", "Title": "Remote work", "Body": "Up to 3 days a week."},
            {"Title": "no id on this row"},
        ]
        yield fake


def workday_source(fake: FakeWorkday, **overrides: object) -> WorkdaySource:
    settings = WorkdaySettings(
        base_url=fake.base_url,
        tenant_name="acme",
        client_id=fake.client_id,
        client_secret=SecretStr(fake.client_secret),
        refresh_token=SecretStr(fake.refresh_token),
        reports=[
            Report(
                "policies",
                "/ccx/service/customreport2/{tenant}/isu/Policies",
                id_field="Policy_ID",
                title_field="Title",
            )
        ],
        resources=[Resource("workers", "/ccx/api/v1/{tenant}/workers")],
        backoff_initial_s=0.01,
    )
    for k, v in overrides.items():
        setattr(settings, k, v)
    return WorkdaySource("wd", "acme", settings)


async def test_workday_records_flow_and_change(env: ConnectorEnv, workday: FakeWorkday) -> None:
    src = workday_source(workday)
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert run.counts["new"] == 252 and run.counts["failed"] == 1  # the row without Policy_ID
    assert workday.requests["/ccx/api/v1/acme/workers"] == 3  # pages of 100, 100, 50
    assert workday.grants == 1
    msgs = await env.drain()
    leave = next(m for m in msgs if m.path == "reports/policies/P1.json")
    assert leave.title == "Leave policy" and leave.content_type == "application/json"
    assert leave.doc_id == doc_id_for("wd", "reports/policies:P1")
    doc = json.loads(await env.blobstore.get(leave.blob_key))
    assert doc["schema"] == "datatorag.record/v1" and doc["system"] == "workday"
    assert doc["record"]["Body"] == "20 days of paid leave."

    # one record changes, one is removed, one is added; the token expired meanwhile
    workday.workers["W0007"]["descriptor"] = "Worker 7 (promoted)"
    del workday.workers["W0100"]
    workday.workers["W9999"] = {"id": "W9999", "descriptor": "New hire"}
    workday.expire_tokens()
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert await env.flow() == [
        ("deleted", "workers/W0100.json"),
        ("fetched", "workers/W0007.json"),
        ("fetched", "workers/W9999.json"),
    ]
    # 248 workers + 2 policies unchanged; the expired token: 401 -> refresh -> retry
    assert run.counts["unchanged"] == 250 and workday.grants == 2
    await src.close()


async def test_workday_honours_429_retry_after(env: ConnectorEnv, workday: FakeWorkday) -> None:
    src = workday_source(workday)
    workday.throttle(3, retry_after="0.05")
    run = await env.sync(src)
    assert run.status == "ok" and run.counts["new"] == 252
    assert workday.requests["429"] == 3 and src.stats["throttled"] == 3
    await src.close()


async def test_workday_persistent_429_fails_the_run_not_the_documents(
    env: ConnectorEnv, workday: FakeWorkday
) -> None:
    src = workday_source(workday, retries=3)
    workday.throttle(100, retry_after="0")
    run = await env.sync(src)
    assert run.status == "failed" and "rate_limited" in (run.error or "")
    assert await env.drain() == []
    await src.close()


async def test_workday_bad_refresh_token(env: ConnectorEnv, workday: FakeWorkday) -> None:
    src = workday_source(workday, refresh_token=SecretStr("stale-token"))
    run = await env.sync(src)
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("auth_failed")
    assert "invalid_grant" in run.error and "stale-token" not in run.error
    await src.close()


@pytest.fixture
async def rippling() -> AsyncIterator[FakeRippling]:
    async with FakeRippling() as fake:
        for i in range(230):
            fake.data["workers"][f"r{i:04d}"] = {
                "id": f"r{i:04d}",
                "display_name": f"Person {i}",
                "updated_at": "2026-01-02T03:04:05Z",
            }
        fake.data["departments"]["d1"] = {"id": "d1", "name": "People Ops"}
        yield fake


def rippling_source(fake: FakeRippling, token: str | None = None) -> RipplingSource:
    return RipplingSource(
        "rp",
        "acme",
        RipplingSettings(
            token=SecretStr(token or fake.token),
            base_url=fake.base_url,
            resources=["workers", "departments"],
            backoff_initial_s=0.01,
        ),
    )


async def test_rippling_cursor_pagination_and_changes(
    env: ConnectorEnv, rippling: FakeRippling
) -> None:
    src = rippling_source(rippling)
    rippling.throttle(2, retry_after="0.05")
    run = await env.sync(src)
    assert run.status == "ok", run.error
    assert run.counts["new"] == 231
    assert rippling.requests["/workers"] == 3 + 2  # 3 pages (next_link followed) + 2 throttled
    assert rippling.requests["429"] == 2
    msgs = await env.drain()
    dept = next(m for m in msgs if m.path == "departments/d1.json")
    assert dept.title == "People Ops"

    rippling.data["workers"]["r0003"]["display_name"] = "Person 3 (renamed)"
    rippling.data["workers"]["r0003"]["updated_at"] = "2026-02-01T00:00:00Z"
    del rippling.data["departments"]["d1"]
    run = await env.sync(src)
    assert await env.flow() == [
        ("deleted", "departments/d1.json"),
        ("fetched", "workers/r0003.json"),
    ]
    assert run.counts["unchanged"] == 229
    await src.close()


async def test_rippling_bad_token(env: ConnectorEnv, rippling: FakeRippling) -> None:
    src = rippling_source(rippling, token="wrong")
    run = await env.sync(src)
    assert run.status == "failed" and (run.error or "").startswith("auth_failed")
    assert "wrong" not in (run.error or "")
    await src.close()


async def test_unreachable_api(env: ConnectorEnv) -> None:
    src = RipplingSource(
        "rp",
        "acme",
        RipplingSettings(
            token=SecretStr("t"), base_url="http://127.0.0.1:9", retries=2, backoff_initial_s=0.01
        ),
    )
    run = await env.sync(src)
    assert run.status == "failed" and (run.error or "").startswith("unreachable")
    await src.close()
