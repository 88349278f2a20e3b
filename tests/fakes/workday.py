"""A fake Workday tenant following the documented API shapes.

* ``POST /ccx/oauth2/{tenant}/token``: OAuth2 refresh-token grant; client id/secret by HTTP Basic
  auth, form ``grant_type=refresh_token&refresh_token=...``; answers ``{"access_token",
  "token_type": "Bearer", "expires_in"}``, or 400 ``{"error": "invalid_grant"}`` /
  401 ``{"error": "invalid_client"}``.
* ``GET /ccx/api/v1/{tenant}/workers?limit&offset``: REST, bearer token, ``limit`` at most 100,
  ``{"total": N, "data": [...]}``; 401 ``{"error": "invalid access token"}`` for a bad or
  expired token.
* ``GET /ccx/service/customreport2/{tenant}/{owner}/{report}?format=json``: RaaS,
  ``{"Report_Entry": [...]}``.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from aiohttp import web

from tests.fakes._http import FakeServer


class FakeWorkday(FakeServer):
    def __init__(
        self,
        tenant: str = "acme",
        *,
        client_id: str = "client-1",
        client_secret: str = "client-secret",
        refresh_token: str = "refresh-1",
        token_ttl_s: float = 3600,
    ) -> None:
        super().__init__()
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.token_ttl_s = token_ttl_s
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch)
        self.workers: dict[str, dict[str, Any]] = {}
        self.reports: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.grants = 0
        r = self.app.router
        r.add_post(f"/ccx/oauth2/{tenant}/token", self._token)
        r.add_get(f"/ccx/api/v1/{tenant}/workers", self._workers)
        r.add_get(f"/ccx/service/customreport2/{tenant}/{{owner}}/{{report}}", self._report)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.grants += 1
        token = secrets.token_urlsafe(16)
        self.tokens[token] = time.time() + self.token_ttl_s
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(self.token_ttl_s),
                "refresh_token": self.refresh_token,
            }
        )

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        return self.tokens.get(token, 0) > time.time()

    async def _workers(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "invalid access token"}, status=401)
        try:
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "invalid limit/offset"}, status=400)
        if not 1 <= limit <= 100 or offset < 0:
            return web.json_response({"error": "limit must be 1..100"}, status=400)
        rows = [self.workers[k] for k in sorted(self.workers)]
        return web.json_response({"total": len(rows), "data": rows[offset : offset + limit]})

    async def _report(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "invalid access token"}, status=401)
        if request.query.get("format") != "json":
            return web.Response(text="<wd:Report_Data/>", content_type="application/xml")
        key = (request.match_info["owner"], request.match_info["report"])
        if key not in self.reports:
            return web.json_response({"error": "report not found"}, status=404)
        return web.json_response({"Report_Entry": self.reports[key]})
