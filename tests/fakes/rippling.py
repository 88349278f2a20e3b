"""A fake Rippling REST API following the documented shapes.

``GET /{resource}?limit=N[&cursor=C]`` with ``Authorization: Bearer <token>`` returns
``{"results": [...], "next_link": "<absolute url with cursor>" | null}``; ``limit`` at most 100;
the cursor is opaque (base64 of an offset) and a tampered one is a 400. A bad token is 401.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from tests.fakes._http import FakeServer


class FakeRippling(FakeServer):
    def __init__(self, token: str = "rippling-token") -> None:
        super().__init__()
        self.token = token
        self.data: dict[str, dict[str, dict[str, Any]]] = {"workers": {}, "departments": {}}
        self.app.router.add_get("/{resource}", self._list)
        self.app.router.add_get("/{resource}/", self._list)

    async def _list(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"detail": "Invalid token."}, status=401)
        resource = request.match_info["resource"]
        if resource not in self.data:
            return web.json_response({"detail": "Not found."}, status=404)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return web.json_response({"detail": "bad limit"}, status=400)
        if not 1 <= limit <= 100:
            return web.json_response({"detail": "limit must be 1..100"}, status=400)
        offset = 0
        if "cursor" in request.query:
            try:
                offset = int(base64.urlsafe_b64decode(request.query["cursor"]).decode())
            except ValueError:
                return web.json_response({"detail": "Invalid cursor."}, status=400)
        records = [self.data[resource][k] for k in sorted(self.data[resource])]
        page = records[offset : offset + limit]
        next_link = None
        if offset + limit < len(records):
            cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            next_link = f"{self.base_url}/{resource}?limit={limit}&cursor={cursor}"
        return web.json_response({"results": page, "next_link": next_link})
