"""A JSON-over-HTTPS client for the HR API sources (Workday, Rippling) on httpx.

* 429 and 503 honour ``Retry-After`` (seconds or an HTTP date, capped); other 5xx and network
  errors back off exponentially with full jitter; after ``retries`` attempts the source is
  ``SourceUnavailable``.
* 401 calls ``on_unauthorized`` once (an OAuth2 token refresh) and retries; a second 401, or a 403,
  is ``SourceAuthError``. 404 and other 4xx are ``PermanentError`` (the record/report is wrong).
* ``stats`` counts requests, 429s and retries (tests and benchmarks read them).

Also: the JSON envelope every HR record is stored in, so the parser sees one shape whatever the
system (``record_document``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from datatorag.connectors.base import SourceAuthError, SourceUnavailable
from datatorag.domain.errors import PermanentError
from datatorag.observability.log import get_logger

log = get_logger("connector.http")

RECORD_CONTENT_TYPE = "application/json"
RECORD_SCHEMA = "datatorag.record/v1"


def record_document(
    *, system: str, collection: str, record_id: str, title: str | None, record: Any
) -> bytes:
    """Canonical JSON (sorted keys) of one HR record, so equal records hash equal.

    ``{"schema": "datatorag.record/v1", "system": "workday", "collection": "workers",
    "id": "...", "title": "...", "record": {...}}``
    """
    doc = {
        "schema": RECORD_SCHEMA,
        "system": system,
        "collection": collection,
        "id": record_id,
        "title": title,
        "record": record,
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ApiClient:
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: Callable[[], Awaitable[Mapping[str, str]]],
        on_unauthorized: Callable[[], Awaitable[None]] | None = None,
        timeout_s: float = 60.0,
        retries: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 300.0,
        verify: bool | str = True,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._on_unauthorized = on_unauthorized
        self.retries = retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.stats: Counter[str] = Counter()
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify, follow_redirects=False)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + "/" + path_or_url.lstrip("/")

    def _backoff(self, attempt: int) -> float:
        # full jitter: spreads replicas that hit the same limit at the same moment
        return random.uniform(0, min(self.backoff_max_s, self.backoff_initial_s * 2**attempt))

    async def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> Any:
        url = self.url(path_or_url)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            self.stats["requests"] += 1
            try:
                response = await self._http.get(
                    url, params=params, headers=dict(await self._headers())
                )
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise SourceUnavailable(
                        f"{self.name}: {type(exc).__name__} calling {url} ({attempt} attempts)",
                        code="unreachable",
                    ) from exc
                self.stats["retries"] += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status == 401:
                if self._on_unauthorized is not None and not refreshed:
                    refreshed = True
                    await self._on_unauthorized()
                    attempt -= 1  # a refreshed token is a fresh start, not a failed attempt
                    continue
                raise SourceAuthError(f"{self.name}: 401 Unauthorized for {url}")
            if status == 403:
                raise SourceAuthError(f"{self.name}: 403 Forbidden for {url}", code="forbidden")
            if status in (429, 503) or status >= 500:
                if status == 429:
                    self.stats["throttled"] += 1
                if attempt >= self.retries:
                    raise SourceUnavailable(
                        f"{self.name}: {status} from {url} after {attempt} attempts",
                        code="rate_limited" if status == 429 else "server_error",
                    )
                delay = retry_after_s(response.headers.get("Retry-After"))
                delay = (
                    self._backoff(attempt) if delay is None else min(delay, self.max_retry_after_s)
                )
                self.stats["retries"] += 1
                log.info("http_retry", api=self.name, status=status, delay_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            if status == 404:
                raise PermanentError(f"{self.name}: 404 Not Found: {url}", code="not_found")
            if status >= 400:
                raise PermanentError(
                    f"{self.name}: {status} for {url}: {response.text[:200]}", code=f"http_{status}"
                )
            try:
                return response.json()
            except ValueError as exc:
                raise PermanentError(
                    f"{self.name}: {url} did not return JSON", code="bad_response"
                ) from exc

    async def post_form(
        self, url: str, data: Mapping[str, str], *, auth: tuple[str, str] | None = None
    ) -> httpx.Response:
        self.stats["token_requests"] += 1
        for attempt in range(1, self.retries + 1):
            try:
                response = await self._http.post(  # the client has no auth: its default is none
                    url, data=dict(data), auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth
                )
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise SourceUnavailable(
                        f"{self.name}: {type(exc).__name__} calling the token endpoint",
                        code="unreachable",
                    ) from exc
                await asyncio.sleep(self._backoff(attempt))
                continue
            if response.status_code in (429, 503) or response.status_code >= 500:
                if attempt >= self.retries:
                    break
                delay = retry_after_s(response.headers.get("Retry-After"))
                await asyncio.sleep(self._backoff(attempt) if delay is None else delay)
                continue
            return response
        raise SourceUnavailable(
            f"{self.name}: the token endpoint keeps failing", code="server_error"
        )

    async def aclose(self) -> None:
        await self._http.aclose()
