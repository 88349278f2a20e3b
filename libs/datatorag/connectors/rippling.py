"""Rippling source: REST resources with a bearer token and cursor pagination.

``GET {base}/{resource}?limit=N`` returns ``{"results": [...], "next_link": "<url>" | null}``;
the client follows ``next_link`` (treated as opaque) until it is null. Older endpoints that
return a bare cursor (``next_cursor``/``cursor``) are followed with ``?cursor=``. Each record
becomes one JSON document (``http_api.record_document``), its ``etag`` the record's SHA-256 and
its ``mtime`` the record's ``updated_at`` when present.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from datatorag.connectors.audience import RecordAudience
from datatorag.connectors.base import Source, SourceEntry, SourceUnavailable
from datatorag.connectors.http_api import ApiClient
from datatorag.connectors.records import record_entry
from datatorag.domain.errors import PermanentError

_MAX_PAGES = 100_000  # a server that loops its cursor must not loop us forever


@dataclass
class RipplingSettings:
    token: SecretStr
    base_url: str = "https://rest.ripplingapis.com"
    resources: Sequence[str] = ("workers",)
    title_fields: Sequence[str] = ("display_name", "name", "title")
    page_size: int = 100
    api_version: str | None = None
    timeout_s: float = 60.0
    retries: int = 5
    backoff_initial_s: float = 0.5
    verify_tls: bool | str = True
    extra_headers: dict[str, str] = field(default_factory=dict)
    audience: RecordAudience = field(default_factory=RecordAudience)  # its audience fields


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()  # 3.11 reads a trailing Z
    except ValueError:
        return None


class RipplingSource(Source):
    kind = "rippling"

    def __init__(
        self, id: str, tenant: str, settings: RipplingSettings, *, max_concurrency: int = 4
    ) -> None:
        super().__init__(id, tenant, max_concurrency=max_concurrency)
        self.settings = settings
        self._records: dict[str, bytes] = {}
        self.api = ApiClient(
            name=f"rippling:{id}",
            base_url=settings.base_url,
            headers=self._headers,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
            backoff_initial_s=settings.backoff_initial_s,
            verify=settings.verify_tls,
        )

    @property
    def stats(self) -> Counter[str]:
        return self.api.stats

    async def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.settings.token.get_secret_value()}",
            "Accept": "application/json",
            **self.settings.extra_headers,
        }
        if self.settings.api_version:
            headers["Rippling-Api-Version"] = self.settings.api_version
        return headers

    def _title(self, row: dict[str, Any]) -> str | None:
        for name in self.settings.title_fields:
            value = row.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    async def list(self) -> AsyncIterator[SourceEntry]:
        self._records.clear()
        s = self.settings
        for resource in s.resources:
            url: str | None = resource.strip("/")
            params: dict[str, Any] | None = {"limit": s.page_size}
            n = 0
            for _page in range(_MAX_PAGES):
                assert url is not None
                body = await self.api.get_json(url, params=params)
                rows = body.get("results") if isinstance(body, dict) else None
                if not isinstance(rows, list):
                    raise SourceUnavailable(
                        f"rippling {resource}: no results list in the response", code="bad_response"
                    )
                for row in rows:
                    n += 1
                    rid = row.get("id") if isinstance(row, dict) else None
                    if rid in (None, ""):
                        yield SourceEntry(
                            path=f"{resource}/row-{n}.json",
                            size=None,
                            mtime=None,
                            record_id=f"{resource}:row-{n}",
                            error_code="missing_id",
                            error=f"{resource} record {n} has no id",
                        )
                        continue
                    yield self._entry(resource, str(rid), row)
                next_link = body.get("next_link")
                cursor = body.get("next_cursor") or body.get("cursor")
                if next_link:
                    url, params = next_link, None  # opaque: carries limit and cursor
                elif cursor:
                    params = {"limit": s.page_size, "cursor": cursor}
                else:
                    break
            else:
                raise SourceUnavailable(f"rippling {resource}: pagination did not end")

    def _entry(self, resource: str, rid: str, row: dict[str, Any]) -> SourceEntry:
        return record_entry(
            self._records,
            system="rippling",
            collection=resource,
            record_id=rid,
            title=self._title(row),
            row=row,
            audience=self.settings.audience,
            mtime=_timestamp(row.get("updated_at")),
        )

    async def fetch(self, entry: SourceEntry) -> AsyncIterator[bytes]:
        data = self._records.get(entry.record_id or "")
        if data is None:
            raise PermanentError(f"{entry.path} is not in the current listing", code="vanished")
        yield data

    async def close(self) -> None:
        await self.api.aclose()
