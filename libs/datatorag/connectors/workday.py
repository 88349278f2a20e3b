"""Workday source: custom reports (RaaS, JSON) and REST resources, OAuth2 refresh-token grant.

* Token: ``POST {token_url}`` with ``grant_type=refresh_token`` and the client id/secret as HTTP
  Basic auth (Workday's API client for integrations); the access token is reused until shortly
  before ``expires_in`` and refreshed on a 401. A rotated refresh token is kept for the next grant.
* RaaS: ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json`` returns
  ``{"Report_Entry": [...]}``; each row is one record, identified by ``id_field``.
* REST: ``GET /ccx/api/...`` pages with ``limit`` (max 100) and ``offset``; responses are
  ``{"total": N, "data": [...]}``.

Each record becomes one JSON document (``http_api.record_document``). The listing already carries
every record, so ``etag`` = the record's SHA-256 and an unchanged record is skipped without any
"download"; ``fetch`` serves the bytes kept from the listing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from datatorag.connectors.audience import RecordAudience
from datatorag.connectors.base import Source, SourceAuthError, SourceEntry, SourceUnavailable
from datatorag.connectors.http_api import ApiClient
from datatorag.connectors.records import record_entry
from datatorag.domain.errors import PermanentError


@dataclass(frozen=True)
class Report:
    name: str
    path: str  # /ccx/service/customreport2/{tenant}/{owner}/{report}
    params: Mapping[str, str] = field(default_factory=dict)
    id_field: str = "Employee_ID"
    title_field: str | None = None
    audience: RecordAudience = field(default_factory=RecordAudience)  # its audience fields


@dataclass(frozen=True)
class Resource:
    name: str
    path: str  # /ccx/api/staffing/v6/{tenant}/workers
    id_field: str = "id"
    title_field: str | None = "descriptor"
    audience: RecordAudience = field(default_factory=RecordAudience)


@dataclass
class WorkdaySettings:
    base_url: str
    tenant_name: str
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    token_url: str | None = None
    reports: Sequence[Report] = ()
    resources: Sequence[Resource] = ()
    page_size: int = 100
    timeout_s: float = 60.0
    retries: int = 5
    backoff_initial_s: float = 0.5
    verify_tls: bool | str = True

    def expand(self, path: str) -> str:
        return path.replace("{tenant}", self.tenant_name)


def _id_of(row: Any, id_field: str) -> str | None:
    if not isinstance(row, dict):
        return None
    value = row.get(id_field)
    if isinstance(value, dict):  # Workday references: {"id": ..., "descriptor": ...}
        value = value.get("id")
    return str(value) if value not in (None, "") else None


class WorkdaySource(Source):
    kind = "workday"

    def __init__(
        self, id: str, tenant: str, settings: WorkdaySettings, *, max_concurrency: int = 4
    ) -> None:
        super().__init__(id, tenant, max_concurrency=max_concurrency)
        if not settings.reports and not settings.resources:
            raise ValueError("a Workday source needs at least one report or resource")
        self.settings = settings
        base = settings.base_url.rstrip("/")
        self.token_url = settings.token_url or f"{base}/ccx/oauth2/{settings.tenant_name}/token"
        self._refresh_token = settings.refresh_token
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._records: dict[str, bytes] = {}
        self.api = ApiClient(
            name=f"workday:{id}",
            base_url=base,
            headers=self._auth_headers,
            on_unauthorized=self._refresh,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
            backoff_initial_s=settings.backoff_initial_s,
            verify=settings.verify_tls,
        )

    @property
    def stats(self) -> Counter[str]:
        return self.api.stats

    async def _refresh(self) -> None:
        s = self.settings
        response = await self.api.post_form(
            self.token_url,
            {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token.get_secret_value(),
            },
            auth=(s.client_id, s.client_secret.get_secret_value()),
        )
        if response.status_code in (400, 401, 403):
            try:
                error = response.json().get("error", "")
            except ValueError:
                error = ""
            raise SourceAuthError(
                f"workday token grant refused ({response.status_code} {error}) for client "
                f"{s.client_id}: check the client secret and refresh token"
            )
        if response.status_code != 200:
            raise SourceUnavailable(f"workday token endpoint answered {response.status_code}")
        body = response.json()
        token = body.get("access_token")
        if not token:
            raise SourceAuthError("workday token response has no access_token", code="bad_token")
        self._access_token = token
        self._expires_at = time.monotonic() + float(body.get("expires_in", 3600)) - 60
        if body.get("refresh_token"):
            self._refresh_token = SecretStr(body["refresh_token"])

    async def _auth_headers(self) -> dict[str, str]:
        if self._access_token is None or time.monotonic() >= self._expires_at:
            await self._refresh()
        return {"Authorization": f"Bearer {self._access_token}", "Accept": "application/json"}

    def _entry(
        self,
        collection: str,
        record_id: str,
        title: str | None,
        row: Any,
        audience: RecordAudience,
    ) -> SourceEntry:
        return record_entry(
            self._records,
            system="workday",
            collection=collection,
            record_id=record_id,
            title=title,
            row=row,
            audience=audience,
        )

    def _bad(self, collection: str, n: int, why: str) -> SourceEntry:
        return SourceEntry(
            path=f"{collection}/row-{n}.json",
            size=None,
            mtime=None,
            record_id=f"{collection}:row-{n}",
            error_code="missing_id",
            error=why,
        )

    async def list(self) -> AsyncIterator[SourceEntry]:
        self._records.clear()
        s = self.settings
        for report in s.reports:
            params = {**report.params, "format": "json"}
            body = await self.api.get_json(s.expand(report.path), params=params)
            rows = body.get("Report_Entry") if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise SourceUnavailable(
                    f"report {report.name}: no Report_Entry list in the response",
                    code="bad_response",
                )
            for n, row in enumerate(rows):
                rid = _id_of(row, report.id_field)
                if rid is None:
                    yield self._bad(
                        f"reports/{report.name}", n, f"row {n} has no {report.id_field}"
                    )
                    continue
                title = (
                    str(row.get(report.title_field))
                    if report.title_field and row.get(report.title_field)
                    else None
                )
                yield self._entry(f"reports/{report.name}", rid, title, row, report.audience)
        for resource in s.resources:
            offset = 0
            while True:
                body = await self.api.get_json(
                    s.expand(resource.path), params={"limit": s.page_size, "offset": offset}
                )
                rows = body.get("data") if isinstance(body, dict) else None
                if not isinstance(rows, list):
                    raise SourceUnavailable(
                        f"{resource.name}: no data list in the response", code="bad_response"
                    )
                for n, row in enumerate(rows, start=offset):
                    rid = _id_of(row, resource.id_field)
                    if rid is None:
                        yield self._bad(resource.name, n, f"record {n} has no {resource.id_field}")
                        continue
                    title = row.get(resource.title_field) if resource.title_field else None
                    yield self._entry(
                        resource.name, rid, str(title) if title else None, row, resource.audience
                    )
                offset += len(rows)
                total = body.get("total")
                if not rows or (isinstance(total, int) and offset >= total):
                    break

    async def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        data = self._records.get(entry.record_id or "")
        if data is None:
            raise PermanentError(f"{entry.path} is not in the current listing", code="vanished")
        yield data

    async def close(self) -> None:
        await self.api.aclose()
